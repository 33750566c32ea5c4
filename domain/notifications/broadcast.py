"""Fanning a broadcast out to its audience in batches, resumable after a crash without duplicates.

`run` walks `audience.recipient_query(criteria)` by user id, `batch_size` users at a time. Each batch
is ONE transaction that inserts the batch's notifications (a bulk insert that ignores any row the
unique index `(broadcast_id, recipient_id, channel)` already holds: SQLite `INSERT OR IGNORE`-style
`ON CONFLICT DO NOTHING`, the same on PostgreSQL), their delivery logs for email/SMS/push/webhook
(respecting preferences, quiet hours and digests as `service.send` does), and advances the
broadcast's `cursor` (the last user id done), `processed_recipients` and `notifications_created`.
A crash loses at most the batch in flight, which was never committed; the next run starts after
the cursor, and the unique index stops a second notification even if two runs overlapped.

The message is rendered once per channel and language, not per recipient (a broadcast template
reads the broadcast's `data`, not the recipient). In-app notifications are inserted `sent` with
`pushed_at` unset (the API's pump pushes them to connected users); the other channels are queued
for the delivery drain, which applies the per-channel rate limits.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from domain import outbox
from domain.errors import NotFound
from domain.ids import new_id
from domain.notifications import audience, schedule, service, templates
from domain.schema import Broadcast, DeliveryLog, Notification, User, utcnow

SessionFactory = Callable[[], AbstractContextManager[Session]]
BATCH_SIZE = 2_000
RESUMABLE = ("queued", "running", "failed")
ERROR_MAX = 2000


@dataclass
class Progress:
    broadcast_id: uuid.UUID
    status: str
    total: int = 0
    processed: int = 0
    created: int = 0
    batches: int = 0  # batches done by this run
    resumed_from: str | None = None  # the cursor this run started after
    not_notified: Counter[str] = field(default_factory=Counter)  # by reason (this run)
    seconds: float = 0.0

    @property
    def percent(self) -> float:
        if not self.total:
            return 100.0 if self.status == "completed" else 0.0
        return round(min(100.0, 100.0 * self.processed / self.total), 1)


def _draft(row: Broadcast) -> service.Draft:
    message = row.message or {}
    return service.Draft(
        category=row.category,
        channels=tuple(row.channels or ("in_app",)),
        template=row.template_name,
        subject=message.get("subject"),
        content=message.get("content"),
        data=dict(row.data or {}),
        notification_type=row.notification_type,
        critical=row.critical,
        sender_id=row.created_by,
        broadcast_id=row.id,
    )


class _Renderer:
    """The rendered message per (channel, locale), computed on first use and kept for the run."""

    def __init__(self, session: Session, draft: service.Draft, default_language: str) -> None:
        self.draft = draft
        self.default_language = default_language
        self.available = {
            channel: service.active_templates(session, draft.template, channel) if draft.template else {}
            for channel in draft.channels
        }
        self.cache: dict[tuple[str, str], tuple[templates.Rendered, uuid.UUID | None] | None] = {}

    def __call__(self, channel: str, locale: str) -> tuple[templates.Rendered, uuid.UUID | None] | None:
        key = (channel, locale)
        if key not in self.cache:
            self.cache[key] = service.compose(
                self.draft, channel, locale, self.default_language, self.available[channel], self.draft.data
            )
        return self.cache[key]


def _insert_ignoring_duplicates(session: Session, rows: list[dict[str, Any]]) -> set[uuid.UUID]:
    """Insert notification rows, skipping any the unique index already has; the ids inserted."""
    if not rows:
        return set()
    table = Notification.__table__
    dialect = session.get_bind().dialect.name
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    statement = insert.on_conflict_do_nothing().returning(table.c.id)
    return set(session.scalars(statement, rows))


def fan_out(
    session: Session,
    row: Broadcast,
    user_ids: Sequence[uuid.UUID],
    *,
    render: _Renderer,
    now: datetime,
    default_language: str,
) -> tuple[int, Counter[str]]:
    """Create the notifications of one batch of recipients (in the caller's transaction); returns
    (notifications inserted, recipients not notified by reason)."""
    draft = render.draft
    skipped: Counter[str] = Counter()
    users = {
        user_id: SimpleNamespace(id=user_id, email=email, preferences=preferences or {})
        for user_id, email, preferences in session.execute(
            sa.select(User.id, User.email, User.preferences).where(User.id.in_(list(user_ids)))
        )
    }
    prefs = service.preferences_for(session, list(users))
    notifications: list[dict[str, Any]] = []
    logs: dict[uuid.UUID, list[dict[str, Any]]] = {}
    for channel in draft.channels:
        targets = (
            service.destinations(session, list(users.values()), channel)  # type: ignore[arg-type]
            if channel != "in_app"
            else {}
        )
        for user_id in user_ids:
            user = users.get(user_id)
            if user is None:
                skipped["no such user"] += 1
                continue
            pref = service.effective(prefs.get(user_id, {}), draft.category, channel)
            if not pref.is_enabled and not draft.critical:
                skipped["turned off in the recipient's preferences"] += 1
                continue
            composed = render(channel, service.user_locale(user, default_language))  # type: ignore[arg-type]
            if composed is None:
                skipped[f"no active {channel} template named {draft.template!r}"] += 1
                continue
            rendered, template_id = composed
            notification_id = new_id()
            status, sent_at = ("sent", now) if channel == "in_app" else ("pending", None)
            if channel != "in_app":
                where = targets.get(user_id, [])
                if not where:
                    status = "failed"
                    logs[notification_id] = [
                        _log(
                            notification_id,
                            channel,
                            "",
                            "failed",
                            None,
                            None,
                            None,
                            now,
                            error=service.NO_DESTINATION[channel],
                        )
                    ]
                else:
                    due = schedule.due_at(
                        now,
                        frequency=pref.frequency,
                        quiet=pref.quiet,
                        critical=draft.critical,
                        timezone=pref.timezone,
                    )
                    key = None if draft.critical else schedule.digest_key(user_id, channel, pref.frequency)
                    logs[notification_id] = [
                        _log(notification_id, channel, address, "queued", due, key, secret, now)
                        for address, secret in where
                    ]
            notifications.append(
                {
                    "id": notification_id,
                    "recipient_id": user_id,
                    "sender_id": draft.sender_id,
                    "notification_type": draft.notification_type,
                    "category": draft.category,
                    "channel": channel,
                    "subject": rendered.subject,
                    "content": rendered.text,
                    "content_html": rendered.html,
                    "language": rendered.language,
                    "template_id": template_id,
                    "event_id": None,
                    "broadcast_id": row.id,
                    "critical": draft.critical,
                    "status": status,
                    "scheduled_at": None,
                    "sent_at": sent_at,
                    "delivered_at": None,
                    "read_at": None,
                    "pushed_at": None,
                    "metadata": {},
                    "created_at": now,
                }
            )
    inserted = _insert_ignoring_duplicates(session, notifications)
    delivery_rows = [log for notification_id in inserted for log in logs.get(notification_id, ())]
    if delivery_rows:
        session.execute(sa.insert(DeliveryLog.__table__), delivery_rows)
    skipped["already notified"] += len(notifications) - len(inserted)
    return len(inserted), +skipped


def _log(
    notification_id: uuid.UUID,
    channel: str,
    destination: str,
    status: str,
    due: datetime | None,
    digest_key: str | None,
    secret: str | None,
    now: datetime,
    *,
    error: str | None = None,
) -> dict[str, Any]:
    return {
        "id": new_id(),
        "notification_id": notification_id,
        "channel": channel,
        "destination": destination,
        "status": status,
        "attempt_count": 0,
        "last_attempt": None,
        "next_retry": due,
        "digest_key": digest_key,
        "error_message": error,
        "delivery_metadata": {"secret_encrypted": secret} if secret else {},
        "created_at": now,
        "updated_at": now,
    }


def _start(
    session: Session, broadcast_id: uuid.UUID, now: datetime, default_language: str
) -> Broadcast | None:
    row = session.get(Broadcast, broadcast_id, with_for_update=True)
    if row is None:
        raise NotFound(f"broadcast {broadcast_id} does not exist")
    if row.status not in RESUMABLE:
        return None  # completed or cancelled: nothing to do
    _draft(row)  # raises InvalidValue for a broadcast with no message, bad channels or severity
    if row.status != "running":
        row.status, row.error = "running", None
        row.started_at = row.started_at or now
    if row.total_recipients is None:
        row.total_recipients = audience.count(
            session, row.criteria or {}, now=now, default_language=default_language
        )
    row.updated_at = now
    return row


def run(
    open_session: SessionFactory,
    broadcast_id: uuid.UUID,
    *,
    now: datetime | None = None,
    batch_size: int = BATCH_SIZE,
    default_language: str = "en",
    after_batch: Callable[[Progress], None] | None = None,
) -> Progress:
    """Fan the broadcast out from its cursor to the end. `after_batch` is called after each batch
    commits (progress reporting; tests raise from it to simulate a crash between batches)."""
    started = time.perf_counter()
    clock_now = now or utcnow()
    with open_session() as session:
        row = _start(session, broadcast_id, clock_now, default_language)
        if row is None:
            done = session.get(Broadcast, broadcast_id)
            return Progress(
                broadcast_id,
                done.status,
                done.total_recipients or 0,
                done.processed_recipients,
                done.notifications_created,
            )
        progress = Progress(
            broadcast_id,
            "running",
            row.total_recipients or 0,
            row.processed_recipients,
            row.notifications_created,
            resumed_from=row.cursor,
        )
        criteria, cursor = dict(row.criteria or {}), row.cursor
        render = _Renderer(session, _draft(row), default_language)
    while True:
        batch_now = now or utcnow()
        with open_session() as session:
            row = session.get(Broadcast, broadcast_id, with_for_update=True)
            if row.status == "cancelled" or row.cursor != cursor:
                # Cancelled, or another run moved the cursor: stop; that run owns the rest.
                progress.status = row.status if row.status == "cancelled" else "superseded"
                break
            query = audience.recipient_query(criteria, now=batch_now, default_language=default_language)
            if cursor is not None:
                query = query.where(User.id > uuid.UUID(cursor))
            user_ids = list(session.scalars(query.limit(batch_size)))
            if not user_ids:
                row.status, row.finished_at, row.updated_at = "completed", batch_now, batch_now
                row.total_recipients = row.processed_recipients
                outbox.record_event(
                    session,
                    "broadcast.completed",
                    "broadcast",
                    row.id,
                    {
                        "broadcast_id": str(row.id),
                        "name": row.name,
                        "recipients": row.processed_recipients,
                        "notifications": row.notifications_created,
                    },
                    at=batch_now,
                )
                progress.status, progress.total = "completed", row.total_recipients
                break
            created, skipped = fan_out(
                session, row, user_ids, render=render, now=batch_now, default_language=default_language
            )
            cursor = str(user_ids[-1])
            row.cursor = cursor
            row.processed_recipients += len(user_ids)
            row.notifications_created += created
            row.total_recipients = max(row.total_recipients or 0, row.processed_recipients)
            row.updated_at = batch_now
            progress.processed, progress.created = row.processed_recipients, row.notifications_created
            progress.total = row.total_recipients
            progress.not_notified.update(skipped)
            progress.batches += 1
        progress.seconds = time.perf_counter() - started
        if after_batch is not None:
            after_batch(progress)
    progress.seconds = time.perf_counter() - started
    return progress


def mark_failed(open_session: SessionFactory, broadcast_id: uuid.UUID, error: str, *, now: datetime) -> None:
    """Record why a run stopped; the broadcast stays resumable from its cursor."""
    with open_session() as session:
        row = session.get(Broadcast, broadcast_id)
        if row is not None and row.status in RESUMABLE:
            row.status, row.error, row.updated_at = "failed", error[:ERROR_MAX], now


def due(session: Session, *, now: datetime, limit: int = 50) -> list[Broadcast]:
    """Queued broadcasts whose `scheduled_at` has passed (or that have none), oldest first."""
    return list(
        session.scalars(
            sa.select(Broadcast)
            .where(
                Broadcast.status == "queued",
                sa.or_(Broadcast.scheduled_at.is_(None), Broadcast.scheduled_at <= now),
            )
            .order_by(sa.func.coalesce(Broadcast.scheduled_at, Broadcast.created_at), Broadcast.id)
            .limit(limit)
        )
    )


def summary(progress: Progress) -> Mapping[str, Any]:
    return {
        "broadcast_id": str(progress.broadcast_id),
        "status": progress.status,
        "total": progress.total,
        "processed": progress.processed,
        "created": progress.created,
        "batches": progress.batches,
        "percent": progress.percent,
        "seconds": round(progress.seconds, 3),
    }
