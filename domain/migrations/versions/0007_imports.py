"""import sources, jobs and imported content

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "import_sources",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("source_type", sa.String(length=16), nullable=False),
        sa.Column("locator", sa.String(length=2000), nullable=False),
        sa.Column("configuration", JSONType, nullable=False),
        sa.Column("mapping_rules", JSONType, nullable=False),
        sa.Column("schedule", sa.String(length=100), nullable=True),
        sa.Column("conflict_policy", sa.String(length=16), nullable=False),
        sa.Column("publish_policy", sa.String(length=16), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("last_sync", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_poll_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failure_count", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("etag", sa.String(length=500), nullable=True),
        sa.Column("last_modified", sa.String(length=100), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("updated_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "conflict_policy IN ('skip', 'overwrite', 'merge')",
            name=op.f("ck_import_sources_conflict_policy"),
        ),
        sa.CheckConstraint(
            "publish_policy IN ('draft', 'published')", name=op.f("ck_import_sources_publish_policy")
        ),
        sa.CheckConstraint(
            "source_type IN ('youtube', 'rss', 'api', 'manual')", name=op.f("ck_import_sources_source_type")
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_import_sources_created_by_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["updated_by"], ["users.id"], name=op.f("fk_import_sources_updated_by_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_sources")),
    )
    with op.batch_alter_table("import_sources", schema=None) as batch_op:
        batch_op.create_index("ix_import_sources_due", ["is_active", "next_poll_at"], unique=False)
        batch_op.create_index(
            "uq_import_sources_locator_live",
            ["source_type", "locator"],
            unique=True,
            sqlite_where=sa.text("deleted_at IS NULL AND locator != ''"),
            postgresql_where=sa.text("deleted_at IS NULL AND locator != ''"),
        )

    op.create_table(
        "import_jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("source_id", sa.Uuid(), nullable=False),
        sa.Column("job_type", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("total_items", sa.Integer(), nullable=True),
        sa.Column("processed_items", sa.Integer(), nullable=False),
        sa.Column("successful_imports", sa.Integer(), nullable=False),
        sa.Column("failed_imports", sa.Integer(), nullable=False),
        sa.Column("created_items", sa.Integer(), nullable=False),
        sa.Column("updated_items", sa.Integer(), nullable=False),
        sa.Column("unchanged_items", sa.Integer(), nullable=False),
        sa.Column("skipped_items", sa.Integer(), nullable=False),
        sa.Column("quota_units", sa.Integer(), nullable=False),
        sa.Column("cursor", JSONType, nullable=True),
        sa.Column("error_log", JSONType, nullable=False),
        sa.Column("error_count", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("metadata", JSONType, nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "job_type IN ('full_sync', 'incremental', 'manual')", name=op.f("ck_import_jobs_job_type")
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'completed', 'failed', 'paused')",
            name=op.f("ck_import_jobs_status"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_import_jobs_created_by_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["import_sources.id"],
            name=op.f("fk_import_jobs_source_id_import_sources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_jobs")),
    )
    with op.batch_alter_table("import_jobs", schema=None) as batch_op:
        batch_op.create_index("ix_import_jobs_source_created", ["source_id", "created_at"], unique=False)
        batch_op.create_index("ix_import_jobs_status_created", ["status", "created_at"], unique=False)

    op.create_table(
        "imported_content",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("source_id", sa.Uuid(), nullable=False),
        sa.Column("import_job_id", sa.Uuid(), nullable=True),
        sa.Column("dedupe_key", sa.String(length=500), nullable=False),
        sa.Column("external_id", sa.String(length=500), nullable=False),
        sa.Column("external_url", sa.String(length=2000), nullable=True),
        sa.Column("content_id", sa.Uuid(), nullable=True),
        sa.Column("import_status", sa.String(length=16), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=True),
        sa.Column("original_data", JSONType, nullable=False),
        sa.Column("transformed_data", JSONType, nullable=False),
        sa.Column("unlocked_fields", JSONType, nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "import_status IN ('success', 'failed', 'skipped')",
            name=op.f("ck_imported_content_import_status"),
        ),
        sa.ForeignKeyConstraint(
            ["content_id"],
            ["content_items.id"],
            name=op.f("fk_imported_content_content_id_content_items"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["import_job_id"],
            ["import_jobs.id"],
            name=op.f("fk_imported_content_import_job_id_import_jobs"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["import_sources.id"],
            name=op.f("fk_imported_content_source_id_import_sources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_imported_content")),
    )
    with op.batch_alter_table("imported_content", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_imported_content_content_id"), ["content_id"], unique=False)
        batch_op.create_index("ix_imported_content_external", ["external_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_imported_content_import_job_id"), ["import_job_id"], unique=False
        )
        batch_op.create_index("uq_imported_content_dedupe", ["source_id", "dedupe_key"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("imported_content", schema=None) as batch_op:
        batch_op.drop_index("uq_imported_content_dedupe")
        batch_op.drop_index(batch_op.f("ix_imported_content_import_job_id"))
        batch_op.drop_index("ix_imported_content_external")
        batch_op.drop_index(batch_op.f("ix_imported_content_content_id"))

    op.drop_table("imported_content")
    with op.batch_alter_table("import_jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_import_jobs_status_created")
        batch_op.drop_index("ix_import_jobs_source_created")

    op.drop_table("import_jobs")
    with op.batch_alter_table("import_sources", schema=None) as batch_op:
        batch_op.drop_index("uq_import_sources_locator_live")
        batch_op.drop_index("ix_import_sources_due")

    op.drop_table("import_sources")
