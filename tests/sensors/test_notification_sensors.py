"""The notification sensors against a real operational DB: outbox cursor and run keys, the delivery
drain's run keys and skip reasons on a controlled clock, and queued broadcasts -> one run each."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
import sqlalchemy as sa

from assets.notifications import build_notification_assets
from domain import outbox
from domain.auth import audit, rbac, users
from domain.notifications import delivery, rules, service
from domain.schema import Broadcast, DeliveryLog, NotificationEvent
from orchestration.jobs import notification_deliveries_job, notification_events_job
from resources.database import OperationalDatabase
from sensors.notifications import (
    build_notification_broadcasts_sensor,
    build_notification_deliveries_sensor,
    build_notification_digest_schedule,
    build_notification_events_sensor,
)

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
notification_events_sensor = build_notification_events_sensor(notification_events_job)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def database(migrated_url: str) -> Iterator[OperationalDatabase]:
    db = OperationalDatabase(url=migrated_url)
    with db.session() as session:
        rbac.seed_system_roles(session)
        rules.seed_default_templates(session)
    yield db
    db.engine().dispose()


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


def make_user(database: OperationalDatabase, name: str) -> uuid.UUID:
    with database.session() as session:
        return users.create_user(
            session, users.NewUser(name, f"{name}@example.test", None), created_by=None, origin=audit.Origin()
        ).id


def tick(sensor, database: OperationalDatabase, cursor: str | None = None, instance=None):
    with dg.build_sensor_context(
        resources={"database": database}, cursor=cursor, instance=instance
    ) as context:
        result = sensor(context)
        return result, context.cursor


def test_events_sensor_requests_one_run_per_new_range_of_mapped_events(database: OperationalDatabase) -> None:
    result, cursor = tick(notification_events_sensor, database)
    assert (
        isinstance(result, dg.SkipReason) and result.skip_message == "no notifying events after outbox seq 0"
    )

    manager = make_user(database, "manager")
    with database.session() as session:
        outbox.record_event(session, "content.created", "content", "x", {})  # not a notifying event
        for name in ("R1", "R2"):
            last = outbox.record_event(
                session, "report.ready", "report", name, {"name": name, "recipients": [str(manager)]}
            )
        session.flush()
        last_seq = last.seq
    request, cursor = tick(notification_events_sensor, database)
    assert isinstance(request, dg.RunRequest)
    assert request.run_key == f"notify-upto-{last_seq}" and cursor == str(last_seq)
    assert request.run_config == {
        "ops": {"notification_events": {"config": {"after_seq": 0, "upto_seq": last_seq}}}
    }
    assert request.tags["outbox_events"] == "2"
    again, same = tick(notification_events_sensor, database, cursor=cursor)
    assert isinstance(again, dg.SkipReason) and same == cursor

    # The requested run config is what the asset takes: materialize with it.
    assets = build_notification_assets(delivery.Policy())
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [assets.events],
            resources={"database": database},
            run_config=request.run_config,
            instance=instance,
        )
    assert result.success
    with database.session() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(NotificationEvent)) == 2
    # A sensor whose cursor was lost starts after what was already handled, not from the beginning.
    fresh, _ = tick(notification_events_sensor, database)
    assert isinstance(fresh, dg.SkipReason) and fresh.skip_message.endswith(f"seq {last_seq}")


def test_deliveries_sensor_run_keys_follow_the_due_set(
    database: OperationalDatabase, instance: dg.DagsterInstance
) -> None:
    clock = Clock(T0)
    sensor = build_notification_deliveries_sensor(notification_deliveries_job, clock)
    result, _ = tick(sensor, database, instance=instance)
    assert isinstance(result, dg.SkipReason) and result.skip_message == "no deliveries are due"

    reader = make_user(database, "reader")

    def send(subject: str, at: datetime) -> None:
        with database.session() as session:
            service.send(
                session, service.Draft(category="t", channels=("email",), subject=subject), [reader], now=at
            )

    send("later", T0 + timedelta(hours=1))
    result, _ = tick(sensor, database, instance=instance)
    assert isinstance(result, dg.SkipReason)  # queued, but not due yet

    send("now", T0)
    first, _ = tick(sensor, database, instance=instance)
    assert isinstance(first, dg.RunRequest) and first.run_key.startswith("deliver-")
    assert first.tags["due_deliveries"] == "1"
    same, _ = tick(sensor, database, instance=instance)
    assert same.run_key == first.run_key  # re-evaluating the same state never doubles a run

    send("another", T0)
    second, _ = tick(sensor, database, instance=instance)
    assert second.run_key != first.run_key and second.tags["due_deliveries"] == "2"

    with database.session() as session:  # a retry re-queued for later, then coming due: a new key
        for row in session.scalars(sa.select(DeliveryLog).where(DeliveryLog.next_retry == T0)):
            row.next_retry, row.attempt_count = T0 + timedelta(seconds=30), 1
    clock.now = T0 + timedelta(seconds=30)
    retried, _ = tick(sensor, database, instance=instance)
    assert isinstance(retried, dg.RunRequest) and retried.run_key not in (first.run_key, second.run_key)

    @dg.op
    def noop() -> None: ...

    @dg.job(name=notification_deliveries_job.name)
    def running_drain() -> None:
        noop()

    instance.create_run_for_job(running_drain, status=dg.DagsterRunStatus.STARTED)
    busy, _ = tick(sensor, database, instance=instance)
    assert isinstance(busy, dg.SkipReason) and "already in progress" in busy.skip_message


def test_broadcasts_sensor_launches_each_due_broadcast_once(database: OperationalDatabase) -> None:
    clock = Clock(T0)
    broadcast_job = build_notification_assets(delivery.Policy()).broadcast_job
    sensor = build_notification_broadcasts_sensor(broadcast_job, clock)
    result, _ = tick(sensor, database)
    assert isinstance(result, dg.SkipReason) and result.skip_message == "no queued broadcast is due"
    with database.session() as session:
        now = Broadcast(name="now", message={"subject": "Hi"}, channels=["in_app"], created_at=T0)
        later = Broadcast(
            name="later",
            message={"subject": "Hi"},
            channels=["in_app"],
            created_at=T0,
            scheduled_at=T0 + timedelta(hours=2),
        )
        done = Broadcast(name="done", message={"subject": "Hi"}, channels=["in_app"], status="completed")
        session.add_all([now, later, done])
        session.flush()
        ids = (str(now.id), str(later.id))
    requests, _ = tick(sensor, database)
    assert [r.run_key for r in requests] == [f"broadcast-{ids[0]}"]
    assert requests[0].run_config == {"ops": {"fan_out_broadcast": {"config": {"broadcast_id": ids[0]}}}}
    assert requests[0].tags["broadcast_name"] == "now"
    clock.now = T0 + timedelta(hours=3)
    requests, _ = tick(sensor, database)
    assert [r.run_key for r in requests] == [f"broadcast-{ids[0]}", f"broadcast-{ids[1]}"]


def test_digest_schedule_runs_the_drain_hourly_at_minute_zero() -> None:
    schedule = build_notification_digest_schedule(notification_deliveries_job)
    assert schedule.cron_schedule == "0 * * * *"
    assert schedule.job_name == "notification_deliveries_job"
