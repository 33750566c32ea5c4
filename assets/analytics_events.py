"""The event lake in the warehouse: one hourly partition of `analytics_raw_events` per UTC hour.

Each run loads the hour's Parquet files from the object store into `raw_events` (see
`domain.analytics.warehouse_events`): the hour's rows are deleted first, so loading an hour again
(a late file, a backfill) replaces it and never double counts.
"""

import io
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from domain.analytics import warehouse_events as events
from resources.object_store import ObjectStore
from resources.warehouse import WAREHOUSE_POOL, Warehouse

ANALYTICS_GROUP = "analytics"
EVENTS_START = "2026-01-01-00:00"
events_hourly_partitions = dg.HourlyPartitionsDefinition(start_date=EVENTS_START, timezone="UTC")
# The dbt event models and the serving tables are daily, like the marts they are: a day partition
# reads the 24 hourly partitions of its day (Dagster's default time-window mapping). `end_offset=1`
# makes today a partition, so the marts follow the day as its hours close. Daily partitions also
# keep a backfill's bookkeeping small: a run over a month records 31 partitions per model, not 744.
events_daily_partitions = dg.DailyPartitionsDefinition(
    start_date=EVENTS_START[:10], timezone="UTC", end_offset=1
)


def hours_of_window(window: dg.TimeWindow) -> list[datetime]:
    """The UTC hours of a run's partition window (one hour, or a backfilled range)."""
    hours, hour = [], window.start
    while hour < window.end:
        hours.append(hour)
        hour += timedelta(hours=1)
    return hours


def lake_files(object_store: ObjectStore, hour: datetime) -> list[str]:
    """The hour's Parquet files, sorted (the order duplicates are resolved in)."""
    return sorted(key for key in object_store.list(events.hour_prefix(hour)) if events.hour_of_key(key))


def read_hour(object_store: ObjectStore, keys: Sequence[str]) -> pa.Table:
    tables = [events.conform(pq.read_table(io.BytesIO(object_store.get_bytes(key)))) for key in keys]
    return pa.concat_tables(tables) if tables else events.EVENT_SCHEMA.empty_table()


def _count_in_warehouse(warehouse: Warehouse, client, hour: datetime) -> int:
    return int(
        client.command(
            f"SELECT count() FROM `{warehouse.database}`.`{events.RAW_EVENTS_TABLE}`"
            f" WHERE {events.hour_filter(hour)}"
        )
    )


def _hour_label(hours: list[datetime]) -> str:
    first, last = hours[0], hours[-1]
    return f"{first:%Y-%m-%d %H}:00" if first == last else f"{first:%Y-%m-%d %H}:00 .. {last:%Y-%m-%d %H}:00"


@dg.asset(
    group_name=ANALYTICS_GROUP,
    kinds={"python", "parquet", "clickhouse"},
    pool=WAREHOUSE_POOL,
    partitions_def=events_hourly_partitions,
    # A backfilled range is one run (hour by hour inside it), like the dbt models downstream.
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def analytics_raw_events(
    context: dg.AssetExecutionContext,
    object_store: dg.ResourceParam[ObjectStore],
    warehouse: dg.ResourceParam[Warehouse],
) -> dg.MaterializeResult:
    """The tracked events of one UTC hour, from the event lake (`events/dt=.../hour=.../*.parquet`)
    into the warehouse table `raw_events` (ReplacingMergeTree, monthly partitions). Each hour is
    replaced whole: its rows are deleted, then the files' events inserted, one row per event id
    (the copy received last), events outside the hour dropped. dbt's `events` source reads it."""
    hours = hours_of_window(context.partition_time_window)
    files = read_rows = outside = duplicates = loaded = 0
    counts: Counter[str] = Counter()
    with warehouse.client() as client:
        client.command(events.raw_events_ddl(warehouse.database))
        for hour in hours:
            keys = lake_files(object_store, hour)
            read = read_hour(object_store, keys)
            in_hour = events.in_hour(events.for_warehouse(read), hour)
            rows = events.deduplicate(in_hour)
            client.command(events.delete_hour_sql(warehouse.database, hour))
            if rows.num_rows:
                client.insert_arrow(events.RAW_EVENTS_TABLE, rows, database=warehouse.database)
            loaded += _count_in_warehouse(warehouse, client, hour)
            files, read_rows = files + len(keys), read_rows + read.num_rows
            outside += read.num_rows - in_hour.num_rows
            duplicates += in_hour.num_rows - rows.num_rows
            counts.update(events.count_by_type(rows))
    context.log.info(f"{_hour_label(hours)}: {files} file(s), {read_rows} event(s) read, {loaded} loaded")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": loaded,
            "dagster/table_name": f"{warehouse.database}.{events.RAW_EVENTS_TABLE}",
            "hours": len(hours),
            "files": files,
            "rows_read": read_rows,
            "duplicates_dropped": duplicates,
            "outside_hour_dropped": outside,
            "by_event_type": dg.MetadataValue.md(events.markdown_counts(counts)),
        }
    )


@dg.asset_check(asset=analytics_raw_events, pool=WAREHOUSE_POOL, blocking=True)
def raw_events_match_lake(
    context: dg.AssetCheckExecutionContext,
    object_store: dg.ResourceParam[ObjectStore],
    warehouse: dg.ResourceParam[Warehouse],
) -> dg.AssetCheckResult:
    """The hour in the warehouse holds exactly one row per distinct event id of the hour's files."""
    if not (context.has_partition_key or context.has_partition_key_range):
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description="run without an hourly partition: nothing to compare",
        )
    hours = hours_of_window(context.partition_time_window)
    expected = files = actual = 0
    mismatched: list[str] = []
    with warehouse.client() as client:
        for hour in hours:
            keys = lake_files(object_store, hour)
            table = events.in_hour(events.for_warehouse(read_hour(object_store, keys)), hour)
            distinct = len(set(table.column("event_id").to_pylist()))
            rows = _count_in_warehouse(warehouse, client, hour)
            if rows != distinct:
                mismatched.append(f"{hour:%Y-%m-%d %H}:00 ({rows} rows, {distinct} event ids)")
            expected, files, actual = expected + distinct, files + len(keys), actual + rows
    return dg.AssetCheckResult(
        passed=not mismatched,
        severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(mismatched[:20]) or None,
        metadata={
            "hours": _hour_label(hours),
            "files": files,
            "distinct_event_ids": expected,
            "rows": actual,
        },
    )
