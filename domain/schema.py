"""The operational database schema (SQLAlchemy 2), shared by the serving layer and Dagster.

Runs unchanged on SQLite (embedded) and PostgreSQL (production); Alembic migrations live in
`domain/migrations` and are tested against both.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time
from datetime import date as date_type
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from domain.ids import new_id

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """`value` in UTC; a naive one (as SQLite returns a timestamp, or an aggregate over one) is read
    as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class UTCDateTime(sa.TypeDecorator):
    """Timezone-aware UTC timestamps on every backend (SQLite stores them naive)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


JSONType = sa.JSON().with_variant(JSONB(), "postgresql")
BigIntPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime, time: sa.Time, dict[str, Any]: JSONType, uuid.UUID: sa.Uuid}


CONTENT_TYPES = ("video", "audio", "image", "article", "episode")
CONTENT_STATUSES = ("draft", "in_review", "scheduled", "published", "archived")


class ContentItem(Base):
    __tablename__ = "content_items"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    type: Mapped[str] = mapped_column(sa.String(16))
    title: Mapped[dict[str, Any]] = mapped_column(JSONType)
    description: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    slug: Mapped[str] = mapped_column(sa.String(200))
    status: Mapped[str] = mapped_column(sa.String(16), default="draft")
    publish_at: Mapped[datetime | None]
    published_at: Mapped[datetime | None]
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # "|tag1|tag2|": lets both backends filter by tag with one indexed-friendly LIKE.
    tag_index: Mapped[str] = mapped_column(sa.Text, default="")
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    search_text: Mapped[str] = mapped_column(sa.Text, default="")
    created_by: Mapped[uuid.UUID | None]
    updated_by: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        sa.CheckConstraint(f"type IN {CONTENT_TYPES}", name="type"),
        sa.CheckConstraint(f"status IN {CONTENT_STATUSES}", name="status"),
        # Slugs are unique among live items; a soft-deleted item frees its slug.
        sa.Index(
            "uq_content_items_slug_live",
            "slug",
            unique=True,
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        ),
        sa.Index("ix_content_items_status_publish_at", "status", "publish_at"),
        sa.Index("ix_content_items_type", "type"),
    )


class OutboxEvent(Base):
    """Domain events, written in the same transaction as the change that caused them.

    `seq` is the cursor sensors read by; `event_id` is the message id the NATS relay publishes
    under, so JetStream drops a re-publish after a relay restart.
    """

    __tablename__ = "outbox_events"

    seq: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    event_id: Mapped[uuid.UUID] = mapped_column(unique=True, default=new_id)
    event_type: Mapped[str] = mapped_column(sa.String(100))
    aggregate_type: Mapped[str] = mapped_column(sa.String(50))
    aggregate_id: Mapped[str] = mapped_column(sa.String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    relayed_at: Mapped[datetime | None]

    __table_args__ = (
        sa.Index(
            "ix_outbox_events_unrelayed",
            "seq",
            sqlite_where=sa.text("relayed_at IS NULL"),
            postgresql_where=sa.text("relayed_at IS NULL"),
        ),
    )


# --- Users and security ------------------------------------------------------------------------


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(sa.String(64))
    email: Mapped[str] = mapped_column(sa.String(254))
    # argon2id ("$argon2id$..."), or bcrypt from an imported account until its next login; None for SSO-only users.
    password_hash: Mapped[str | None] = mapped_column(sa.String(255))
    first_name: Mapped[str] = mapped_column(sa.String(100), default="")
    last_name: Mapped[str] = mapped_column(sa.String(100), default="")
    is_active: Mapped[bool] = mapped_column(default=False)
    is_verified: Mapped[bool] = mapped_column(default=False)
    last_login: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    preferences: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    # TOTP: the secret, encrypted with the platform key; the last accepted time step (replay guard).
    mfa_enabled: Mapped[bool] = mapped_column(default=False)
    totp_secret_encrypted: Mapped[str | None] = mapped_column(sa.String(255))
    totp_last_step: Mapped[int | None] = mapped_column(sa.BigInteger)
    # Where an SSO user comes from: "<issuer>|<subject>".
    external_id: Mapped[str | None] = mapped_column(sa.String(300))

    __table_args__ = (
        sa.Index("uq_users_username", "username", unique=True),  # stored lowercased
        sa.Index("uq_users_email", "email", unique=True),
        sa.Index("uq_users_external_id", "external_id", unique=True),
    )


class Role(Base):
    __tablename__ = "roles"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(sa.String(64), unique=True)
    description: Mapped[str] = mapped_column(sa.String(500), default="")
    is_system_role: Mapped[bool] = mapped_column(default=False)
    permissions: Mapped[list[str]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class UserRole(Base):
    __tablename__ = "user_roles"

    user_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    role_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True
    )
    assigned_by: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    assigned_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    is_active: Mapped[bool] = mapped_column(default=True)


class UserSession(Base):
    """One login on one device: the family of refresh tokens it rotates through."""

    __tablename__ = "user_sessions"

    session_id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    client_type: Mapped[str] = mapped_column(sa.String(16), default="web")  # web | mobile
    device_id: Mapped[str] = mapped_column(sa.String(128), default="")
    # sha256 of the current access token's jti and of the current refresh token (never the tokens).
    access_token: Mapped[str | None] = mapped_column(sa.String(64))
    refresh_token: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    # The refresh token it replaced, accepted for a few seconds (concurrent refreshes).
    previous_refresh_token: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    rotated_at: Mapped[datetime | None]
    ip_address: Mapped[str] = mapped_column(sa.String(64), default="")
    user_agent: Mapped[str] = mapped_column(sa.String(500), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    is_active: Mapped[bool] = mapped_column(default=True)
    revoked_reason: Mapped[str | None] = mapped_column(sa.String(64))


class UsedRefreshToken(Base):
    """Every refresh token a session has rotated past: presenting one again is reuse."""

    __tablename__ = "used_refresh_tokens"

    token_hash: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    session_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("user_sessions.session_id", ondelete="CASCADE"), index=True
    )
    used_at: Mapped[datetime] = mapped_column(default=utcnow)


class UserActivity(Base):
    """The audit trail of authentication and authorization events."""

    __tablename__ = "user_activities"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(sa.String(64))
    resource: Mapped[str] = mapped_column(sa.String(64), default="")
    resource_id: Mapped[str] = mapped_column(sa.String(128), default="")
    ip_address: Mapped[str] = mapped_column(sa.String(64), default="")
    user_agent: Mapped[str] = mapped_column(sa.String(500), default="")
    timestamp: Mapped[datetime] = mapped_column(default=utcnow)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)

    __table_args__ = (
        sa.Index("ix_user_activities_user_time", "user_id", "timestamp"),
        sa.Index("ix_user_activities_action_time", "action", "timestamp"),
    )


class OneTimeToken(Base):
    """Email verification and password reset links: signed, expiring, single use (stored as a hash)."""

    __tablename__ = "one_time_tokens"

    token_hash: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(sa.String(32))  # verify_email | reset_password
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class RecoveryCode(Base):
    __tablename__ = "mfa_recovery_codes"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(sa.String(64))
    used_at: Mapped[datetime | None]


# --- Media -------------------------------------------------------------------------------------

MEDIA_KINDS = ("video", "audio", "image")
UPLOAD_STATUSES = ("pending", "processing", "completed", "failed")


class MediaAsset(Base):
    """One uploaded original. `s3_key` is the object-store key of the original (built from the id,
    never from the client's filename), kept whatever happens to its processing."""

    __tablename__ = "media_assets"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    content_item_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("content_items.id", ondelete="SET NULL"), index=True
    )
    original_filename: Mapped[str] = mapped_column(sa.String(255), default="")
    content_type: Mapped[str] = mapped_column(sa.String(16))  # video | audio | image
    mime_type: Mapped[str] = mapped_column(sa.String(100), default="application/octet-stream")
    file_size: Mapped[int] = mapped_column(sa.BigInteger)
    sha256: Mapped[str] = mapped_column(sa.String(64), default="")
    s3_key: Mapped[str] = mapped_column(sa.String(500))
    cdn_url: Mapped[str] = mapped_column(sa.String(1000), default="")
    upload_status: Mapped[str] = mapped_column(sa.String(16), default="pending")
    language: Mapped[str | None] = mapped_column(sa.String(8))  # of an audio track (ar/en), for dubbing
    is_private: Mapped[bool] = mapped_column(default=False)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    uploaded_by: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        sa.CheckConstraint(f"content_type IN {MEDIA_KINDS}", name="content_type"),
        sa.CheckConstraint(f"upload_status IN {UPLOAD_STATUSES}", name="upload_status"),
        sa.Index("ix_media_assets_status_created", "upload_status", "created_at"),
    )


class MediaVariant(Base):
    __tablename__ = "media_variants"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    media_asset_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("media_assets.id", ondelete="CASCADE"), index=True
    )
    variant_type: Mapped[str] = mapped_column(sa.String(32))  # thumbnail, poster, hls, mp4, audio_only, ...
    format: Mapped[str] = mapped_column(sa.String(16))
    quality: Mapped[str] = mapped_column(sa.String(32), default="")
    s3_key: Mapped[str] = mapped_column(sa.String(500))
    cdn_url: Mapped[str] = mapped_column(sa.String(1000), default="")
    file_size: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    width: Mapped[int | None]
    height: Mapped[int | None]
    duration_s: Mapped[float | None]
    processing_status: Mapped[str] = mapped_column(sa.String(16), default="completed")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MediaJob(Base):
    """The processing of one media asset, as the job-status API and WebSocket show it."""

    __tablename__ = "media_jobs"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    media_asset_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("media_assets.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(sa.String(32), default="process")  # process | transcode | analyze
    status: Mapped[str] = mapped_column(
        sa.String(16), default="pending"
    )  # pending | processing | completed | failed
    stage: Mapped[str] = mapped_column(sa.String(32), default="queued")
    percent: Mapped[float] = mapped_column(default=0.0)
    error: Mapped[str | None] = mapped_column(sa.Text)
    requested: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (sa.Index("ix_media_jobs_status_created", "status", "created_at"),)


class TusUpload(Base):
    """A resumable upload in progress (tus 1.0). Its bytes become parts of the object-store multipart
    upload `multipart_upload_id` of `staging_key` (each part recorded in `parts` as
    `{"number", "etag", "size"}`), except the unfilled tail of the next part, which the API host keeps."""

    __tablename__ = "tus_uploads"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    length: Mapped[int] = mapped_column(sa.BigInteger)
    offset: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    staging_key: Mapped[str] = mapped_column(sa.String(500))
    multipart_upload_id: Mapped[str | None] = mapped_column(sa.String(1024))
    parts: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    owner_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    completed_at: Mapped[datetime | None]
    media_asset_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("media_assets.id", ondelete="SET NULL")
    )


# --- Notifications -----------------------------------------------------------------------------

NOTIFICATION_CHANNELS = ("email", "sms", "push", "in_app", "webhook")
NOTIFICATION_SEVERITIES = ("info", "warning", "error", "success")
NOTIFICATION_STATUSES = ("pending", "sent", "delivered", "failed", "read")
DELIVERY_STATUSES = ("queued", "sending", "delivered", "failed", "bounced")
FREQUENCIES = ("immediate", "hourly", "daily", "weekly")
BROADCAST_STATUSES = ("queued", "running", "completed", "failed", "cancelled")


class NotificationEvent(Base):
    """A domain event the notification rules consumed (from the outbox, by `outbox_seq`): the thread
    its notifications belong to."""

    __tablename__ = "notification_events"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    event_type: Mapped[str] = mapped_column(sa.String(100))
    source_service: Mapped[str] = mapped_column(sa.String(50), default="")
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    outbox_seq: Mapped[int | None] = mapped_column(sa.BigInteger, unique=True)
    processed_at: Mapped[datetime | None]
    notification_count: Mapped[int] = mapped_column(default=0)
    status: Mapped[str] = mapped_column(sa.String(16), default="pending")  # pending | processed | failed
    error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (sa.Index("ix_notification_events_status_created", "status", "created_at"),)


class NotificationTemplate(Base):
    """One version of the template of a notification type (`name`, e.g. `content.published`) for one
    channel and language. Saving a template adds a version and deactivates the previous one."""

    __tablename__ = "notification_templates"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(sa.String(100))
    template_type: Mapped[str] = mapped_column(sa.String(16))  # a channel
    subject_template: Mapped[str] = mapped_column(sa.Text, default="")
    content_template: Mapped[str] = mapped_column(sa.Text, default="")
    html_template: Mapped[str | None] = mapped_column(sa.Text)
    language: Mapped[str] = mapped_column(sa.String(16))
    is_active: Mapped[bool] = mapped_column(default=True)
    version: Mapped[int] = mapped_column(default=1)
    created_by: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    template_data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)  # sample data, push data

    __table_args__ = (
        sa.CheckConstraint(f"template_type IN {NOTIFICATION_CHANNELS}", name="template_type"),
        sa.Index(
            "uq_notification_templates_version", "name", "template_type", "language", "version", unique=True
        ),
        sa.Index("ix_notification_templates_active", "name", "template_type", "is_active"),
    )


class Broadcast(Base):
    """A message to every user matching `criteria`, fanned out by a batched Dagster job that records
    its progress (`cursor`: the last recipient id done) so a crashed run resumes without resending."""

    __tablename__ = "notification_broadcasts"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(sa.String(200), default="")
    category: Mapped[str] = mapped_column(sa.String(100), default="broadcast")
    notification_type: Mapped[str] = mapped_column(sa.String(16), default="info")
    template_name: Mapped[str | None] = mapped_column(sa.String(100))
    message: Mapped[dict[str, Any]] = mapped_column(
        JSONType, default=dict
    )  # {"subject": {lang: ..}, "content": {..}}
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    criteria: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    channels: Mapped[list[str]] = mapped_column(JSONType, default=list)
    critical: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(sa.String(16), default="queued")
    scheduled_at: Mapped[datetime | None]
    total_recipients: Mapped[int | None]
    processed_recipients: Mapped[int] = mapped_column(default=0)
    notifications_created: Mapped[int] = mapped_column(default=0)
    cursor: Mapped[str | None] = mapped_column(sa.String(64))
    error: Mapped[str | None] = mapped_column(sa.Text)
    created_by: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        sa.CheckConstraint(f"status IN {BROADCAST_STATUSES}", name="status"),
        sa.Index("ix_notification_broadcasts_status", "status", "scheduled_at"),
    )


class Notification(Base):
    """One message to one user on one channel. `category` is the notification type preferences and
    templates are keyed by (e.g. `content.published`); `notification_type` is its severity."""

    __tablename__ = "notifications"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    recipient_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    sender_id: Mapped[uuid.UUID | None]
    notification_type: Mapped[str] = mapped_column(sa.String(16), default="info")
    category: Mapped[str] = mapped_column(sa.String(100), default="general")
    channel: Mapped[str] = mapped_column(sa.String(16))
    subject: Mapped[str] = mapped_column(sa.Text, default="")
    content: Mapped[str] = mapped_column(sa.Text, default="")
    content_html: Mapped[str | None] = mapped_column(sa.Text)
    language: Mapped[str] = mapped_column(sa.String(16), default="en")
    template_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("notification_templates.id", ondelete="SET NULL")
    )
    event_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("notification_events.id", ondelete="SET NULL")
    )
    broadcast_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("notification_broadcasts.id", ondelete="SET NULL")
    )
    critical: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(sa.String(16), default="pending")
    scheduled_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    read_at: Mapped[datetime | None]
    # In-app: when it was handed to the WebSocket fan-out (None: still to push, e.g. made by a job).
    pushed_at: Mapped[datetime | None]
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        sa.CheckConstraint(f"channel IN {NOTIFICATION_CHANNELS}", name="channel"),
        sa.CheckConstraint(f"status IN {NOTIFICATION_STATUSES}", name="status"),
        sa.CheckConstraint(f"notification_type IN {NOTIFICATION_SEVERITIES}", name="notification_type"),
        sa.Index("ix_notifications_inbox", "recipient_id", "channel", "created_at"),
        sa.Index("ix_notifications_event", "event_id"),
        sa.Index(
            "uq_notifications_broadcast_recipient",
            "broadcast_id",
            "recipient_id",
            "channel",
            unique=True,
            sqlite_where=sa.text("broadcast_id IS NOT NULL"),
            postgresql_where=sa.text("broadcast_id IS NOT NULL"),
        ),
        sa.Index(
            "ix_notifications_unpushed",
            "created_at",
            sqlite_where=sa.text("channel = 'in_app' AND pushed_at IS NULL"),
            postgresql_where=sa.text("channel = 'in_app' AND pushed_at IS NULL"),
        ),
    )


class DeliveryLog(Base):
    """The delivery of one email/SMS/push/webhook notification to one destination (a user may have
    several devices): due at `next_retry` while queued."""

    __tablename__ = "delivery_logs"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    notification_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("notifications.id", ondelete="CASCADE"), index=True
    )
    channel: Mapped[str] = mapped_column(sa.String(16))
    destination: Mapped[str] = mapped_column(sa.String(1000), default="")
    status: Mapped[str] = mapped_column(sa.String(16), default="queued")
    attempt_count: Mapped[int] = mapped_column(default=0)
    last_attempt: Mapped[datetime | None]
    next_retry: Mapped[datetime | None]
    # Digest deliveries: `<user>|<channel>|<frequency>`; due ones with one key go out as one message.
    digest_key: Mapped[str | None] = mapped_column(sa.String(100))
    error_message: Mapped[str | None] = mapped_column(sa.Text)
    delivery_metadata: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        sa.CheckConstraint(f"status IN {DELIVERY_STATUSES}", name="status"),
        sa.Index("ix_delivery_logs_due", "status", "next_retry"),
    )


class NotificationPreference(Base):
    """A user's choice for one notification type (`*`: every type) on one channel."""

    __tablename__ = "notification_preferences"

    user_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    notification_type: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    channel: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    is_enabled: Mapped[bool] = mapped_column(default=True)
    frequency: Mapped[str] = mapped_column(sa.String(16), default="immediate")
    quiet_hours_start: Mapped[time | None]
    quiet_hours_end: Mapped[time | None]
    timezone: Mapped[str] = mapped_column(sa.String(64), default="UTC")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (sa.CheckConstraint(f"frequency IN {FREQUENCIES}", name="frequency"),)


class NotificationContact(Base):
    """Where a user's SMS, push and webhook notifications go: a phone number, a device token, or a
    webhook URL with its signing secret (encrypted with the platform key)."""

    __tablename__ = "notification_contacts"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(sa.String(16))  # sms | push | webhook
    address: Mapped[str] = mapped_column(sa.String(1000))
    secret_encrypted: Mapped[str | None] = mapped_column(sa.String(500))
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        sa.Index("uq_notification_contacts_address", "user_id", "channel", "address", unique=True),
    )


class NotificationSubscription(Base):
    """A user follows a topic: `series:<id>`, `category:<slug>`, `tag:<tag>` or `content:<id>`."""

    __tablename__ = "notification_subscriptions"

    user_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    topic: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (sa.Index("ix_notification_subscriptions_topic", "topic"),)


# --- Analytics (serving tables published from the warehouse marts, live counters, reports, alerts) ---

REPORT_TYPES = ("content", "user", "search", "system", "custom")
REPORT_FORMATS = ("csv", "xlsx", "pdf", "json")
REPORT_RUN_STATUSES = ("queued", "running", "completed", "failed")
ALERT_KINDS = ("absolute", "percent_change", "same_hour_last_week")
ALERT_COMPARISONS = ("above", "below")
ALERT_STATUSES = ("firing", "resolved")


class ContentMetricsDaily(Base):
    """ContentMetrics: the serving copy of the warehouse mart `fct_content_metrics_daily`, one row per
    content item and UTC day, replaced day by day by the `analytics_serving_tables` asset."""

    __tablename__ = "analytics_content_metrics"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    content_id: Mapped[uuid.UUID]
    date: Mapped[date_type] = mapped_column(sa.Date)
    view_count: Mapped[int] = mapped_column(default=0)
    unique_viewers: Mapped[int] = mapped_column(default=0)
    average_watch_time: Mapped[int] = mapped_column(default=0)  # seconds
    completion_rate: Mapped[float | None] = mapped_column(sa.Float)
    engagement_score: Mapped[float] = mapped_column(sa.Float, default=0.0)
    share_count: Mapped[int] = mapped_column(default=0)
    favorite_count: Mapped[int] = mapped_column(default=0)
    comment_count: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        sa.Index("uq_analytics_content_metrics_day", "content_id", "date", unique=True),
        # Covering the dashboard's per-period scans (daily totals, top content) without the table.
        sa.Index("ix_analytics_content_metrics_date", "date", "content_id", "view_count", "unique_viewers"),
    )


class UserEngagementDaily(Base):
    """UserEngagement: the serving copy of `fct_user_engagement_daily`, one row per user and UTC day."""

    __tablename__ = "analytics_user_engagement"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID]
    date: Mapped[date_type] = mapped_column(sa.Date)
    session_count: Mapped[int] = mapped_column(default=0)
    total_session_time: Mapped[int] = mapped_column(default=0)  # seconds
    page_views: Mapped[int] = mapped_column(default=0)
    content_interactions: Mapped[int] = mapped_column(default=0)
    search_queries: Mapped[int] = mapped_column(default=0)
    downloads: Mapped[int] = mapped_column(default=0)
    shares: Mapped[int] = mapped_column(default=0)
    last_activity: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        sa.Index("uq_analytics_user_engagement_day", "user_id", "date", unique=True),
        sa.Index("ix_analytics_user_engagement_date", "date", "user_id"),  # distinct active users
    )


class SearchAnalyticsDaily(Base):
    """SearchAnalytics: the serving copy of `fct_search_analytics_daily`, one row per UTC day,
    interface language, user type (anonymous/registered) and normalized query."""

    __tablename__ = "analytics_search"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    query_text: Mapped[str] = mapped_column(sa.String(500))
    date: Mapped[date_type] = mapped_column(sa.Date)
    language: Mapped[str] = mapped_column(sa.String(16))
    user_type: Mapped[str] = mapped_column(sa.String(16))  # anonymous | registered
    search_count: Mapped[int] = mapped_column(default=0)
    result_count: Mapped[float | None] = mapped_column(sa.Float)  # average results per search
    click_count: Mapped[int] = mapped_column(default=0)
    click_through_rate: Mapped[float | None] = mapped_column(sa.Float)
    average_position: Mapped[float | None] = mapped_column(sa.Float)
    zero_result_count: Mapped[int] = mapped_column(default=0)
    zero_result_rate: Mapped[float | None] = mapped_column(sa.Float)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        sa.Index("uq_analytics_search_day", "date", "language", "user_type", "query_text", unique=True),
    )


class LiveMinute(Base):
    """Live counters per UTC minute, added to by every API process every couple of seconds (events
    tracked by type, `events.<type>`): the dashboard's last minutes and the alert rules read them.
    Kept 8 days (alerts compare with the same hour last week)."""

    __tablename__ = "analytics_live_minutes"

    minute: Mapped[datetime] = mapped_column(primary_key=True)
    metric: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    value: Mapped[float] = mapped_column(sa.Float, default=0.0)


class RouteMinute(Base):
    """SystemMetrics of the API per route and UTC minute, collected by middleware: requests, client
    and server errors, latency sum/max and a latency histogram (counts per bucket of
    `domain.analytics.health.LATENCY_BUCKETS_MS`) from which percentiles are read."""

    __tablename__ = "analytics_route_minutes"

    minute: Mapped[datetime] = mapped_column(primary_key=True)
    route: Mapped[str] = mapped_column(sa.String(300), primary_key=True)  # "GET /api/v1/content/{id}"
    requests: Mapped[int] = mapped_column(default=0)
    client_errors: Mapped[int] = mapped_column(default=0)
    server_errors: Mapped[int] = mapped_column(default=0)
    latency_sum_ms: Mapped[float] = mapped_column(sa.Float, default=0.0)
    latency_max_ms: Mapped[float] = mapped_column(sa.Float, default=0.0)
    latency_buckets: Mapped[list[int]] = mapped_column(JSONType, default=list)


class Report(Base):
    """A report definition: what to compute (`report_type`, `configuration`: period, formats,
    language), when (`schedule`, a cron expression in UTC, or none for on-demand) and for whom
    (`recipients`: user ids or email addresses)."""

    __tablename__ = "analytics_reports"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    report_type: Mapped[str] = mapped_column(sa.String(16))
    configuration: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    schedule: Mapped[str | None] = mapped_column(sa.String(100))
    recipients: Mapped[list[str]] = mapped_column(JSONType, default=list)
    last_generated: Mapped[datetime | None]
    next_run_at: Mapped[datetime | None]
    is_active: Mapped[bool] = mapped_column(default=True)
    created_by: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        sa.CheckConstraint(f"report_type IN {REPORT_TYPES}", name="report_type"),
        sa.Index("ix_analytics_reports_due", "is_active", "next_run_at"),
    )


class ReportRun(Base):
    """One generation of a report (a report job): its period, its files in the object store (format ->
    key) and its outcome."""

    __tablename__ = "analytics_report_runs"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    report_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("analytics_reports.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(sa.String(16), default="queued")
    trigger: Mapped[str] = mapped_column(sa.String(16), default="manual")  # manual | schedule
    period_start: Mapped[datetime]
    period_end: Mapped[datetime]
    files: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    error: Mapped[str | None] = mapped_column(sa.Text)
    requested_by: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    __table_args__ = (
        sa.CheckConstraint(f"status IN {REPORT_RUN_STATUSES}", name="status"),
        sa.Index("ix_analytics_report_runs_status", "status", "created_at"),
    )


class AlertRule(Base):
    """A threshold on a live metric (`metric`: `events.<type>`, `http.requests`, `http.error_rate`,
    `http.p95_ms`) summed over the last `window_minutes`: `absolute` compares the value with
    `threshold`; `percent_change` the change in percent against the window before; and
    `same_hour_last_week` the change in percent against the same window 7 days earlier."""

    __tablename__ = "analytics_alert_rules"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(sa.String(200))
    metric: Mapped[str] = mapped_column(sa.String(100))
    kind: Mapped[str] = mapped_column(sa.String(32), default="absolute")
    comparison: Mapped[str] = mapped_column(sa.String(8), default="above")
    threshold: Mapped[float] = mapped_column(sa.Float)
    window_minutes: Mapped[int] = mapped_column(default=5)
    recipients: Mapped[list[str]] = mapped_column(JSONType, default=list)  # user ids
    escalate_after: Mapped[int] = mapped_column(default=3)  # evaluations still firing before escalating
    escalation_recipients: Mapped[list[str]] = mapped_column(JSONType, default=list)
    is_active: Mapped[bool] = mapped_column(default=True)
    created_by: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        sa.CheckConstraint(f"kind IN {ALERT_KINDS}", name="kind"),
        sa.CheckConstraint(f"comparison IN {ALERT_COMPARISONS}", name="comparison"),
    )


class Alert(Base):
    """One breach of a rule, from the evaluation that found it (`fired_at`) to the one that found the
    metric back within the threshold (`resolved_at`). `breaches` counts the evaluations that found
    it firing; past the rule's `escalate_after` it is escalated once."""

    __tablename__ = "analytics_alerts"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    rule_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("analytics_alert_rules.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(sa.String(16), default="firing")
    value: Mapped[float] = mapped_column(sa.Float)
    baseline: Mapped[float | None] = mapped_column(sa.Float)
    breaches: Mapped[int] = mapped_column(default=1)
    fired_at: Mapped[datetime]
    last_evaluated_at: Mapped[datetime]
    escalated_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    message: Mapped[str] = mapped_column(sa.Text, default="")

    __table_args__ = (
        sa.CheckConstraint(f"status IN {ALERT_STATUSES}", name="status"),
        sa.Index("ix_analytics_alerts_rule_status", "rule_id", "status"),
    )


# --- Imports ---------------------------------------------------------------------------------------

IMPORT_SOURCE_TYPES = ("youtube", "rss", "api", "manual")
IMPORT_CONFLICT_POLICIES = ("skip", "overwrite", "merge")
IMPORT_PUBLISH_POLICIES = ("draft", "published")
IMPORT_JOB_TYPES = ("full_sync", "incremental", "manual")
IMPORT_JOB_STATUSES = ("pending", "running", "completed", "failed", "paused")
IMPORT_ITEM_STATUSES = ("success", "failed", "skipped")


class ImportSource(Base):
    """Where content is imported from: a YouTube channel, an RSS/Atom feed, a REST API or manual
    files, with its mapping rules, cron schedule (UTC) and policies. `locator` is what the source
    points at (channel id or handle, feed or API URL), unique among live sources so the same feed is
    subscribed once. The poll state (`failure_count`, `last_error`, `next_poll_at`, the conditional-GET
    validators) is the source's own; a deleted source keeps its rows (`deleted_at`) so the origin of
    the content it imported stays queryable."""

    __tablename__ = "import_sources"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(sa.String(200))
    source_type: Mapped[str] = mapped_column(sa.String(16))
    locator: Mapped[str] = mapped_column(sa.String(2000), default="")
    configuration: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    mapping_rules: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    schedule: Mapped[str | None] = mapped_column(sa.String(100))
    conflict_policy: Mapped[str] = mapped_column(sa.String(16), default="merge")
    publish_policy: Mapped[str] = mapped_column(sa.String(16), default="draft")
    is_active: Mapped[bool] = mapped_column(default=True)
    last_sync: Mapped[datetime | None]
    next_poll_at: Mapped[datetime | None]
    failure_count: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    etag: Mapped[str | None] = mapped_column(sa.String(500))
    last_modified: Mapped[str | None] = mapped_column(sa.String(100))
    created_by: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    updated_by: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[datetime | None]

    __table_args__ = (
        sa.CheckConstraint(f"source_type IN {IMPORT_SOURCE_TYPES}", name="source_type"),
        sa.CheckConstraint(f"conflict_policy IN {IMPORT_CONFLICT_POLICIES}", name="conflict_policy"),
        sa.CheckConstraint(f"publish_policy IN {IMPORT_PUBLISH_POLICIES}", name="publish_policy"),
        sa.Index(
            "uq_import_sources_locator_live",
            "source_type",
            "locator",
            unique=True,
            sqlite_where=sa.text("deleted_at IS NULL AND locator != ''"),
            postgresql_where=sa.text("deleted_at IS NULL AND locator != ''"),
        ),
        sa.Index("ix_import_sources_due", "is_active", "next_poll_at"),
    )


class ImportJob(Base):
    """One run of a source: its counters (items new / updated / unchanged / skipped / failed), the
    per-item errors (`error_log`, capped; `error_count` counts them all), the YouTube quota units it
    spent, and the resume cursor (`cursor`: the last page or token whose items are committed), so a
    crashed or paused run continues where it stopped."""

    __tablename__ = "import_jobs"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    source_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("import_sources.id", ondelete="CASCADE"))
    job_type: Mapped[str] = mapped_column(sa.String(16))
    status: Mapped[str] = mapped_column(sa.String(16), default="pending")
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    total_items: Mapped[int | None]
    processed_items: Mapped[int] = mapped_column(default=0)
    successful_imports: Mapped[int] = mapped_column(default=0)
    failed_imports: Mapped[int] = mapped_column(default=0)
    created_items: Mapped[int] = mapped_column(default=0)
    updated_items: Mapped[int] = mapped_column(default=0)
    unchanged_items: Mapped[int] = mapped_column(default=0)
    skipped_items: Mapped[int] = mapped_column(default=0)
    quota_units: Mapped[int] = mapped_column(default=0)
    cursor: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    error_log: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    error_count: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(sa.Text)  # why the run failed or paused
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    created_by: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        sa.CheckConstraint(f"job_type IN {IMPORT_JOB_TYPES}", name="job_type"),
        sa.CheckConstraint(f"status IN {IMPORT_JOB_STATUSES}", name="status"),
        sa.Index("ix_import_jobs_source_created", "source_id", "created_at"),
        sa.Index("ix_import_jobs_status_created", "status", "created_at"),
    )


class ImportedContent(Base):
    """One external item of a source (unique by `dedupe_key`, e.g. `youtube:<videoId>`), the content
    item it became and its last import: the source record as fetched (`original_data`), as mapped
    (`transformed_data`, what hand edits are told apart from), and its hash (`content_hash`), so a
    re-run neither duplicates it nor rewrites it when it has not changed. `unlocked_fields` are the
    fields an editor released to the source again after changing them by hand."""

    __tablename__ = "imported_content"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    source_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("import_sources.id", ondelete="CASCADE"))
    import_job_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("import_jobs.id", ondelete="SET NULL"), index=True
    )
    dedupe_key: Mapped[str] = mapped_column(sa.String(500))
    external_id: Mapped[str] = mapped_column(sa.String(500))
    external_url: Mapped[str | None] = mapped_column(sa.String(2000))
    content_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("content_items.id", ondelete="SET NULL"), index=True
    )
    import_status: Mapped[str] = mapped_column(sa.String(16))
    content_hash: Mapped[str | None] = mapped_column(sa.String(64))
    original_data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    transformed_data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    unlocked_fields: Mapped[list[str]] = mapped_column(JSONType, default=list)
    error_message: Mapped[str | None] = mapped_column(sa.Text)
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        sa.CheckConstraint(f"import_status IN {IMPORT_ITEM_STATUSES}", name="import_status"),
        sa.Index("uq_imported_content_dedupe", "source_id", "dedupe_key", unique=True),
        sa.Index("ix_imported_content_external", "external_id"),
    )
