"""Writing domain events to the transactional outbox, and reading it by cursor."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from domain.schema import OutboxEvent, utcnow


def record_event(
    session: Session,
    event_type: str,
    aggregate_type: str,
    aggregate_id: object,
    payload: dict[str, Any],
    *,
    at: datetime | None = None,
) -> OutboxEvent:
    """Add an event to the caller's transaction: it commits or rolls back with the change."""
    event = OutboxEvent(
        event_type=event_type,
        aggregate_type=aggregate_type,
        aggregate_id=str(aggregate_id),
        payload=payload,
        occurred_at=at or utcnow(),
    )
    session.add(event)
    return event


def events_after(
    session: Session, seq: int, *, limit: int = 500, types: tuple[str, ...] = ()
) -> list[OutboxEvent]:
    query = sa.select(OutboxEvent).where(OutboxEvent.seq > seq).order_by(OutboxEvent.seq).limit(limit)
    if types:
        query = query.where(OutboxEvent.event_type.in_(types))
    return list(session.scalars(query))


def unrelayed(session: Session, *, limit: int = 500) -> list[OutboxEvent]:
    query = (
        sa.select(OutboxEvent).where(OutboxEvent.relayed_at.is_(None)).order_by(OutboxEvent.seq).limit(limit)
    )
    return list(session.scalars(query))


def count_unrelayed(session: Session) -> int:
    return session.scalar(
        sa.select(sa.func.count()).select_from(OutboxEvent).where(OutboxEvent.relayed_at.is_(None))
    )


def mark_relayed(session: Session, seqs: list[int], at: datetime | None = None) -> None:
    if seqs:
        session.execute(
            sa.update(OutboxEvent).where(OutboxEvent.seq.in_(seqs)).values(relayed_at=at or utcnow())
        )


def max_seq(session: Session) -> int:
    return session.scalar(sa.select(sa.func.coalesce(sa.func.max(OutboxEvent.seq), 0))) or 0
