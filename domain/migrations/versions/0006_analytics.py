"""analytics serving tables, live counters, reports, alerts

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "analytics_content_metrics",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("content_id", sa.Uuid(), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("view_count", sa.Integer(), nullable=False),
        sa.Column("unique_viewers", sa.Integer(), nullable=False),
        sa.Column("average_watch_time", sa.Integer(), nullable=False),
        sa.Column("completion_rate", sa.Float(), nullable=True),
        sa.Column("engagement_score", sa.Float(), nullable=False),
        sa.Column("share_count", sa.Integer(), nullable=False),
        sa.Column("favorite_count", sa.Integer(), nullable=False),
        sa.Column("comment_count", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_content_metrics")),
    )
    with op.batch_alter_table("analytics_content_metrics", schema=None) as batch_op:
        batch_op.create_index(
            "ix_analytics_content_metrics_date",
            ["date", "content_id", "view_count", "unique_viewers"],
            unique=False,
        )
        batch_op.create_index("uq_analytics_content_metrics_day", ["content_id", "date"], unique=True)

    op.create_table(
        "analytics_live_minutes",
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("metric", sa.String(length=100), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("minute", "metric", name=op.f("pk_analytics_live_minutes")),
    )
    op.create_table(
        "analytics_route_minutes",
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("route", sa.String(length=300), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("client_errors", sa.Integer(), nullable=False),
        sa.Column("server_errors", sa.Integer(), nullable=False),
        sa.Column("latency_sum_ms", sa.Float(), nullable=False),
        sa.Column("latency_max_ms", sa.Float(), nullable=False),
        sa.Column("latency_buckets", JSONType, nullable=False),
        sa.PrimaryKeyConstraint("minute", "route", name=op.f("pk_analytics_route_minutes")),
    )
    op.create_table(
        "analytics_search",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("query_text", sa.String(length=500), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("user_type", sa.String(length=16), nullable=False),
        sa.Column("search_count", sa.Integer(), nullable=False),
        sa.Column("result_count", sa.Float(), nullable=True),
        sa.Column("click_count", sa.Integer(), nullable=False),
        sa.Column("click_through_rate", sa.Float(), nullable=True),
        sa.Column("average_position", sa.Float(), nullable=True),
        sa.Column("zero_result_count", sa.Integer(), nullable=False),
        sa.Column("zero_result_rate", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_search")),
    )
    with op.batch_alter_table("analytics_search", schema=None) as batch_op:
        batch_op.create_index(
            "uq_analytics_search_day", ["date", "language", "user_type", "query_text"], unique=True
        )

    op.create_table(
        "analytics_user_engagement",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("session_count", sa.Integer(), nullable=False),
        sa.Column("total_session_time", sa.Integer(), nullable=False),
        sa.Column("page_views", sa.Integer(), nullable=False),
        sa.Column("content_interactions", sa.Integer(), nullable=False),
        sa.Column("search_queries", sa.Integer(), nullable=False),
        sa.Column("downloads", sa.Integer(), nullable=False),
        sa.Column("shares", sa.Integer(), nullable=False),
        sa.Column("last_activity", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_user_engagement")),
    )
    with op.batch_alter_table("analytics_user_engagement", schema=None) as batch_op:
        batch_op.create_index("ix_analytics_user_engagement_date", ["date", "user_id"], unique=False)
        batch_op.create_index("uq_analytics_user_engagement_day", ["user_id", "date"], unique=True)

    op.create_table(
        "analytics_alert_rules",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("metric", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("comparison", sa.String(length=8), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("window_minutes", sa.Integer(), nullable=False),
        sa.Column("recipients", JSONType, nullable=False),
        sa.Column("escalate_after", sa.Integer(), nullable=False),
        sa.Column("escalation_recipients", JSONType, nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "comparison IN ('above', 'below')", name=op.f("ck_analytics_alert_rules_comparison")
        ),
        sa.CheckConstraint(
            "kind IN ('absolute', 'percent_change', 'same_hour_last_week')",
            name=op.f("ck_analytics_alert_rules_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_analytics_alert_rules_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_alert_rules")),
    )
    op.create_table(
        "analytics_reports",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("report_type", sa.String(length=16), nullable=False),
        sa.Column("configuration", JSONType, nullable=False),
        sa.Column("schedule", sa.String(length=100), nullable=True),
        sa.Column("recipients", JSONType, nullable=False),
        sa.Column("last_generated", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "report_type IN ('content', 'user', 'search', 'system', 'custom')",
            name=op.f("ck_analytics_reports_report_type"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_analytics_reports_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_reports")),
    )
    with op.batch_alter_table("analytics_reports", schema=None) as batch_op:
        batch_op.create_index("ix_analytics_reports_due", ["is_active", "next_run_at"], unique=False)

    op.create_table(
        "analytics_alerts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("rule_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("baseline", sa.Float(), nullable=True),
        sa.Column("breaches", sa.Integer(), nullable=False),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_evaluated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.CheckConstraint("status IN ('firing', 'resolved')", name=op.f("ck_analytics_alerts_status")),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["analytics_alert_rules.id"],
            name=op.f("fk_analytics_alerts_rule_id_analytics_alert_rules"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_alerts")),
    )
    with op.batch_alter_table("analytics_alerts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_analytics_alerts_rule_id"), ["rule_id"], unique=False)
        batch_op.create_index("ix_analytics_alerts_rule_status", ["rule_id", "status"], unique=False)

    op.create_table(
        "analytics_report_runs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("report_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("files", JSONType, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("requested_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'completed', 'failed')",
            name=op.f("ck_analytics_report_runs_status"),
        ),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["analytics_reports.id"],
            name=op.f("fk_analytics_report_runs_report_id_analytics_reports"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["requested_by"],
            ["users.id"],
            name=op.f("fk_analytics_report_runs_requested_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_report_runs")),
    )
    with op.batch_alter_table("analytics_report_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_analytics_report_runs_report_id"), ["report_id"], unique=False)
        batch_op.create_index("ix_analytics_report_runs_status", ["status", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("analytics_report_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_analytics_report_runs_status")
        batch_op.drop_index(batch_op.f("ix_analytics_report_runs_report_id"))

    op.drop_table("analytics_report_runs")
    with op.batch_alter_table("analytics_alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_analytics_alerts_rule_status")
        batch_op.drop_index(batch_op.f("ix_analytics_alerts_rule_id"))

    op.drop_table("analytics_alerts")
    with op.batch_alter_table("analytics_reports", schema=None) as batch_op:
        batch_op.drop_index("ix_analytics_reports_due")

    op.drop_table("analytics_reports")
    op.drop_table("analytics_alert_rules")
    with op.batch_alter_table("analytics_user_engagement", schema=None) as batch_op:
        batch_op.drop_index("uq_analytics_user_engagement_day")
        batch_op.drop_index("ix_analytics_user_engagement_date")

    op.drop_table("analytics_user_engagement")
    with op.batch_alter_table("analytics_search", schema=None) as batch_op:
        batch_op.drop_index("uq_analytics_search_day")

    op.drop_table("analytics_search")
    op.drop_table("analytics_route_minutes")
    op.drop_table("analytics_live_minutes")
    with op.batch_alter_table("analytics_content_metrics", schema=None) as batch_op:
        batch_op.drop_index("uq_analytics_content_metrics_day")
        batch_op.drop_index("ix_analytics_content_metrics_date")

    op.drop_table("analytics_content_metrics")
