"""The in-app inbox: listing (filters, threads, cursor pages), read state, acknowledgements, and the
claim of in-app notifications still to push over the WebSocket.

An in-app notification is visible once due (`scheduled_at` empty or past). It is unread while
`read_at` is empty. Its thread is the domain event it came from (`event_id`), else itself. Ids are
UUIDv7, so ordering by id is ordering by creation time and a page ends at an exact id cursor.

`claim_unpushed` is how notifications made outside the API process (broadcast and rule jobs insert
them with `pushed_at` empty) reach connected users: one UPDATE sets `pushed_at` on a batch chosen by
a subquery and returns the rows it changed, so with several API processes each row is claimed (and
published) by exactly one of them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from domain.errors import NotFound
from domain.notifications.templates import text_direction
from domain.schema import Notification, utcnow

IN_APP = "in_app"
STATUS_FILTERS = ("unread", "read", "all")
# A literal (not a bound parameter), so SQLite and PostgreSQL can use the partial index
# `ix_notifications_unpushed` whose predicate it repeats.
_UNPUSHED = sa.text("notifications.channel = 'in_app' AND notifications.pushed_at IS NULL")


def _due(now: datetime) -> sa.ColumnElement[bool]:
    return sa.or_(Notification.scheduled_at.is_(None), Notification.scheduled_at <= now)


def _visible(user_id: uuid.UUID, now: datetime) -> list[sa.ColumnElement[bool]]:
    return [Notification.recipient_id == user_id, Notification.channel == IN_APP, _due(now)]


@dataclass(frozen=True)
class Entry:
    """One inbox line: a notification, or the latest one of a thread with the thread's counts."""

    notification: Notification
    thread_id: uuid.UUID
    count: int = 1
    unread: int = 0


@dataclass(frozen=True)
class Page:
    entries: list[Entry]
    next_before: uuid.UUID | None  # pass as `before` for the next page; None: last page
    unread_count: int


def thread_of(notification: Notification) -> uuid.UUID:
    return notification.event_id or notification.id


def unread_count(session: Session, user_id: uuid.UUID, now: datetime | None = None) -> int:
    query = (
        sa.select(sa.func.count())
        .select_from(Notification)
        .where(*_visible(user_id, now or utcnow()), Notification.read_at.is_(None))
    )
    return int(session.scalar(query) or 0)


def page(
    session: Session,
    user_id: uuid.UUID,
    *,
    status: str = "all",
    category: str | None = None,
    limit: int = 20,
    before: uuid.UUID | None = None,
    threads: bool = False,
    now: datetime | None = None,
) -> Page:
    """Newest first. With `threads`, one entry per thread (its latest notification, how many it has
    and how many are unread); `status` then keeps threads with (`unread`) or without (`read`) unread
    notifications."""
    now = now or utcnow()
    conditions = _visible(user_id, now)
    if category:
        conditions.append(Notification.category == category)
    if threads:
        thread = sa.func.coalesce(Notification.event_id, Notification.id)
        window = {"partition_by": thread}
        ranked = (
            sa.select(
                Notification.id.label("id"),
                thread.label("thread_id"),
                sa.func.row_number().over(**window, order_by=Notification.id.desc()).label("rank"),
                sa.func.count().over(**window).label("total"),
                sa.func.sum(sa.case((Notification.read_at.is_(None), 1), else_=0))
                .over(**window)
                .label("unread"),
            )
            .where(*conditions)
            .subquery()
        )
        query = (
            sa.select(Notification, ranked.c.thread_id, ranked.c.total, ranked.c.unread)
            .join(ranked, ranked.c.id == Notification.id)
            .where(ranked.c.rank == 1)
        )
        if status == "unread":
            query = query.where(ranked.c.unread > 0)
        elif status == "read":
            query = query.where(ranked.c.unread == 0)
    else:
        query = sa.select(Notification).where(*conditions)
        if status == "unread":
            query = query.where(Notification.read_at.is_(None))
        elif status == "read":
            query = query.where(Notification.read_at.is_not(None))
    if before is not None:
        query = query.where(Notification.id < before)
    rows = list(session.execute(query.order_by(Notification.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    if threads:
        entries = [Entry(n, uuid.UUID(str(t)), int(total), int(unread or 0)) for n, t, total, unread in rows]
    else:
        entries = [Entry(n, thread_of(n), 1, int(n.read_at is None)) for (n,) in rows]
    next_before = entries[-1].notification.id if more and entries else None
    return Page(entries, next_before, unread_count(session, user_id, now))


def _own_in_app(session: Session, user_id: uuid.UUID, notification_id: uuid.UUID) -> Notification:
    row = session.get(Notification, notification_id)
    if row is None or row.recipient_id != user_id or row.channel != IN_APP:
        raise NotFound(f"notification {notification_id} is not in your inbox")
    return row


def mark_read(
    session: Session, user_id: uuid.UUID, notification_id: uuid.UUID, read: bool, now: datetime | None = None
) -> tuple[Notification, bool]:
    """Set the read state of one of the user's in-app notifications; (row, whether it changed).
    Marking unread puts it back to `delivered`. Another user's notification is `NotFound`."""
    now = now or utcnow()
    row = _own_in_app(session, user_id, notification_id)
    if read == (row.read_at is not None):
        return row, False
    if read:
        row.status, row.read_at = "read", now
        row.delivered_at = row.delivered_at or now
    else:
        row.status, row.read_at = "delivered", None
    session.flush()
    return row, True


def mark_all_read(
    session: Session, user_id: uuid.UUID, *, category: str | None = None, now: datetime | None = None
) -> list[uuid.UUID]:
    """Mark every unread in-app notification of the user read; the ids it changed."""
    now = now or utcnow()
    conditions = [*_visible(user_id, now), Notification.read_at.is_(None)]
    if category:
        conditions.append(Notification.category == category)
    changed = session.execute(
        sa.update(Notification)
        .where(*conditions)
        .values(
            status="read",
            read_at=now,
            delivered_at=sa.func.coalesce(Notification.delivered_at, now),
        )
        .returning(Notification.id),
        execution_options={"synchronize_session": False},
    )
    return [row.id for row in changed]


def acknowledge(
    session: Session, user_id: uuid.UUID, notification_id: uuid.UUID, now: datetime | None = None
) -> Notification | None:
    """The client confirmed receipt: `sent` -> `delivered`. None when it is not the user's."""
    row = session.get(Notification, notification_id)
    if row is None or row.recipient_id != user_id or row.channel != IN_APP:
        return None
    if row.status in ("pending", "sent"):
        row.status = "delivered"
        row.delivered_at = now or utcnow()
        session.flush()
    return row


def claim_unpushed(session: Session, *, limit: int = 500, now: datetime | None = None) -> list[Notification]:
    """Mark up to `limit` due in-app notifications not yet pushed as pushed, and return them (oldest
    first). Concurrent claimers never get the same row: the UPDATE re-checks `pushed_at IS NULL`
    (PostgreSQL re-evaluates it after waiting on a row lock; SQLite has one writer at a time), and on
    PostgreSQL rows another claimer holds are skipped rather than waited for."""
    now = now or utcnow()
    batch = (
        sa.select(Notification.id)
        .where(_UNPUSHED, _due(now))
        .order_by(Notification.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claimed = session.scalars(
        sa.update(Notification)
        .where(Notification.id.in_(batch.scalar_subquery()), Notification.pushed_at.is_(None))
        .values(pushed_at=now)
        .returning(Notification),
        execution_options={"synchronize_session": False},
    )
    return sorted(claimed, key=lambda n: n.id)


def any_unpushed(session: Session, now: datetime | None = None) -> bool:
    query = sa.select(Notification.id).where(_UNPUSHED, _due(now or utcnow())).limit(1)
    return session.scalar(query) is not None


def message(notification: Notification) -> dict[str, Any]:
    """What the WebSocket sends for a new in-app notification."""
    return {
        "type": "notification",
        "id": str(notification.id),
        "recipient_id": str(notification.recipient_id),
        "thread_id": str(thread_of(notification)),
        "category": notification.category,
        "notification_type": notification.notification_type,
        "subject": notification.subject,
        "content": notification.content,
        "language": notification.language,
        "direction": text_direction(notification.language),
        "critical": notification.critical,
        "status": notification.status,
        "metadata": notification.meta or {},
        "created_at": notification.created_at.isoformat() if notification.created_at else None,
    }
