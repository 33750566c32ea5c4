"""notifications: inbox, templates, preferences, deliveries, events, broadcasts, contacts, subscriptions

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notification_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("source_service", sa.String(length=50), nullable=False),
        sa.Column("payload", JSONType, nullable=False),
        sa.Column("outbox_seq", sa.BigInteger(), nullable=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notification_count", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_events")),
        sa.UniqueConstraint("outbox_seq", name=op.f("uq_notification_events_outbox_seq")),
    )
    with op.batch_alter_table("notification_events", schema=None) as batch_op:
        batch_op.create_index("ix_notification_events_status_created", ["status", "created_at"], unique=False)

    op.create_table(
        "notification_broadcasts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("category", sa.String(length=100), nullable=False),
        sa.Column("notification_type", sa.String(length=16), nullable=False),
        sa.Column("template_name", sa.String(length=100), nullable=True),
        sa.Column("message", JSONType, nullable=False),
        sa.Column("data", JSONType, nullable=False),
        sa.Column("criteria", JSONType, nullable=False),
        sa.Column("channels", JSONType, nullable=False),
        sa.Column("critical", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("total_recipients", sa.Integer(), nullable=True),
        sa.Column("processed_recipients", sa.Integer(), nullable=False),
        sa.Column("notifications_created", sa.Integer(), nullable=False),
        sa.Column("cursor", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'completed', 'failed', 'cancelled')",
            name=op.f("ck_notification_broadcasts_status"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_notification_broadcasts_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_broadcasts")),
    )
    with op.batch_alter_table("notification_broadcasts", schema=None) as batch_op:
        batch_op.create_index("ix_notification_broadcasts_status", ["status", "scheduled_at"], unique=False)

    op.create_table(
        "notification_contacts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("address", sa.String(length=1000), nullable=False),
        sa.Column("secret_encrypted", sa.String(length=500), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_notification_contacts_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_contacts")),
    )
    with op.batch_alter_table("notification_contacts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notification_contacts_user_id"), ["user_id"], unique=False)
        batch_op.create_index(
            "uq_notification_contacts_address", ["user_id", "channel", "address"], unique=True
        )

    op.create_table(
        "notification_preferences",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("notification_type", sa.String(length=100), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("is_enabled", sa.Boolean(), nullable=False),
        sa.Column("frequency", sa.String(length=16), nullable=False),
        sa.Column("quiet_hours_start", sa.Time(), nullable=True),
        sa.Column("quiet_hours_end", sa.Time(), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "frequency IN ('immediate', 'hourly', 'daily', 'weekly')",
            name=op.f("ck_notification_preferences_frequency"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_notification_preferences_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "user_id", "notification_type", "channel", name=op.f("pk_notification_preferences")
        ),
    )
    op.create_table(
        "notification_subscriptions",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("topic", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_notification_subscriptions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "topic", name=op.f("pk_notification_subscriptions")),
    )
    with op.batch_alter_table("notification_subscriptions", schema=None) as batch_op:
        batch_op.create_index("ix_notification_subscriptions_topic", ["topic"], unique=False)

    op.create_table(
        "notification_templates",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("template_type", sa.String(length=16), nullable=False),
        sa.Column("subject_template", sa.Text(), nullable=False),
        sa.Column("content_template", sa.Text(), nullable=False),
        sa.Column("html_template", sa.Text(), nullable=True),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("template_data", JSONType, nullable=False),
        sa.CheckConstraint(
            "template_type IN ('email', 'sms', 'push', 'in_app', 'webhook')",
            name=op.f("ck_notification_templates_template_type"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_notification_templates_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_templates")),
    )
    with op.batch_alter_table("notification_templates", schema=None) as batch_op:
        batch_op.create_index(
            "ix_notification_templates_active", ["name", "template_type", "is_active"], unique=False
        )
        batch_op.create_index(
            "uq_notification_templates_version", ["name", "template_type", "language", "version"], unique=True
        )

    op.create_table(
        "notifications",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("recipient_id", sa.Uuid(), nullable=False),
        sa.Column("sender_id", sa.Uuid(), nullable=True),
        sa.Column("notification_type", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=100), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("content_html", sa.Text(), nullable=True),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("template_id", sa.Uuid(), nullable=True),
        sa.Column("event_id", sa.Uuid(), nullable=True),
        sa.Column("broadcast_id", sa.Uuid(), nullable=True),
        sa.Column("critical", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pushed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("metadata", JSONType, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "channel IN ('email', 'sms', 'push', 'in_app', 'webhook')", name=op.f("ck_notifications_channel")
        ),
        sa.CheckConstraint(
            "notification_type IN ('info', 'warning', 'error', 'success')",
            name=op.f("ck_notifications_notification_type"),
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'sent', 'delivered', 'failed', 'read')",
            name=op.f("ck_notifications_status"),
        ),
        sa.ForeignKeyConstraint(
            ["broadcast_id"],
            ["notification_broadcasts.id"],
            name=op.f("fk_notifications_broadcast_id_notification_broadcasts"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["notification_events.id"],
            name=op.f("fk_notifications_event_id_notification_events"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["recipient_id"],
            ["users.id"],
            name=op.f("fk_notifications_recipient_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["notification_templates.id"],
            name=op.f("fk_notifications_template_id_notification_templates"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index("ix_notifications_event", ["event_id"], unique=False)
        batch_op.create_index(
            "ix_notifications_inbox", ["recipient_id", "channel", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_notifications_unpushed",
            ["created_at"],
            unique=False,
            sqlite_where=sa.text("channel = 'in_app' AND pushed_at IS NULL"),
            postgresql_where=sa.text("channel = 'in_app' AND pushed_at IS NULL"),
        )
        batch_op.create_index(
            "uq_notifications_broadcast_recipient",
            ["broadcast_id", "recipient_id", "channel"],
            unique=True,
            sqlite_where=sa.text("broadcast_id IS NOT NULL"),
            postgresql_where=sa.text("broadcast_id IS NOT NULL"),
        )

    op.create_table(
        "delivery_logs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("notification_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("destination", sa.String(length=1000), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempt_count", sa.Integer(), nullable=False),
        sa.Column("last_attempt", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_retry", sa.DateTime(timezone=True), nullable=True),
        sa.Column("digest_key", sa.String(length=100), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("delivery_metadata", JSONType, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('queued', 'sending', 'delivered', 'failed', 'bounced')",
            name=op.f("ck_delivery_logs_status"),
        ),
        sa.ForeignKeyConstraint(
            ["notification_id"],
            ["notifications.id"],
            name=op.f("fk_delivery_logs_notification_id_notifications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_logs")),
    )
    with op.batch_alter_table("delivery_logs", schema=None) as batch_op:
        batch_op.create_index("ix_delivery_logs_due", ["status", "next_retry"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_delivery_logs_notification_id"), ["notification_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("delivery_logs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_delivery_logs_notification_id"))
        batch_op.drop_index("ix_delivery_logs_due")

    op.drop_table("delivery_logs")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_notifications_broadcast_recipient",
            sqlite_where=sa.text("broadcast_id IS NOT NULL"),
            postgresql_where=sa.text("broadcast_id IS NOT NULL"),
        )
        batch_op.drop_index(
            "ix_notifications_unpushed",
            sqlite_where=sa.text("channel = 'in_app' AND pushed_at IS NULL"),
            postgresql_where=sa.text("channel = 'in_app' AND pushed_at IS NULL"),
        )
        batch_op.drop_index("ix_notifications_inbox")
        batch_op.drop_index("ix_notifications_event")

    op.drop_table("notifications")
    with op.batch_alter_table("notification_templates", schema=None) as batch_op:
        batch_op.drop_index("uq_notification_templates_version")
        batch_op.drop_index("ix_notification_templates_active")

    op.drop_table("notification_templates")
    with op.batch_alter_table("notification_subscriptions", schema=None) as batch_op:
        batch_op.drop_index("ix_notification_subscriptions_topic")

    op.drop_table("notification_subscriptions")
    op.drop_table("notification_preferences")
    with op.batch_alter_table("notification_contacts", schema=None) as batch_op:
        batch_op.drop_index("uq_notification_contacts_address")
        batch_op.drop_index(batch_op.f("ix_notification_contacts_user_id"))

    op.drop_table("notification_contacts")
    with op.batch_alter_table("notification_broadcasts", schema=None) as batch_op:
        batch_op.drop_index("ix_notification_broadcasts_status")

    op.drop_table("notification_broadcasts")
    with op.batch_alter_table("notification_events", schema=None) as batch_op:
        batch_op.drop_index("ix_notification_events_status_created")

    op.drop_table("notification_events")
