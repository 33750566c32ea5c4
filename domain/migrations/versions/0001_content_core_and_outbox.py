"""content core and outbox

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "content_items",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("title", JSONType, nullable=False),
        sa.Column("description", JSONType, nullable=False),
        sa.Column("slug", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("publish_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tags", JSONType, nullable=False),
        sa.Column("tag_index", sa.Text(), nullable=False),
        sa.Column("metadata", JSONType, nullable=False),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("updated_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "status IN ('draft', 'in_review', 'scheduled', 'published', 'archived')",
            name=op.f("ck_content_items_status"),
        ),
        sa.CheckConstraint(
            "type IN ('video', 'audio', 'image', 'article', 'episode')", name=op.f("ck_content_items_type")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_content_items")),
    )
    with op.batch_alter_table("content_items", schema=None) as batch_op:
        batch_op.create_index("ix_content_items_status_publish_at", ["status", "publish_at"], unique=False)
        batch_op.create_index("ix_content_items_type", ["type"], unique=False)
        batch_op.create_index(
            "uq_content_items_slug_live",
            ["slug"],
            unique=True,
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )

    op.create_table(
        "outbox_events",
        sa.Column(
            "seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("aggregate_type", sa.String(length=50), nullable=False),
        sa.Column("aggregate_id", sa.String(length=64), nullable=False),
        sa.Column("payload", JSONType, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("relayed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_outbox_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_outbox_events_event_id")),
    )
    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbox_events_unrelayed",
            ["seq"],
            unique=False,
            sqlite_where=sa.text("relayed_at IS NULL"),
            postgresql_where=sa.text("relayed_at IS NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_outbox_events_unrelayed",
            sqlite_where=sa.text("relayed_at IS NULL"),
            postgresql_where=sa.text("relayed_at IS NULL"),
        )

    op.drop_table("outbox_events")
    with op.batch_alter_table("content_items", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_content_items_slug_live",
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )
        batch_op.drop_index("ix_content_items_type")
        batch_op.drop_index("ix_content_items_status_publish_at")

    op.drop_table("content_items")
