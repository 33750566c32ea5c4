"""Broadcast fan-out: batched, resumable after a crash without sending anyone a second message,
rendered once per language, preferences and quiet hours applied to the delivered channels."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time

import pytest
import sqlalchemy as sa

from domain.auth import rbac
from domain.auth.keys import Keyring
from domain.ids import new_id
from domain.notifications import broadcast, contacts, service
from domain.schema import (
    Broadcast,
    DeliveryLog,
    Notification,
    NotificationPreference,
    OutboxEvent,
    User,
)
from resources.database import OperationalDatabase as DB

NOW = datetime(2026, 3, 2, 20, 30, tzinfo=UTC)  # 23:30 in Riyadh
MESSAGE = {
    "subject": {"ar": "أهلاً بكم", "en": "Welcome"},
    "content": {"ar": "رسالة للجميع", "en": "A message for everyone"},
}


def add_users(
    db: DB, count: int, *, prefix: str = "u", locale_of=lambda i: "ar" if i % 3 == 0 else None
) -> list[uuid.UUID]:
    rows = []
    for i in range(count):
        locale = locale_of(i)
        rows.append(
            {
                "id": new_id(),
                "username": f"{prefix}{i}",
                "email": f"{prefix}{i}@example.test",
                "is_active": True,
                "is_verified": True,
                "preferences": {"locale": locale} if locale else {},
                "created_at": NOW,
                "updated_at": NOW,
            }
        )
    with db.session() as session:
        session.execute(sa.insert(User.__table__), rows)
    return [r["id"] for r in rows]


def queue(db: DB, *, channels=("in_app",), criteria=None, **values) -> uuid.UUID:
    with db.session() as session:
        row = Broadcast(
            name="hello",
            message=MESSAGE,
            criteria=criteria or {},
            channels=list(channels),
            created_at=NOW,
            updated_at=NOW,
            **values,
        )
        session.add(row)
        session.flush()
        return row.id


def state(db: DB, broadcast_id: uuid.UUID) -> Broadcast:
    with db.session() as session:
        return session.get(Broadcast, broadcast_id)


def count(db: DB, *where) -> int:
    with db.session() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(Notification).where(*where))


class Crash(Exception):
    pass


def crash_after(batches: int):
    def hook(progress: broadcast.Progress) -> None:
        if progress.batches == batches:
            raise Crash(f"killed after batch {batches}")

    return hook


def test_crash_after_a_batch_then_resume_notifies_everyone_exactly_once(db: DB) -> None:
    everyone = add_users(db, 5_000)
    bid = queue(db)
    with pytest.raises(Crash):
        broadcast.run(db.session, bid, now=NOW, batch_size=1_000, after_batch=crash_after(2))
    crashed = state(db, bid)
    assert (crashed.status, crashed.processed_recipients, crashed.notifications_created) == (
        "running",
        2_000,
        2_000,
    )
    assert crashed.total_recipients == 5_000
    assert crashed.cursor == str(sorted(everyone)[1_999])  # ordered by user id
    assert count(db, Notification.broadcast_id == bid) == 2_000

    progress = broadcast.run(db.session, bid, now=NOW, batch_size=1_000)
    assert progress.resumed_from == crashed.cursor and progress.batches == 3
    done = state(db, bid)
    assert (done.status, done.total_recipients, done.processed_recipients, done.notifications_created) == (
        "completed",
        5_000,
        5_000,
        5_000,
    )
    assert done.finished_at == NOW
    with db.session() as session:
        per_user = session.execute(
            sa.select(Notification.recipient_id, sa.func.count())
            .where(Notification.broadcast_id == bid)
            .group_by(Notification.recipient_id)
        ).all()
        assert len(per_user) == 5_000 and {n for _, n in per_user} == {1}
        assert {r for r, _ in per_user} == set(everyone)
        rows = session.execute(
            sa.select(
                Notification.language, Notification.subject, Notification.status, Notification.pushed_at
            )
            .where(Notification.broadcast_id == bid)
            .distinct()
        ).all()
        assert set(rows) == {("ar", "أهلاً بكم", "sent", None), ("en", "Welcome", "sent", None)}
        [event] = session.scalars(
            sa.select(OutboxEvent).where(OutboxEvent.event_type == "broadcast.completed")
        )
        assert event.payload["recipients"] == 5_000
    # A completed broadcast run again does nothing.
    again = broadcast.run(db.session, bid, now=NOW)
    assert again.status == "completed" and again.batches == 0
    assert count(db, Notification.broadcast_id == bid) == 5_000


def test_overlapping_runs_cannot_insert_a_second_notification(db: DB) -> None:
    ids = sorted(add_users(db, 10))
    bid = queue(db, channels=("in_app", "email"))
    with db.session() as session:
        row = session.get(Broadcast, bid)
        render = broadcast._Renderer(session, broadcast._draft(row), "en")
        created, skipped = broadcast.fan_out(session, row, ids, render=render, now=NOW, default_language="en")
    assert created == 20 and not skipped
    with db.session() as session:  # the same batch again, as a second run that missed the cursor would
        row = session.get(Broadcast, bid)
        created, skipped = broadcast.fan_out(session, row, ids, render=render, now=NOW, default_language="en")
    assert created == 0 and skipped == {"already notified": 20}
    assert count(db, Notification.broadcast_id == bid) == 20
    with db.session() as session:  # and no orphan delivery for the ignored email rows
        assert session.scalar(sa.select(sa.func.count()).select_from(DeliveryLog)) == 10


def test_criteria_matching_nobody_complete_with_zero(db: DB) -> None:
    add_users(db, 5)
    bid = queue(db, criteria={"languages": ["fr"]})
    progress = broadcast.run(db.session, bid, now=NOW)
    done = state(db, bid)
    assert (progress.status, done.status, done.total_recipients, done.processed_recipients) == (
        "completed",
        "completed",
        0,
        0,
    )
    assert progress.percent == 100.0
    assert count(db) == 0


def test_criteria_select_by_language_and_role(db: DB) -> None:
    ids = add_users(db, 30)
    arabic = {ids[i] for i in range(30) if i % 3 == 0}
    with db.session() as session:
        rbac.grant_role(session, ids[1], "editor", assigned_by=None)
    by_language = queue(db, criteria={"languages": ["ar"]})
    by_role = queue(db, criteria={"roles": ["editor"]})
    broadcast.run(db.session, by_language, now=NOW, batch_size=7)
    broadcast.run(db.session, by_role, now=NOW)
    with db.session() as session:
        got = set(
            session.scalars(
                sa.select(Notification.recipient_id).where(Notification.broadcast_id == by_language)
            )
        )
        assert got == arabic
        assert list(
            session.scalars(sa.select(Notification.recipient_id).where(Notification.broadcast_id == by_role))
        ) == [ids[1]]


def test_delivered_channels_respect_preferences_quiet_hours_and_missing_destinations(
    db: DB, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain, quiet, muted, device = add_users(db, 4, locale_of=lambda i: "ar" if i == 1 else None)
    with db.session() as session:
        session.add(
            NotificationPreference(
                user_id=quiet,
                notification_type="*",
                channel="email",
                quiet_hours_start=clock_time(22),
                quiet_hours_end=clock_time(7),
                timezone="Asia/Riyadh",
            )
        )
        session.add(
            NotificationPreference(user_id=muted, notification_type="*", channel="email", is_enabled=False)
        )
        contacts.register(
            session, device, contacts.NewContact("push", "device-token-0001"), keys=Keyring("k" * 40)
        )
    calls: list[tuple[str, str]] = []
    compose = service.compose

    def counting(draft, channel, locale, *args):
        calls.append((channel, locale))
        return compose(draft, channel, locale, *args)

    monkeypatch.setattr(service, "compose", counting)
    bid = queue(db, channels=("in_app", "email", "push"))
    progress = broadcast.run(db.session, bid, now=NOW, batch_size=2)
    assert progress.not_notified == {"turned off in the recipient's preferences": 1}
    # Rendered once per channel and language, whatever the number of recipients and batches.
    assert sorted(calls) == sorted({(c, loc) for c in ("in_app", "email", "push") for loc in ("en", "ar")})
    with db.session() as session:
        emails = {
            n.recipient_id: (n.status, log.next_retry, n.subject)
            for n, log in session.execute(
                sa.select(Notification, DeliveryLog)
                .join(DeliveryLog, DeliveryLog.notification_id == Notification.id)
                .where(Notification.channel == "email")
            )
        }
        assert emails == {
            plain: ("pending", NOW, "Welcome"),
            quiet: ("pending", datetime(2026, 3, 3, 4, 0, tzinfo=UTC), "أهلاً بكم"),  # 07:00 Riyadh
            device: ("pending", NOW, "Welcome"),
        }
        pushes = {
            n.recipient_id: (n.status, log.status, log.error_message)
            for n, log in session.execute(
                sa.select(Notification, DeliveryLog)
                .join(DeliveryLog, DeliveryLog.notification_id == Notification.id)
                .where(Notification.channel == "push")
            )
        }
        assert pushes[device] == ("pending", "queued", None)
        assert pushes[plain] == ("failed", "failed", service.NO_DESTINATION["push"])
    assert state(db, bid).notifications_created == 4 + 3 + 4


def test_a_cancelled_broadcast_stops_at_the_next_batch(db: DB) -> None:
    add_users(db, 50)
    bid = queue(db)

    def cancel(progress: broadcast.Progress) -> None:
        with db.session() as session:
            session.get(Broadcast, bid).status = "cancelled"

    progress = broadcast.run(db.session, bid, now=NOW, batch_size=10, after_batch=cancel)
    assert progress.status == "cancelled" and progress.batches == 1
    assert state(db, bid).processed_recipients == 10 and count(db) == 10


def test_a_failed_broadcast_resumes_and_due_lists_queued_ones_whose_time_came(db: DB) -> None:
    add_users(db, 3)
    now_due = queue(db)
    later = queue(db, scheduled_at=NOW + timedelta(hours=1))
    with db.session() as session:
        assert [b.id for b in broadcast.due(session, now=NOW)] == [now_due]
        assert {b.id for b in broadcast.due(session, now=NOW + timedelta(hours=2))} == {now_due, later}
    broadcast.mark_failed(db.session, now_due, "worker died", now=NOW)
    assert (state(db, now_due).status, state(db, now_due).error) == ("failed", "worker died")
    with db.session() as session:
        assert [b.id for b in broadcast.due(session, now=NOW)] == []  # not relaunched by the sensor
    progress = broadcast.run(db.session, now_due, now=NOW)
    assert progress.status == "completed" and state(db, now_due).error is None and count(db) == 3


def test_unknown_broadcast_and_empty_message_are_refused(db: DB) -> None:
    from domain.errors import InvalidValue, NotFound

    with pytest.raises(NotFound):
        broadcast.run(db.session, new_id(), now=NOW)
    with db.session() as session:
        row = Broadcast(name="empty", message={}, channels=["in_app"], created_at=NOW, updated_at=NOW)
        session.add(row)
        session.flush()
        bid = row.id
    with pytest.raises(InvalidValue):
        broadcast.run(db.session, bid, now=NOW)
