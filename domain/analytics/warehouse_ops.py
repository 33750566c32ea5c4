"""System and job metrics in the warehouse: the API's route minutes and the processing jobs, copied
from the operational DB hour by hour (the operational DB keeps route minutes 8 days; the warehouse
keeps them for the long run, like the events).

- `raw_route_minutes`: one row per (minute, route), as the request middleware of every API process
  summed them (`domain.analytics.live`). An hour is replaced whole, so a reload never double counts.
- `raw_processing_jobs`: the processing jobs (media processing, transcode and analyze requests; the
  import jobs join when the import service writes its own) that finished in the hour, one row per
  job. `ReplacingMergeTree(finished_at)` keyed by job id: a job retried later keeps only its latest
  outcome, wherever its earlier finish was loaded.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from domain.schema import MediaAsset, MediaJob, RouteMinute

RAW_ROUTE_MINUTES_TABLE = "raw_route_minutes"
RAW_PROCESSING_JOBS_TABLE = "raw_processing_jobs"

ROUTE_COLUMNS: list[tuple[str, str]] = [
    ("minute", "DateTime('UTC')"),
    ("route", "String"),
    ("requests", "UInt64"),
    ("client_errors", "UInt64"),
    ("server_errors", "UInt64"),
    ("latency_sum_ms", "Float64"),
    ("latency_max_ms", "Float64"),
    ("latency_buckets", "Array(UInt64)"),
]
JOB_COLUMNS: list[tuple[str, str]] = [
    ("job_id", "String"),
    ("source", "LowCardinality(String)"),  # media (later: import)
    ("job_kind", "LowCardinality(String)"),  # process | transcode | analyze
    ("media_kind", "LowCardinality(String)"),  # video | audio | image | ''
    ("status", "LowCardinality(String)"),  # completed | failed
    ("error", "String"),
    ("created_at", "DateTime64(3, 'UTC')"),
    ("started_at", "Nullable(DateTime64(3, 'UTC'))"),
    ("finished_at", "DateTime64(3, 'UTC')"),
]


def _ddl(
    database: str, table: str, columns: list[tuple[str, str]], engine: str, partition: str, order: str
) -> str:
    body = ", ".join(f"`{name}` {type_}" for name, type_ in columns)
    return (
        f"CREATE TABLE IF NOT EXISTS `{database}`.`{table}` ({body}) ENGINE = {engine} "
        f"PARTITION BY {partition} ORDER BY {order}"
    )


def route_minutes_ddl(database: str) -> str:
    return _ddl(
        database,
        RAW_ROUTE_MINUTES_TABLE,
        ROUTE_COLUMNS,
        "MergeTree",
        "toYYYYMM(minute)",
        "(toDate(minute), route, minute)",
    )


def processing_jobs_ddl(database: str) -> str:
    return _ddl(
        database,
        RAW_PROCESSING_JOBS_TABLE,
        JOB_COLUMNS,
        "ReplacingMergeTree(finished_at)",
        "toYYYYMM(finished_at)",
        "(source, job_id)",
    )


def _hour_bounds(hour: datetime) -> tuple[datetime, datetime]:
    start = hour.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return start, start + timedelta(hours=1)


def delete_hour_sql(database: str, table: str, column: str, hour: datetime) -> str:
    start, end = _hour_bounds(hour)
    return (
        f"DELETE FROM `{database}`.`{table}` WHERE {column} >= toDateTime64('{start:%Y-%m-%d %H:%M:%S}', 3, 'UTC') "
        f"AND {column} < toDateTime64('{end:%Y-%m-%d %H:%M:%S}', 3, 'UTC')"
    )


def route_rows(session: Session, hour: datetime) -> list[list[Any]]:
    start, end = _hour_bounds(hour)
    rows = session.execute(
        sa.select(RouteMinute)
        .where(RouteMinute.minute >= start, RouteMinute.minute < end)
        .order_by(RouteMinute.minute)
    ).scalars()
    return [
        [
            r.minute,
            r.route,
            r.requests,
            r.client_errors,
            r.server_errors,
            r.latency_sum_ms,
            r.latency_max_ms,
            [int(n) for n in r.latency_buckets or []],
        ]
        for r in rows
    ]


def job_rows(session: Session, hour: datetime) -> list[list[Any]]:
    """The processing jobs that finished (completed or failed) in the hour."""
    start, end = _hour_bounds(hour)
    rows = session.execute(
        sa.select(MediaJob, MediaAsset.content_type)
        .join(MediaAsset, MediaAsset.id == MediaJob.media_asset_id, isouter=True)
        .where(
            MediaJob.finished_at >= start,
            MediaJob.finished_at < end,
            MediaJob.status.in_(("completed", "failed")),
        )
        .order_by(MediaJob.finished_at)
    ).all()
    return [
        [
            str(job.id),
            "media",
            job.kind,
            media_kind or "",
            job.status,
            job.error or "",
            job.created_at,
            job.started_at,
            job.finished_at,
        ]
        for job, media_kind in rows
    ]
