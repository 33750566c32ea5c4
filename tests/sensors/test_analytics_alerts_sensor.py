"""analytics_alerts_sensor on a controlled clock against a real operational DB: it evaluates the rules,
commits alerts and outbox events, launches nothing, says what changed, and prunes hourly by cursor."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
import sqlalchemy as sa

from domain.migrate import upgrade
from domain.schema import Alert, AlertRule, LiveMinute, OutboxEvent
from resources.database import OperationalDatabase
from sensors.analytics_alerts import build_analytics_alerts_sensor

T10 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def database(sqlite_url: str) -> Iterator[OperationalDatabase]:
    upgrade(sqlite_url)
    db = OperationalDatabase(url=sqlite_url)
    yield db
    db.engine().dispose()


def tick(sensor: dg.SensorDefinition, database: OperationalDatabase, cursor: str | None):
    with dg.build_sensor_context(resources={"database": database}, cursor=cursor) as context:
        return sensor(context), context.cursor


def test_sensor_fires_resolves_and_prunes_on_a_controlled_clock(database: OperationalDatabase) -> None:
    clock = Clock(T10 + timedelta(seconds=30))
    sensor = build_analytics_alerts_sensor(clock)
    assert (sensor.name, sensor.minimum_interval_seconds, sensor.has_jobs) == (
        "analytics_alerts_sensor",
        30,
        False,
    )
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING

    with database.session() as session:
        session.add(
            AlertRule(
                name="Views high",
                metric="events.view",
                kind="absolute",
                comparison="above",
                threshold=100,
                window_minutes=5,
                recipients=[str(uuid.UUID(int=1))],
            )
        )
        for i in range(5):
            session.add(LiveMinute(minute=T10 - timedelta(minutes=5 - i), metric="events.view", value=30))
        session.add(LiveMinute(minute=T10 - timedelta(days=9), metric="events.view", value=1))

    result, cursor = tick(sensor, database, None)
    assert isinstance(result, dg.SkipReason)
    assert result.skip_message == "fired Views high (150); pruned 1 live/route minutes"
    assert cursor == clock.now.isoformat()
    with database.session() as session:  # committed
        assert session.scalars(sa.select(Alert.status)).all() == ["firing"]
        assert session.scalars(sa.select(OutboxEvent.event_type)).all() == ["alert.fired"]

    clock.now += timedelta(seconds=20)  # same minute, and the last prune is recent
    again, same = tick(sensor, database, cursor)
    assert again.skip_message == "no alert changed" and same == cursor

    clock.now = T10 + timedelta(minutes=5, seconds=10)
    resolved, _ = tick(sensor, database, cursor)
    assert resolved.skip_message == "resolved Views high (0)"

    clock.now = T10 + timedelta(hours=1, seconds=30)
    later, new_cursor = tick(sensor, database, cursor)
    assert later.skip_message == "no alert changed; pruned 0 live/route minutes"
    assert new_cursor == clock.now.isoformat()
    with database.session() as session:
        assert session.scalars(sa.select(Alert.status)).all() == ["resolved"]
        assert session.scalars(sa.select(OutboxEvent.event_type).order_by(OutboxEvent.seq)).all() == [
            "alert.fired",
            "alert.resolved",
        ]
