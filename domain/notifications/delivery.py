"""Draining due deliveries: claim, group digests, send through the channel's transport, record.

A `DeliveryLog` is due while `status = 'queued'` and `next_retry <= now`. One drain pass:

1. **claim** a batch in one short transaction: the rows go to `sending` (a conditional update, so a
   concurrent drain cannot take the same rows; PostgreSQL also skips rows another claimer has
   locked). A row left `sending` for `stale_after` (a drain that crashed mid-send) is claimed again:
   delivery is at least once, and a webhook receiver drops the repeat by its delivery id.
2. **build** one `Outgoing` per row, or one per digest (the due rows sharing a `digest_key` and a
   destination become ONE message: "N new notifications" in the user's language, listing them);
   webhook secrets are decrypted here, right before use (`domain.notifications.messages`).
3. **send** per channel in chunks, each chunk waiting on the channel's token bucket (deliveries per
   second), with no database transaction open.
4. **record** each outcome: delivered; retryable -> queued again at `now + base * 2**(attempt-1)`
   (+ jitter, at least the provider's Retry-After, capped at 6 h) until `max_attempts`, then failed;
   permanent -> failed or bounced with the reason. The notification follows its deliveries (failed
   only when every destination failed) and `notification.delivered` / `notification.failed` events
   go to the outbox in the same transaction.

Every function takes `now`, so tests run the whole life of a delivery on a controlled clock.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import anyio
import sqlalchemy as sa
from sqlalchemy.orm import Session

from domain import outbox
from domain.auth.keys import Keyring
from domain.notifications.events import NOTIFICATION_DELIVERED, NOTIFICATION_FAILED
from domain.notifications.messages import Message, build_messages
from domain.notifications.outgoing import DELIVERED_CHANNELS, Delivered, DeliveryFailed, Outgoing
from domain.notifications.rules import ERROR_MAX
from domain.schema import DeliveryLog, Notification, as_utc

SessionFactory = Callable[[], AbstractContextManager[Session]]

MAX_DELAY = timedelta(hours=6)
STALE_SENDING = timedelta(minutes=10)  # a `sending` row this old belongs to a drain that died
STUCK_SENDING = timedelta(minutes=15)  # the asset check's limits
OVERDUE = timedelta(hours=1)
DEFAULT_RATE_LIMITS = {"email": 100.0, "sms": 10.0, "push": 500.0, "webhook": 50.0}


class Transport(Protocol):
    async def send_batch(self, items: Sequence[Outgoing]) -> list[Delivered | DeliveryFailed]: ...


def parse_rate_limits(text: str) -> dict[str, float]:
    """`"email=100,sms=10"` -> `{"email": 100.0, "sms": 10.0}` (deliveries per second; channels not
    named keep their defaults). Raises ValueError naming the bad pair."""
    limits = dict(DEFAULT_RATE_LIMITS)
    for pair in (text or "").split(","):
        if not pair.strip():
            continue
        channel, sep, value = pair.partition("=")
        channel = channel.strip()
        if not sep or channel not in DELIVERED_CHANNELS:
            raise ValueError(
                f"{pair.strip()!r}: expected channel=rate with channel one of {', '.join(DELIVERED_CHANNELS)}"
            )
        try:
            rate = float(value)
        except ValueError:
            raise ValueError(
                f"{pair.strip()!r}: the rate must be a number of deliveries per second"
            ) from None
        if not rate > 0:
            raise ValueError(f"{pair.strip()!r}: the rate must be above 0")
        limits[channel] = rate
    return limits


@dataclass(frozen=True)
class Policy:
    """How the drain behaves (from settings: `notification_max_attempts`, `_retry_base_seconds`,
    `_rate_limits`, `_default_language`, and the platform keyring that decrypts webhook secrets)."""

    max_attempts: int = 6
    retry_base_seconds: float = 30.0
    rate_limits: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_RATE_LIMITS))
    default_language: str = "en"
    keys: Keyring | None = None
    jitter: float = 0.1  # up to +10 % on each backoff delay, so retries of a burst spread out
    batch_size: int = 500
    stale_after: timedelta = STALE_SENDING


def backoff(
    attempt: int,
    base_seconds: float,
    *,
    retry_after: float | None = None,
    jitter: float = 0.1,
    rng: random.Random | None = None,
) -> timedelta:
    """The wait before attempt `attempt + 1`: `base * 2**(attempt-1)` plus up to `jitter` of it, at
    least `retry_after`, at most 6 h (and at least a second)."""
    delay = base_seconds * 2 ** max(0, attempt - 1)
    delay *= 1 + jitter * (rng or random).random()
    delay = max(delay, retry_after or 0.0, 1.0)
    return timedelta(seconds=min(delay, MAX_DELAY.total_seconds()))


class TokenBucket:
    """`rate` tokens a second, bursts of up to `capacity` (one second's worth). `take(n)` sleeps
    until n tokens are there and returns the seconds it waited."""

    def __init__(
        self,
        rate: float,
        *,
        capacity: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self.capacity = max(1.0, capacity if capacity is not None else rate)
        self.tokens = self.capacity
        self.clock, self.sleep = clock, sleep
        self.updated = clock()

    @property
    def chunk(self) -> int:
        """The most messages one `take` may ask for."""
        return max(1, int(self.capacity))

    def take(self, n: int) -> float:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        self.tokens -= n  # below zero: a debt the wait below pays off (seen by the next refill)
        if self.tokens >= 0:
            return 0.0
        wait = -self.tokens / self.rate
        self.sleep(wait)
        return wait


# --- claiming ---------------------------------------------------------------------------------------


def _claimable(now: datetime, stale_after: timedelta) -> sa.ColumnElement[bool]:
    return sa.or_(
        sa.and_(DeliveryLog.status == "queued", DeliveryLog.next_retry <= now),
        sa.and_(DeliveryLog.status == "sending", DeliveryLog.updated_at < now - stale_after),
    )


def claim(
    session: Session, *, now: datetime, limit: int, stale_after: timedelta = STALE_SENDING
) -> list[uuid.UUID]:
    """Move up to `limit` due rows (and every due row sharing a digest key with them) to `sending`;
    returns their ids. Commit right after, before sending anything."""
    candidates = list(
        session.scalars(
            sa.select(DeliveryLog.id)
            .where(_claimable(now, stale_after))
            .order_by(DeliveryLog.next_retry, DeliveryLog.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    if not candidates:
        return []
    claimed = _mark_sending(session, sa.and_(DeliveryLog.id.in_(candidates)), now, stale_after)
    keys = set(
        session.scalars(
            sa.select(DeliveryLog.digest_key).where(
                DeliveryLog.id.in_(claimed), DeliveryLog.digest_key.is_not(None)
            )
        )
    )
    if keys:  # the rest of each digest: a digest never goes out in two halves
        claimed += _mark_sending(session, DeliveryLog.digest_key.in_(keys), now, stale_after)
    return claimed


def _mark_sending(
    session: Session, which: sa.ColumnElement[bool], now: datetime, stale_after: timedelta
) -> list[uuid.UUID]:
    statement = (
        sa.update(DeliveryLog)
        .where(which, _claimable(now, stale_after))
        .values(status="sending", updated_at=now)
        .returning(DeliveryLog.id)
        .execution_options(synchronize_session=False)
    )
    return list(session.scalars(statement))


# --- sending ----------------------------------------------------------------------------------------


@dataclass
class Sent:
    message: Message
    outcome: Delivered | DeliveryFailed


def send(
    messages: Sequence[Message],
    transports: Mapping[str, Transport],
    buckets: Mapping[str, TokenBucket],
) -> tuple[list[Sent], float]:
    """Hand each message to its channel's transport, in chunks paced by the channel's bucket.
    Returns the outcomes and the seconds spent waiting on rate limits."""
    results: list[Sent] = []
    waited = 0.0
    by_channel: dict[str, list[Message]] = defaultdict(list)
    for message in messages:
        if message.outgoing is None:
            results.append(Sent(message, message.problem or DeliveryFailed("not built", permanent=True)))
        else:
            by_channel[message.channel].append(message)
    for channel, pending in by_channel.items():
        transport = transports.get(channel)
        if transport is None:
            missing = DeliveryFailed(f"no transport is configured for {channel}", permanent=True)
            results += [Sent(m, missing) for m in pending]
            continue
        bucket = buckets.get(channel)
        step = bucket.chunk if bucket is not None else len(pending)
        for start in range(0, len(pending), step):
            chunk = pending[start : start + step]
            if bucket is not None:
                waited += bucket.take(len(chunk))
            items = [m.outgoing for m in chunk if m.outgoing is not None]
            try:
                outcomes = anyio.run(transport.send_batch, items)
            except Exception as exc:  # noqa: BLE001 - a transport bug must not lose the claimed rows
                failed = DeliveryFailed(f"transport error: {type(exc).__name__}: {exc}"[:ERROR_MAX])
                outcomes = [failed for _ in items]
            if len(outcomes) != len(items):
                failed = DeliveryFailed(f"the {channel} transport answered {len(outcomes)} of {len(items)}")
                outcomes = [failed for _ in items]
            results += [Sent(m, o) for m, o in zip(chunk, outcomes, strict=True)]
    return results, waited


# --- recording -------------------------------------------------------------------------------------


@dataclass
class Tally:
    """What happened, per channel: deliveries `sent`, `retried`, `failed`, `bounced`; `messages` sent
    (a digest is one message for several deliveries) and `digests`."""

    counts: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    claimed: int = 0
    waited_s: float = 0.0
    failures: list[dict[str, str]] = field(default_factory=list)  # a sample, for the run's metadata

    def add(self, channel: str, what: str, n: int = 1) -> None:
        self.counts[channel][what] += n

    def total(self, what: str) -> int:
        return sum(c[what] for c in self.counts.values())

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {channel: dict(sorted(c.items())) for channel, c in sorted(self.counts.items())}


def record(
    session: Session,
    results: Sequence[Sent],
    *,
    now: datetime,
    policy: Policy,
    tally: Tally,
    rng: random.Random | None = None,
) -> None:
    """Write the outcomes, the notifications' statuses and the outbox events (one transaction)."""
    ids = [i for sent in results for i in sent.message.delivery_ids]
    rows = {row.id: row for row in session.scalars(sa.select(DeliveryLog).where(DeliveryLog.id.in_(ids)))}
    touched: set[uuid.UUID] = set()
    applied: list[DeliveryLog] = []
    for sent in results:
        message, outcome = sent.message, sent.outcome
        tally.add(message.channel, "messages")
        if message.is_digest:
            tally.add(message.channel, "digests")
        for delivery_id in message.delivery_ids:
            row = rows.get(delivery_id)
            if row is None or row.status != "sending":
                continue  # deleted meanwhile, or taken over by a reclaiming drain
            touched.add(row.notification_id)
            applied.append(row)
            _apply(row, outcome, message, now=now, policy=policy, tally=tally, rng=rng)
    if not applied:
        return
    session.flush()
    _follow(session, touched, now)
    events = _events(session, applied)
    for event_type, notification_id, payload in events:
        outbox.record_event(session, event_type, "notification", notification_id, payload, at=now)


def _apply(
    row: DeliveryLog,
    outcome: Delivered | DeliveryFailed,
    message: Message,
    *,
    now: datetime,
    policy: Policy,
    tally: Tally,
    rng: random.Random | None,
) -> None:
    row.attempt_count += 1
    row.last_attempt = row.updated_at = now
    meta = dict(row.delivery_metadata or {})
    if message.is_digest:
        meta["digest_of"] = len(message.delivery_ids)
        meta["digest_lead"] = str(message.delivery_ids[0])
    if isinstance(outcome, Delivered):
        row.status, row.next_retry, row.error_message = "delivered", None, None
        meta.update({k: v for k, v in outcome.metadata.items() if _jsonable(v)})
        if outcome.provider_id:
            meta["provider_id"] = outcome.provider_id
        meta["delivered_at"] = now.isoformat()
        row.delivery_metadata = meta
        tally.add(row.channel, "sent")
        return
    reason = (outcome.reason or "delivery failed")[:ERROR_MAX]
    meta.update({k: v for k, v in outcome.metadata.items() if _jsonable(v)})
    if outcome.retry_after is not None:
        meta["retry_after"] = outcome.retry_after
    row.delivery_metadata = meta
    row.error_message = reason
    if outcome.permanent:
        row.status, row.next_retry = ("bounced" if outcome.bounced else "failed"), None
        tally.add(row.channel, "bounced" if outcome.bounced else "failed")
        _sample(tally, row, row.status, reason)
    elif row.attempt_count >= policy.max_attempts:
        row.status, row.next_retry = "failed", None
        row.error_message = f"gave up after {row.attempt_count} attempts: {reason}"[:ERROR_MAX]
        tally.add(row.channel, "failed")
        _sample(tally, row, "failed", row.error_message)
    else:
        row.status = "queued"
        row.next_retry = now + backoff(
            row.attempt_count,
            policy.retry_base_seconds,
            retry_after=outcome.retry_after,
            jitter=policy.jitter,
            rng=rng,
        )
        tally.add(row.channel, "retried")


def _jsonable(value: Any) -> bool:
    return isinstance(value, str | int | float | bool | list | dict) or value is None


def _sample(tally: Tally, row: DeliveryLog, status: str, reason: str) -> None:
    if len(tally.failures) < 20:
        tally.failures.append(
            {"delivery_id": str(row.id), "channel": row.channel, "status": status, "reason": reason}
        )


def _follow(session: Session, notification_ids: Iterable[uuid.UUID], now: datetime) -> None:
    """A notification's status from its deliveries: `delivered` once one destination has it and
    none is pending, `sent` while others are still pending, `failed` when every one failed."""
    ids = list(notification_ids)
    statuses: dict[uuid.UUID, Counter[str]] = defaultdict(Counter)
    for notification_id, status in session.execute(
        sa.select(DeliveryLog.notification_id, DeliveryLog.status).where(DeliveryLog.notification_id.in_(ids))
    ):
        statuses[notification_id][status] += 1
    for notification in session.scalars(sa.select(Notification).where(Notification.id.in_(ids))):
        if notification.status == "read":
            continue
        counts = statuses[notification.id]
        pending = counts["queued"] + counts["sending"]
        if counts["delivered"]:
            notification.sent_at = notification.sent_at or now
            if pending:
                notification.status = "sent"
            else:
                notification.status = "delivered"
                notification.delivered_at = notification.delivered_at or now
        elif not pending:
            notification.status = "failed"


def _events(session: Session, rows: Sequence[DeliveryLog]) -> list[tuple[str, uuid.UUID, dict]]:
    finished = [r for r in rows if r.status in ("delivered", "failed", "bounced")]
    if not finished:
        return []
    recipients = dict(
        session.execute(
            sa.select(Notification.id, Notification.recipient_id).where(
                Notification.id.in_({r.notification_id for r in finished})
            )
        )
        .tuples()
        .all()
    )
    events = []
    for row in finished:
        payload: dict[str, Any] = {
            "notification_id": str(row.notification_id),
            "delivery_id": str(row.id),
            "recipient_id": str(recipients.get(row.notification_id) or ""),
            "channel": row.channel,
            "attempts": row.attempt_count,
            "digest": bool((row.delivery_metadata or {}).get("digest_of")),
        }
        if row.status == "delivered":
            payload["provider_id"] = (row.delivery_metadata or {}).get("provider_id", "")
            events.append((NOTIFICATION_DELIVERED, row.notification_id, payload))
        else:
            payload.update(status=row.status, bounced=row.status == "bounced", reason=row.error_message or "")
            events.append((NOTIFICATION_FAILED, row.notification_id, payload))
    return events


# --- the drain --------------------------------------------------------------------------------------


def drain(
    open_session: SessionFactory,
    transports: Mapping[str, Transport],
    *,
    now: datetime,
    policy: Policy = Policy(),
    max_batches: int = 100,
    rng: random.Random | None = None,
    buckets: Mapping[str, TokenBucket] | None = None,
    progress: Callable[[Tally], None] | None = None,
    clock: Callable[[], datetime] | None = None,
) -> Tally:
    """Send everything due, `policy.batch_size` rows per claim, up to `max_batches` claims. Each
    batch runs at `now`, or at `clock()` when given (a long, rate-limited drain records its real
    attempt times; tests keep one controlled instant)."""
    tally = Tally()
    if buckets is None:
        buckets = {channel: TokenBucket(rate) for channel, rate in policy.rate_limits.items()}
    for _ in range(max_batches):
        at = clock() if clock is not None else now
        with open_session() as session:
            claimed = claim(session, now=at, limit=policy.batch_size, stale_after=policy.stale_after)
        if not claimed:
            break
        tally.claimed += len(claimed)
        with open_session() as session:
            messages = build_messages(
                session, claimed, keys=policy.keys, default_language=policy.default_language
            )
        results, waited = send(messages, transports, buckets)
        tally.waited_s += waited
        with open_session() as session:
            record(
                session,
                results,
                now=clock() if clock is not None else now,
                policy=policy,
                tally=tally,
                rng=rng,
            )
        if progress is not None:
            progress(tally)
    return tally


# --- health -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Health:
    stuck_sending: int
    oldest_sending: datetime | None
    overdue: int
    oldest_due: datetime | None
    queued: int
    due: int

    @property
    def ok(self) -> bool:
        return self.stuck_sending == 0 and self.overdue == 0


def health(
    session: Session,
    *,
    now: datetime,
    stuck_after: timedelta = STUCK_SENDING,
    overdue_after: timedelta = OVERDUE,
) -> Health:
    """Rows `sending` for longer than `stuck_after`, and queued rows due for longer than `overdue_after`."""

    def count_and_oldest(*where: sa.ColumnElement[bool], column: Any) -> tuple[int, datetime | None]:
        count, oldest = session.execute(
            sa.select(sa.func.count(), sa.func.min(column)).select_from(DeliveryLog).where(*where)
        ).one()
        return int(count), None if oldest is None else as_utc(oldest)

    stuck, oldest_sending = count_and_oldest(
        DeliveryLog.status == "sending",
        DeliveryLog.updated_at < now - stuck_after,
        column=DeliveryLog.updated_at,
    )
    overdue, _ = count_and_oldest(
        DeliveryLog.status == "queued",
        DeliveryLog.next_retry < now - overdue_after,
        column=DeliveryLog.next_retry,
    )
    due, oldest_due = count_and_oldest(
        DeliveryLog.status == "queued", DeliveryLog.next_retry <= now, column=DeliveryLog.next_retry
    )
    queued = session.scalar(
        sa.select(sa.func.count()).select_from(DeliveryLog).where(DeliveryLog.status == "queued")
    )
    return Health(stuck, oldest_sending, overdue, oldest_due, int(queued or 0), due)


def due_fingerprint(
    session: Session, *, now: datetime, stale_after: timedelta = STALE_SENDING
) -> tuple[int, str | None]:
    """How many rows are due (or reclaimable) at `now`, and a fingerprint of that set (the newest id,
    the latest due time and the latest change): equal while nothing changes, new when a row is added,
    re-queued for a retry or abandoned by a drain. Sensors build run keys from it."""
    claimable = _claimable(now, stale_after)
    count, latest_due, latest_change = session.execute(
        sa.select(sa.func.count(), sa.func.max(DeliveryLog.next_retry), sa.func.max(DeliveryLog.updated_at))
        .select_from(DeliveryLog)
        .where(claimable)
    ).one()
    if not count:
        return 0, None
    # PostgreSQL has no max(uuid): the newest id by ordering (UUIDv7 ids sort by creation time).
    newest = session.scalar(
        sa.select(DeliveryLog.id).where(claimable).order_by(DeliveryLog.id.desc()).limit(1)
    )
    stamp = "|".join(v.isoformat() if v is not None else "" for v in (latest_due, latest_change))
    return int(count), f"{newest}|{stamp}"
