"""The operational database schema (SQLAlchemy 2), shared by the serving layer and Dagster.

Runs unchanged on SQLite (embedded) and PostgreSQL (production); Alembic migrations live in
`domain/migrations` and are tested against both.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
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
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = sa.JSON().with_variant(JSONB(), "postgresql")
BigIntPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSONType, uuid.UUID: sa.Uuid}


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
