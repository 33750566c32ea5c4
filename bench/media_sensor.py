"""The media sensor under a burst, and the size of the `media` partition set over a year.

`media_sensor.tick_10k`: one evaluation of `media_uploads_sensor` with 10,000 uploads pending
(asset + job + `media.uploaded` each, SQLite operational DB) on a real Dagster instance (the
embedded SQLite one, or PostgreSQL with `--dagster-postgres-url`), as the code server runs it for
the daemon: the sensor (which adds the partitions in one bulk insert), then Dagster's check of each
of the 10,000 run requests against the media job of the real definitions. Spec: under 10 s.
Launching the 10,000 runs afterwards is the run queue's work and is not part of the tick. The
line's `n` is the number of uploads the tick took in (partitions added), whatever `--uploads` was.

`media_sensor.partitions_after_year`: partitions the set holds after `--days` days of `--per-day`
uploads whose jobs finish the same day, the sensor ticking through each day with the retention in
force (its clock is the simulated one). With 30 days' retention it settles at 30 x per-day, far
below Dagster's advised 100,000 partitions per asset. The line's `n` is the days simulated (a year
only at the default `--days 365`) and `per_day` the uploads a day. The set lives in an in-memory
instance here (the count is the same; the one-by-one deletes on disk would turn minutes into an hour).

    python bench/media_sensor.py [--uploads 10000] [--days 365] [--per-day 1000] [--retention-days 30]

Full size takes about ten minutes; `--uploads 500 --days 40 --per-day 50` is a smoke run.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import sqlalchemy as sa
import yaml
from sqlalchemy.orm import Session

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _http import report  # noqa: E402

from assets.media import media_partitions  # noqa: E402
from domain.db import sync_engine  # noqa: E402
from domain.ids import new_id  # noqa: E402
from domain.media.uploads import original_key  # noqa: E402
from domain.migrate import upgrade  # noqa: E402
from domain.schema import MediaAsset, MediaJob, OutboxEvent  # noqa: E402
from domain.settings import Settings  # noqa: E402
from orchestration.definitions import build_definitions  # noqa: E402
from orchestration.deployment import prepare_dagster_home  # noqa: E402
from orchestration.jobs import media_job  # noqa: E402
from resources.database import OperationalDatabase  # noqa: E402
from sensors.media import build_media_uploads_sensor  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def seed_uploads(engine: sa.Engine, count: int, at: datetime) -> list[uuid.UUID]:
    """`count` uploads as `record_upload` writes them (asset, first job, event), in bulk; returns
    the job ids."""
    assets, jobs, events = [], [], []
    for _ in range(count):
        media_id, job_id = new_id(), new_id()
        assets.append(
            {
                "id": media_id,
                "original_filename": "clip.mp4",
                "content_type": "video",
                "mime_type": "video/mp4",
                "file_size": 1_000_000,
                "sha256": "",
                "s3_key": original_key(media_id),
                "upload_status": "pending",
                "meta": {},
                "created_at": at,
                "updated_at": at,
            }
        )
        jobs.append(
            {
                "id": job_id,
                "media_asset_id": media_id,
                "kind": "process",
                "status": "pending",
                "stage": "queued",
                "percent": 0.0,
                "requested": {},
                "created_at": at,
                "updated_at": at,
            }
        )
        events.append(
            {
                "event_id": new_id(),
                "event_type": "media.uploaded",
                "aggregate_type": "media",
                "aggregate_id": str(media_id),
                "occurred_at": at,
                "payload": {
                    "id": str(media_id),
                    "kind": "video",
                    "size": 1_000_000,
                    "content_item_id": None,
                    "job_id": str(job_id),
                    "language": None,
                },
            }
        )
    with Session(engine) as session, session.begin():
        session.execute(sa.insert(MediaAsset), assets)
        session.execute(sa.insert(MediaJob), jobs)
        session.execute(sa.insert(OutboxEvent), events)
    return [j["id"] for j in jobs]


def finish_jobs(engine: sa.Engine, job_ids: list[uuid.UUID], at: datetime) -> None:
    with Session(engine) as session, session.begin():
        for start in range(0, len(job_ids), 5000):
            session.execute(
                sa.update(MediaJob)
                .where(MediaJob.id.in_(job_ids[start : start + 5000]))
                .values(status="completed", stage="done", percent=100.0, finished_at=at, updated_at=at)
            )


def tick(sensor, instance, database, cursor):
    with dg.build_sensor_context(
        instance=instance, resources={"database": database}, cursor=cursor
    ) as context:
        return sensor(context)


def dagster_home(root: Path, settings: Settings, postgres_url: str | None) -> Path:
    """The embedded instance's dagster.yaml (SQLite), or one whose storage is PostgreSQL."""
    if not postgres_url:
        return prepare_dagster_home(settings)
    home = root / "dagster_pg"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(
        yaml.safe_dump(
            {"storage": {"postgres": {"postgres_url": postgres_url}}, "telemetry": {"enabled": False}}
        )
    )
    return home


def burst(root: Path, uploads: int, postgres_url: str | None) -> tuple[float, int, int]:
    """(seconds, run requests, partitions added) of one tick over `uploads` pending uploads,
    evaluated as the code server does for the daemon (`evaluate_tick` with the instance's
    reference, real definitions)."""
    settings = Settings(deployment="local", data_dir=root)
    upgrade(settings.database_url)
    engine = sync_engine(settings.database_url)
    seed_uploads(engine, uploads, T0)
    engine.dispose()
    defs = build_definitions(settings)
    sensor = defs.get_repository_def().get_sensor_def("media_uploads_sensor")
    with dg.DagsterInstance.from_config(str(dagster_home(root, settings, postgres_url))) as instance:
        before = len(instance.get_dynamic_partitions(media_partitions.name))
        started = time.perf_counter()
        with dg.build_sensor_context(
            instance=instance, instance_ref=instance.get_ref(), definitions=defs, resources=defs.resources
        ) as context:
            data = sensor.evaluate_tick(context)
        seconds = time.perf_counter() - started
        assert not data.dynamic_partitions_requests  # nothing left for the daemon to apply
        added = instance.get_dynamic_partitions(media_partitions.name)[before:]
        assert len(added) == uploads, len(added)
        if postgres_url:  # leave the given database's partition set as it was
            for key in added:
                instance.delete_dynamic_partition(media_partitions.name, key)
    return seconds, len(data.run_requests or []), len(added)


def year(days: int, per_day: int, retention_days: int, root: Path) -> tuple[int, int, float]:
    """(partitions at the end, most held at any time, seconds of the last evening tick)."""
    settings = Settings(deployment="local", data_dir=root)
    upgrade(settings.database_url)
    engine = sync_engine(settings.database_url)
    database = OperationalDatabase(url=settings.database_url)
    clock = {"now": T0}
    sensor = build_media_uploads_sensor(media_job, retention_days, clock=lambda: clock["now"])
    cursor, largest, last_tick = None, 0, 0.0
    with dg.DagsterInstance.ephemeral() as instance:
        for day in range(days):
            morning = T0 + timedelta(days=day, hours=9)
            jobs = seed_uploads(engine, per_day, morning)
            clock["now"] = morning + timedelta(minutes=1)
            result = tick(sensor, instance, database, cursor)  # the uploads (and retention, when due)
            cursor = result.cursor or cursor
            largest = max(largest, len(instance.get_dynamic_partitions(media_partitions.name)))
            finish_jobs(engine, jobs, morning + timedelta(hours=2))
            clock["now"] = morning + timedelta(hours=12)
            while True:  # the evening: retention passes until a pass removes nothing
                held = len(instance.get_dynamic_partitions(media_partitions.name))
                started = time.perf_counter()
                result = tick(sensor, instance, database, cursor)
                last_tick = time.perf_counter() - started
                cursor = getattr(result, "cursor", None) or cursor
                if len(instance.get_dynamic_partitions(media_partitions.name)) == held:
                    break
            largest = max(largest, len(instance.get_dynamic_partitions(media_partitions.name)))
        held = len(instance.get_dynamic_partitions(media_partitions.name))
    database.engine().dispose()
    engine.dispose()
    return held, largest, last_tick


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--uploads", type=int, default=10_000, help="uploads pending for the timed tick")
    parser.add_argument("--days", type=int, default=365, help="days simulated for the partition count")
    parser.add_argument("--per-day", type=int, default=1_000, help="uploads a day in the simulation")
    parser.add_argument("--retention-days", type=int, default=Settings().media_partition_retention_days)
    parser.add_argument(
        "--dagster-postgres-url",
        help="time the tick on a PostgreSQL Dagster instance (production) instead of the embedded SQLite one",
    )
    args = parser.parse_args()
    logging.disable(logging.INFO)  # the sensor's per-tick log lines
    print(f"# args: {vars(args)}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="bench-media-sensor-") as tmp:
        seconds, runs, added = burst(Path(tmp) / "burst", args.uploads, args.dagster_postgres_url)
        report("media_sensor.tick_10k", seconds, "s", n=added)
        print(
            f"# {args.uploads} uploads: one tick {seconds:.2f} s, {runs} run requests, on a "
            f"{'PostgreSQL' if args.dagster_postgres_url else 'SQLite'} Dagster instance",
            file=sys.stderr,
        )
        started = time.perf_counter()
        held, largest, last_pass = year(args.days, args.per_day, args.retention_days, Path(tmp) / "year")
        report("media_sensor.partitions_after_year", held, "count", n=args.days, per_day=args.per_day)
        print(
            f"# {args.days} days x {args.per_day} uploads, {args.retention_days} days' retention: "
            f"{held} partitions at the end, at most {largest}; last evening tick {last_pass:.2f} s; "
            f"simulated in {time.perf_counter() - started:.0f} s",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
