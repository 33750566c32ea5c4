"""Turn closed hours of the event lake into runs of the analytics events job, and loaded hours
into runs of the daily models.

An hour is loaded once it has closed (its end plus a grace period for in-flight flushes) and has
files. The run key names the hour and its file count (`events-<hour>-<n files>`), so a file that
lands late in an hour already loaded makes a new key and the hour is loaded again (the load
replaces the hour, so nothing is double counted). Several hours to load at once (a backlog after
downtime, the demo's history, a late file beside a new hour) make ONE run over the partition range
from the first to the last of them: hours in between are loaded again, which changes nothing, and
the dbt models and serving tables are rebuilt once instead of once per hour. The cursor remembers the file count seen per
hour of the look-back window; older hours are reloaded by a backfill from the Dagster UI.
The sensor only lists the object store: it never opens the warehouse.

The dbt event models and the serving tables are partitioned by day (see
`assets.analytics_events.events_daily_partitions`), so they run in a job of their own:
`analytics_days_sensor` watches the hourly load jobs and, when one succeeds, requests the models
job for the day or days its hours fall in (the ops job's hours rebuild only the ops models).
"""

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import dagster as dg

from assets.analytics_events import events_daily_partitions, events_hourly_partitions
from domain.analytics import warehouse_events as events
from domain.schema import utcnow
from resources.object_store import ObjectStore

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
CLOSE_GRACE = timedelta(minutes=2)
LOOKBACK = timedelta(hours=48)


def partition_key(hour: datetime) -> str:
    return hour.astimezone(UTC).strftime("%Y-%m-%d-%H:%M")


def run_key(hour: datetime, files: int) -> str:
    return f"events-{partition_key(hour)}-{files}"


def run_request(changed: dict[datetime, int]) -> dg.RunRequest:
    """One run for the hours whose files changed: their partition, or the range spanning them."""
    hours = sorted(changed)
    if len(hours) == 1:
        (hour,) = hours
        return dg.RunRequest(
            run_key=run_key(hour, changed[hour]),
            partition_key=partition_key(hour),
            tags={"lake_files": str(changed[hour])},
        )
    first, last = partition_key(hours[0]), partition_key(hours[-1])
    signature = ",".join(f"{partition_key(h)}={changed[h]}" for h in hours)
    return dg.RunRequest(
        run_key=f"events-{first}..{last}-{hashlib.sha1(signature.encode()).hexdigest()[:12]}",
        tags={
            RANGE_START_TAG: first,
            RANGE_END_TAG: last,
            "lake_files": str(sum(changed.values())),
            "lake_hours": str(len(hours)),
        },
    )


def last_closed_hour(now: datetime) -> datetime:
    """The newest hour whose end is at least `CLOSE_GRACE` in the past."""
    return events.hour_start(now - CLOSE_GRACE) - timedelta(hours=1)


def files_per_hour(object_store: ObjectStore, first: datetime, last: datetime) -> dict[datetime, int]:
    """Lake files per hour in [first, last], listed one day folder at a time."""
    counts: dict[datetime, int] = {}
    day = first.replace(hour=0)
    while day <= last:
        for key in object_store.list(f"{events.LAKE_PREFIX}dt={day:%Y-%m-%d}/"):
            hour = events.hour_of_key(key)
            if hour is not None and first <= hour <= last:
                counts[hour] = counts.get(hour, 0) + 1
        day += timedelta(days=1)
    return counts


def build_analytics_hours_sensor(
    job: "UnresolvedAssetJobDefinition", now: Callable[[], datetime] = utcnow
) -> dg.SensorDefinition:
    """`analytics_hours_sensor`: closed hours of the lake with new or late files -> a run of `job`
    (the hourly events load) over them."""

    @dg.sensor(
        name="analytics_hours_sensor",
        job=job,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Loads each closed hour of the event lake (end + 2 min) into the warehouse; a late "
        "file reloads its hour (analytics_days_sensor then rebuilds the hour's day).",
    )
    def analytics_hours_sensor(
        context: dg.SensorEvaluationContext, object_store: dg.ResourceParam[ObjectStore]
    ):
        seen: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
        last = last_closed_hour(now())
        start = events_hourly_partitions.start.astimezone(UTC)
        first = max(last - LOOKBACK, start)
        if last < start:
            return dg.SkipReason(f"no hour has closed since the partitions start ({partition_key(start)})")
        counts = files_per_hour(object_store, first, last)
        changed = {hour: n for hour, n in sorted(counts.items()) if seen.get(partition_key(hour)) != n}
        runs = [run_request(changed)] if changed else []
        # Keep only the window in the cursor: it stays small, and old hours are backfills.
        cursor = json.dumps({partition_key(hour): n for hour, n in sorted(counts.items())}, sort_keys=True)
        if not runs:
            reason = (
                f"no closed hour has files (looked at {partition_key(first)} .. {partition_key(last)})"
                if not counts
                else f"no new or late files in the {len(counts)} closed hour(s) with files"
                f" up to {partition_key(last)}"
            )
            return dg.SensorResult(skip_reason=dg.SkipReason(reason), cursor=cursor)
        return dg.SensorResult(run_requests=runs, cursor=cursor)

    return analytics_hours_sensor


def hours_of_run(tags: Mapping[str, str]) -> tuple[datetime, datetime] | None:
    """[start, end) of the hourly partition or range a load run covered, from its tags."""
    first = tags.get(RANGE_START_TAG) or tags.get(PARTITION_TAG)
    last = tags.get(RANGE_END_TAG) or tags.get(PARTITION_TAG)
    if not first or not last:
        return None
    start = events_hourly_partitions.time_window_for_partition_key(first).start
    return start, events_hourly_partitions.time_window_for_partition_key(last).end


def days_request(job_name: str, run_id: str, start: datetime, end: datetime) -> dg.RunRequest:
    """A run of the models job over the UTC days that [start, end) touches."""
    first = start.astimezone(UTC).strftime("%Y-%m-%d")
    last = (end.astimezone(UTC) - timedelta(microseconds=1)).strftime("%Y-%m-%d")
    tags = {"loaded_by_run": run_id}
    if first == last:
        return dg.RunRequest(run_key=f"days-{run_id}", job_name=job_name, partition_key=first, tags=tags)
    return dg.RunRequest(
        run_key=f"days-{run_id}",
        job_name=job_name,
        tags={**tags, RANGE_START_TAG: first, RANGE_END_TAG: last},
    )


def build_analytics_days_sensor(
    models_after: Sequence[tuple["UnresolvedAssetJobDefinition", "UnresolvedAssetJobDefinition"]],
) -> dg.SensorDefinition:
    """`analytics_days_sensor`: a successful run of an hourly load job -> one run of the daily models
    job it leads to (`models_after`: (load job, models job) pairs) over the days of its hours, keyed
    by the load run so it is requested once."""
    models_job_of = {load.name: models.name for load, models in models_after}
    request_jobs = {models.name: models for _, models in models_after}

    @dg.run_status_sensor(
        name="analytics_days_sensor",
        run_status=dg.DagsterRunStatus.SUCCESS,
        monitored_jobs=[load for load, _ in models_after],
        request_jobs=list(request_jobs.values()),
        minimum_interval_seconds=15,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="When an hourly load (analytics_events_job, analytics_ops_job) succeeds, rebuilds "
        "the dbt models of its hours' days and publishes them to the serving tables.",
    )
    def analytics_days_sensor(context: dg.RunStatusSensorContext):
        run = context.dagster_run
        models_job = models_job_of.get(run.job_name)
        window = hours_of_run(run.tags)
        if models_job is None or window is None:
            return dg.SkipReason(f"run {run.run_id} of {run.job_name} names no hourly partition")
        if events_daily_partitions.start > window[0]:
            return dg.SkipReason(f"run {run.run_id} loaded hours before the daily partitions start")
        return days_request(models_job, run.run_id, *window)

    return analytics_days_sensor
