"""The event lake -> the warehouse's `raw_events` table: schema, DDL and the pure steps of a load.

The lake holds Parquet files under `events/dt=YYYY-MM-DD/hour=HH/<id>.parquet` (Hive style, the
UTC hour the events occurred in). One hour is loaded as a unit: its files are read, cast to
`EVENT_SCHEMA`, rows outside the hour dropped, duplicate event ids collapsed (the copy received
last wins), then the hour's rows in the warehouse are deleted and the result inserted.

Table design: `ReplacingMergeTree(received_at)`, `PARTITION BY toYYYYMM(occurred_at)`,
`ORDER BY (event_type, toDate(occurred_at), content_id, event_id)`. The sort key serves the
rollups (they filter and group by type and day, then content); `event_id` closes it so the
replacing engine also collapses an event id inserted twice into one partition (a safety net: the
loader already dedupes per hour and deletes the hour before inserting, so counts are exact without
`FINAL`).
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from domain.markdown import markdown_table

RAW_EVENTS_TABLE = "raw_events"
LAKE_PREFIX = "events/"
EVENT_TYPES = (
    "view",
    "media_progress",
    "media_complete",
    "favorite",
    "share",
    "comment",
    "search",
    "search_click",
    "download",
    "login",
)

_TS = pa.timestamp("ms", tz="UTC")
# The lake's file schema (written by the tracking API).
EVENT_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("event_type", pa.string()),
        ("occurred_at", _TS),
        ("received_at", _TS),
        ("user_id", pa.string()),
        ("session_id", pa.string()),
        ("platform", pa.string()),
        ("language", pa.string()),
        ("content_id", pa.string()),
        ("position_s", pa.float64()),
        ("duration_s", pa.float64()),
        ("query", pa.string()),
        ("result_count", pa.int32()),
        ("clicked_position", pa.int32()),
        ("channel", pa.string()),
        ("properties", pa.string()),
    ]
)

_UTC_MS = "DateTime64(3, 'UTC')"
# (column, ClickHouse type), in EVENT_SCHEMA's order. Key columns are not nullable (sort keys).
RAW_EVENTS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("event_id", "String"),
    ("event_type", "LowCardinality(String)"),
    ("occurred_at", _UTC_MS),
    ("received_at", _UTC_MS),
    ("user_id", "Nullable(String)"),
    ("session_id", "Nullable(String)"),
    ("platform", "LowCardinality(Nullable(String))"),
    ("language", "LowCardinality(Nullable(String))"),
    ("content_id", "String"),
    ("position_s", "Nullable(Float64)"),
    ("duration_s", "Nullable(Float64)"),
    ("query", "Nullable(String)"),
    ("result_count", "Nullable(Int32)"),
    ("clicked_position", "Nullable(Int32)"),
    ("channel", "Nullable(String)"),
    ("properties", "Nullable(String)"),
)
_NOT_NULL_STRINGS = ("event_id", "event_type", "content_id")

_HOUR_DIR = re.compile(r"^events/dt=(\d{4}-\d{2}-\d{2})/hour=(\d{2})/[^/]+\.parquet$")


def raw_events_ddl(database: str) -> str:
    columns = ",\n    ".join(f"`{name}` {type_}" for name, type_ in RAW_EVENTS_COLUMNS)
    return (
        f"CREATE TABLE IF NOT EXISTS `{database}`.`{RAW_EVENTS_TABLE}` (\n    {columns}\n)\n"
        "ENGINE = ReplacingMergeTree(received_at)\n"
        "PARTITION BY toYYYYMM(occurred_at)\n"
        "ORDER BY (event_type, toDate(occurred_at), content_id, event_id)"
    )


def _ch_time(value: datetime) -> str:
    return f"toDateTime64('{value.astimezone(UTC):%Y-%m-%d %H:%M:%S}', 3, 'UTC')"


def hour_filter(hour: datetime) -> str:
    """The SQL condition selecting the events that occurred in `hour` (half-open)."""
    start = hour_start(hour)
    return f"occurred_at >= {_ch_time(start)} AND occurred_at < {_ch_time(start + timedelta(hours=1))}"


def delete_hour_sql(database: str, hour: datetime) -> str:
    """A lightweight delete of the hour's rows (synchronous by default in ClickHouse 24+)."""
    return f"DELETE FROM `{database}`.`{RAW_EVENTS_TABLE}` WHERE {hour_filter(hour)}"


def hour_start(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("hours are timezone-aware UTC datetimes")
    return value.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def hour_prefix(hour: datetime) -> str:
    """The lake folder of an hour's files: `events/dt=2026-03-01/hour=07/`."""
    start = hour_start(hour)
    return f"{LAKE_PREFIX}dt={start:%Y-%m-%d}/hour={start:%H}/"


def hour_of_key(key: str) -> datetime | None:
    """The UTC hour of a lake file from its key, or None for anything that is not one."""
    match = _HOUR_DIR.match(key)
    if match is None:
        return None
    day, hour = match.groups()
    return datetime.fromisoformat(f"{day}T{hour}:00:00+00:00")


def conform(table: pa.Table) -> pa.Table:
    """`table` with exactly EVENT_SCHEMA's columns, in order, cast to its types (a missing optional
    column becomes nulls; a missing event_id/event_type/occurred_at is an error)."""
    columns = []
    for field in EVENT_SCHEMA:
        if field.name in table.column_names:
            columns.append(table.column(field.name).cast(field.type))
        elif field.name in ("event_id", "event_type", "occurred_at", "received_at"):
            raise ValueError(f"event file without the {field.name!r} column")
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=EVENT_SCHEMA)


def for_warehouse(table: pa.Table) -> pa.Table:
    """Fill the non-nullable key strings (content_id is empty for events about no content)."""
    for name in _NOT_NULL_STRINGS:
        index = table.schema.get_field_index(name)
        table = table.set_column(index, name, pc.fill_null(table.column(name), ""))
    return table


def in_hour(table: pa.Table, hour: datetime) -> pa.Table:
    start = hour_start(hour)
    occurred = table.column("occurred_at")
    keep = pc.and_(
        pc.greater_equal(occurred, pa.scalar(start, _TS)),
        pc.less(occurred, pa.scalar(start + timedelta(hours=1), _TS)),
    )
    return table.filter(keep)


def deduplicate(table: pa.Table) -> pa.Table:
    """One row per event id: the copy received last (ties: the last one read)."""
    if table.num_rows == 0:
        return table
    order = np.arange(table.num_rows)
    table = table.append_column("__order", pa.array(order))
    ranked = table.sort_by(
        [("event_id", "ascending"), ("received_at", "descending"), ("__order", "descending")]
    )
    ids = ranked.column("event_id").to_numpy(zero_copy_only=False)
    first = np.ones(len(ids), dtype=bool)
    first[1:] = ids[1:] != ids[:-1]
    return ranked.filter(pa.array(first)).drop_columns(["__order"])


def count_by_type(table: pa.Table) -> Counter[str]:
    counts = pc.value_counts(table.column("event_type")).to_pylist()
    return Counter({item["values"]: item["counts"] for item in counts})


def markdown_counts(counts: Counter[str]) -> str:
    return markdown_table(("event type", "events"), [(name, counts[name]) for name in sorted(counts)])
