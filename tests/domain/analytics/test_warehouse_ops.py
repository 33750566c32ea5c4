"""System and job metrics for the warehouse (`domain.analytics.warehouse_ops`): which route minutes and
processing jobs make up an hour, in the columns the warehouse tables declare, and the SQL that creates
those tables and replaces an hour."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

from domain.analytics import warehouse_ops as ops
from domain.schema import MediaAsset, MediaJob, RouteMinute
from resources.database import OperationalDatabase as DB

HOUR = datetime(2026, 3, 1, 7, tzinfo=UTC)


def _asset(kind: str) -> MediaAsset:
    return MediaAsset(content_type=kind, file_size=1, s3_key=f"uploads/{uuid.uuid4()}")


def _job(asset: MediaAsset, status: str, finished_at: datetime | None, **fields: object) -> MediaJob:
    return MediaJob(
        media_asset_id=asset.id,
        status=status,
        created_at=HOUR - timedelta(hours=1),
        finished_at=finished_at,
        **fields,
    )


def test_route_rows_are_the_minutes_of_the_hour_in_order_with_integer_buckets(db: DB) -> None:
    with db.session() as session:
        for minute, route in ((59, "GET /a"), (0, "GET /b"), (30, "GET /a")):
            session.add(
                RouteMinute(
                    minute=HOUR + timedelta(minutes=minute),
                    route=route,
                    requests=minute + 1,
                    client_errors=1,
                    server_errors=0,
                    latency_sum_ms=12.5,
                    latency_max_ms=9.0,
                    latency_buckets=[0, 2.0, 1],
                )
            )
        # The minutes either side of the hour belong to the hours before and after.
        session.add(RouteMinute(minute=HOUR - timedelta(minutes=1), route="GET /a", requests=7))
        session.add(RouteMinute(minute=HOUR + timedelta(hours=1), route="GET /a", requests=7))
    with db.session() as session:
        # Any moment of the hour, in any time zone, names the same hour.
        rows = ops.route_rows(
            session, (HOUR + timedelta(minutes=42)).astimezone(timezone(timedelta(hours=3)))
        )
    assert [(row[0], row[1], row[2]) for row in rows] == [
        (HOUR, "GET /b", 1),
        (HOUR + timedelta(minutes=30), "GET /a", 31),
        (HOUR + timedelta(minutes=59), "GET /a", 60),
    ]
    assert all(len(row) == len(ops.ROUTE_COLUMNS) for row in rows)
    assert rows[0][3:] == [1, 0, 12.5, 9.0, [0, 2, 1]]
    assert all(isinstance(n, int) for n in rows[0][7])


def test_job_rows_are_the_jobs_that_finished_in_the_hour(db: DB) -> None:
    with db.session() as session:
        video, image = _asset("video"), _asset("image")
        session.add_all([video, image])
        session.flush()
        done = _job(
            video,
            "completed",
            HOUR + timedelta(minutes=5),
            kind="process",
            started_at=HOUR + timedelta(minutes=1),
        )
        failed = _job(
            image, "failed", HOUR + timedelta(minutes=50), kind="transcode", error="ffmpeg exited 1"
        )
        running = _job(video, "running", None)
        earlier = _job(video, "completed", HOUR - timedelta(seconds=1))
        later = _job(image, "failed", HOUR + timedelta(hours=1))
        session.add_all([done, failed, running, earlier, later])
        session.flush()
        expected = [
            [
                str(done.id),
                "media",
                "process",
                "video",
                "completed",
                "",
                done.created_at,
                HOUR + timedelta(minutes=1),
                HOUR + timedelta(minutes=5),
            ],
            [
                str(failed.id),
                "media",
                "transcode",
                "image",
                "failed",
                "ffmpeg exited 1",
                failed.created_at,
                None,
                HOUR + timedelta(minutes=50),
            ],
        ]
    with db.session() as session:
        rows = ops.job_rows(session, HOUR)
    assert rows == expected
    assert [name for name, _ in ops.JOB_COLUMNS][:5] == [
        "job_id",
        "source",
        "job_kind",
        "media_kind",
        "status",
    ]
    assert all(len(row) == len(ops.JOB_COLUMNS) for row in rows)


def test_an_hour_is_deleted_by_its_utc_bounds() -> None:
    riyadh = (HOUR + timedelta(minutes=59, seconds=59)).astimezone(timezone(timedelta(hours=3)))
    sql = ops.delete_hour_sql("analytics", ops.RAW_ROUTE_MINUTES_TABLE, "minute", riyadh)
    assert sql == (
        "DELETE FROM `analytics`.`raw_route_minutes` WHERE minute >= toDateTime64('2026-03-01 07:00:00', 3, 'UTC') "
        "AND minute < toDateTime64('2026-03-01 08:00:00', 3, 'UTC')"
    )


def test_the_tables_declare_the_row_columns_their_engines_and_keys() -> None:
    routes = ops.route_minutes_ddl("analytics")
    assert routes.startswith(
        "CREATE TABLE IF NOT EXISTS `analytics`.`raw_route_minutes` (`minute` DateTime('UTC'), "
    )
    assert "`latency_buckets` Array(UInt64)) ENGINE = MergeTree PARTITION BY toYYYYMM(minute) " in routes
    assert routes.endswith("ORDER BY (toDate(minute), route, minute)")
    jobs = ops.processing_jobs_ddl("analytics")
    assert "`analytics`.`raw_processing_jobs`" in jobs
    # A job retried later keeps only its latest outcome: replaced by finish time, keyed by job id.
    assert (
        "ENGINE = ReplacingMergeTree(finished_at) PARTITION BY toYYYYMM(finished_at) ORDER BY (source, job_id)"
        in jobs
    )
    assert all(f"`{name}` {type_}" in jobs for name, type_ in ops.JOB_COLUMNS)
