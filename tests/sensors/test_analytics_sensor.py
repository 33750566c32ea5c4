"""analytics_hours_sensor over a real local lake and a real Dagster instance: closed hours only
(end + 2 min grace), run keys `events-<hour>-<n files>`, late files, cursor and skip reasons."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from domain.analytics import warehouse_events as events
from orchestration.jobs import analytics_events_job
from resources.object_store import LocalObjectStore
from sensors.analytics import (
    build_analytics_hours_sensor,
    days_request,
    hours_of_run,
)

H10 = datetime(2026, 3, 1, 10, tzinfo=UTC)
MODELS_JOB = "analytics_models_job"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def write_file(store: LocalObjectStore, hour: datetime) -> None:
    row = {name: None for name in events.EVENT_SCHEMA.names}
    row.update(event_id=str(uuid.uuid4()), event_type="login", occurred_at=hour, received_at=hour)
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist([row], schema=events.EVENT_SCHEMA), buffer)
    store.put_bytes(f"{events.hour_prefix(hour)}{uuid.uuid4()}.parquet", buffer.getvalue())


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(root=str(tmp_path / "lake"))


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


class Ticker:
    def __init__(self, clock: Clock, store: LocalObjectStore, instance: dg.DagsterInstance) -> None:
        self.sensor = build_analytics_hours_sensor(analytics_events_job, clock)
        self.store, self.instance, self.cursor = store, instance, None

    def __call__(self) -> dg.SensorResult:
        with dg.build_sensor_context(
            instance=self.instance, cursor=self.cursor, resources={"object_store": self.store}
        ) as context:
            result = self.sensor(context)
        assert isinstance(result, dg.SensorResult)
        self.cursor = result.cursor
        return result


def keys(result: dg.SensorResult) -> list[tuple[str, str]]:
    """(run key, partition key or "first..last" of a range run) of each run request."""
    out = []
    for r in result.run_requests or []:
        span = r.partition_key_range
        out.append((r.run_key, r.partition_key or f"{span.start}..{span.end}"))
    return out


def test_sensor_requests_closed_hours_with_files_and_reloads_late_files(store, instance):
    clock = Clock(H10 + timedelta(minutes=30))
    tick = Ticker(clock, store, instance)
    assert tick.sensor.job_name == analytics_events_job.name == "analytics_events_job"
    assert tick.sensor.name == "analytics_hours_sensor"

    empty = tick()
    assert not empty.run_requests
    assert "no closed hour has files" in empty.skip_reason.skip_message

    write_file(store, H10)
    write_file(store, H10)
    write_file(store, H10 + timedelta(hours=1))  # the hour after: still open below
    clock.now = H10 + timedelta(hours=1, minutes=1, seconds=59)  # hour 10 ended, grace not over
    assert not tick().run_requests

    clock.now = H10 + timedelta(hours=1, minutes=2)
    assert keys(tick()) == [("events-2026-03-01-10:00-2", "2026-03-01-10:00")]

    clock.now += timedelta(minutes=5)
    again = tick()
    assert not again.run_requests
    assert "no new or late files" in again.skip_reason.skip_message

    write_file(store, H10)  # a late file in an hour already loaded: a new key reloads it
    clock.now = H10 + timedelta(hours=2, minutes=3)  # and hour 11 has closed meanwhile: one range run
    ((key, span),) = keys(tick())
    assert span == "2026-03-01-10:00..2026-03-01-11:00"
    assert key.startswith("events-2026-03-01-10:00..2026-03-01-11:00-")
    assert not tick().run_requests
    write_file(store, H10)  # another late file: a different key for the same hours
    clock.now += timedelta(minutes=1)
    assert keys(tick()) == [("events-2026-03-01-10:00-4", "2026-03-01-10:00")]


def test_sensor_looks_back_48_hours_only(store, instance):
    write_file(store, H10)
    tick = Ticker(Clock(H10 + timedelta(hours=48, minutes=10)), store, instance)
    assert keys(tick()) == [("events-2026-03-01-10:00-1", "2026-03-01-10:00")]
    late = Ticker(Clock(H10 + timedelta(hours=50, minutes=10)), store, instance)
    result = late()
    assert not result.run_requests
    assert "no closed hour has files" in result.skip_reason.skip_message


def test_a_load_run_leads_to_one_models_run_over_the_days_of_its_hours():
    one = days_request(MODELS_JOB, "r1", *hours_of_run({"dagster/partition": "2026-03-01-23:00"}))
    assert (one.job_name, one.partition_key, one.run_key) == (MODELS_JOB, "2026-03-01", "days-r1")
    # A range over midnight: both days, as one range run.
    window = hours_of_run(
        {
            "dagster/asset_partition_range_start": "2026-03-01-22:00",
            "dagster/asset_partition_range_end": "2026-03-02-00:00",
        }
    )
    assert window == (datetime(2026, 3, 1, 22, tzinfo=UTC), datetime(2026, 3, 2, 1, tzinfo=UTC))
    span = days_request(MODELS_JOB, "r2", *window)
    assert span.partition_key is None
    assert (span.partition_key_range.start, span.partition_key_range.end) == ("2026-03-01", "2026-03-02")
    assert span.tags["loaded_by_run"] == "r2"
    assert hours_of_run({}) is None
