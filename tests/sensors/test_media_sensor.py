"""The media sensor against a real operational DB and a real Dagster instance: bursts of uploads,
run keys and job tags, re-processing requests, and the bounded partition set (retention)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from assets.media import media_metadata, media_partitions, media_thumbnails
from domain.db import sync_engine
from domain.errors import Conflict
from domain.ids import new_id
from domain.media import processing
from domain.media.jobs import JOB_TAG
from domain.outbox import record_event
from domain.schema import MediaAsset, MediaJob, OutboxEvent
from domain.settings import Settings
from orchestration.jobs import media_job
from resources.database import OperationalDatabase
from resources.object_store import LocalObjectStore
from sensors.media import (
    MEDIA_ANALYSIS_GROUP,
    RENDITIONS,
    THUMBNAILS,
    build_media_uploads_sensor,
)
from tests.conftest import record_test_upload

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RETENTION_DAYS = Settings().media_partition_retention_days


@pytest.fixture
def database(migrated_url: str) -> OperationalDatabase:
    return OperationalDatabase(url=migrated_url)


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def upload(database: OperationalDatabase, kind: str = "video") -> tuple[str, str]:
    """A recorded upload (asset, first job, `media.uploaded`): (media id, job id)."""
    media_id = new_id()
    with database.session() as session:
        _, job = record_test_upload(session, media_id=media_id, kind=kind)
        return str(media_id), str(job.id)


def finish(database: OperationalDatabase, job_id: str, at: datetime, status: str = "completed") -> None:
    with database.session() as session:
        job = session.get(MediaJob, uuid.UUID(job_id))
        job.status, job.finished_at = status, at


class Ticker:
    """Evaluates the sensor tick after tick, carrying the cursor as the daemon does."""

    def __init__(self, sensor, instance, database, definitions: dg.Definitions | None = None) -> None:
        self.sensor, self.instance, self.database, self.definitions = sensor, instance, database, definitions
        self.cursor: str | None = None

    def __call__(self):
        with dg.build_sensor_context(
            instance=self.instance,
            resources={"database": self.database},
            cursor=self.cursor,
            definitions=self.definitions,
        ) as context:
            result = self.sensor(context)
        if isinstance(result, dg.SensorResult):
            assert not result.dynamic_partitions_requests  # the sensor changes the set itself
            self.cursor = result.cursor or self.cursor
        return result


def partitions(instance: dg.DagsterInstance) -> set[str]:
    return set(instance.get_dynamic_partitions(media_partitions.name))


def media_definitions(database: OperationalDatabase, tmp_path, extra: list) -> dg.Definitions:
    """The media assets (plus `extra`) as the sensor's own definitions see them."""
    store = LocalObjectStore(root=str(tmp_path / "objects"))
    return dg.Definitions(
        assets=[media_metadata, media_thumbnails, *extra],
        resources={"database": database, "object_store": store},
    )


@pytest.fixture
def ticker(instance, database) -> Callable[..., Ticker]:
    def make(clock: Clock | None = None, **options) -> Ticker:
        definitions = options.pop("definitions", None)
        options.setdefault("retention_days", RETENTION_DAYS)
        sensor = build_media_uploads_sensor(media_job, clock=clock or Clock(T0), **options)
        return Ticker(sensor, instance, database, definitions)

    return make


def test_uploads_become_partitions_and_runs_named_and_tagged_by_their_job(instance, database, ticker) -> None:
    uploads = [upload(database) for _ in range(3)]
    tick = ticker()
    result = tick()
    assert partitions(instance) == {m for m, _ in uploads}
    assert [(r.partition_key, r.run_key, r.tags[JOB_TAG]) for r in result.run_requests] == [
        (m, f"media-{m}", j) for m, j in uploads
    ]
    assert all(r.asset_selection is None for r in result.run_requests)  # the whole media job
    assert isinstance(tick(), dg.SkipReason)


def test_a_burst_without_job_ids_in_the_events_finds_each_job_in_one_query(database, ticker) -> None:
    engine = sync_engine(database.url)
    expected, jobs = {}, []
    with Session(engine) as session, session.begin():
        for _ in range(3000):  # events of another producer: media rows and jobs, no job id in the payload
            media_id, job_id = new_id(), new_id()
            expected[str(media_id)] = str(job_id)
            record_event(session, "media.uploaded", "media", media_id, {"id": str(media_id)})
            jobs.append(
                {
                    "id": job_id,
                    "media_asset_id": media_id,
                    "kind": "process",
                    "status": "pending",
                    "stage": "queued",
                    "percent": 0.0,
                    "requested": {},
                    "created_at": T0,
                    "updated_at": T0,
                }
            )
        session.execute(
            sa.insert(MediaAsset),
            [
                {
                    "id": j["media_asset_id"],
                    "content_type": "video",
                    "file_size": 1,
                    "s3_key": "k",
                    "created_at": T0,
                    "updated_at": T0,
                }
                for j in jobs
            ],
        )
        session.execute(sa.insert(MediaJob), jobs)
    engine.dispose()
    statements: list[str] = []
    sa.event.listen(database.engine(), "before_cursor_execute", lambda *args: statements.append(args[2]))
    result = ticker()()
    assert len(result.run_requests) == 3000
    assert {r.partition_key: r.tags[JOB_TAG] for r in result.run_requests} == expected
    assert sum("FROM media_jobs" in s for s in statements) <= 2  # retention pass + the one lookup


def test_retention_removes_media_whose_latest_job_finished_long_ago(instance, database, ticker) -> None:
    clock = Clock(T0)
    tick = ticker(clock, retention_days=30)
    old, recent, failed, running, again = (upload(database) for _ in range(5))
    tick()
    assert len(partitions(instance)) == 5
    finish(database, old[1], T0 + timedelta(days=1))
    finish(database, recent[1], T0 + timedelta(days=20))
    finish(database, failed[1], T0 + timedelta(days=2), status="failed")
    finish(database, again[1], T0 + timedelta(days=1))
    with database.session() as session:  # started long ago, never finished: still live
        session.get(MediaJob, uuid.UUID(running[1])).status = "processing"
        # processed long ago, but a transcode waits: its latest job counts
        processing.request_transcode(session, uuid.UUID(again[0]))
    tick()  # reads the transcode request

    clock.now = T0 + timedelta(days=33)
    result = tick()
    assert "removed 2 media partition(s)" in result.skip_reason.skip_message
    assert partitions(instance) == {recent[0], running[0], again[0]}
    assert isinstance(tick(), dg.SkipReason)  # the next pass is an hour away

    clock.now = T0 + timedelta(days=51)
    tick()
    assert partitions(instance) == {running[0], again[0]}
    with database.session() as session:  # the history stays in the operational DB
        assert session.scalar(sa.select(sa.func.count()).select_from(MediaJob)) == 6


def test_retention_works_in_bounded_batches(instance, database, ticker) -> None:
    clock = Clock(T0)
    tick = ticker(clock, retention_days=1, retention_batch=2)
    uploads = [upload(database) for _ in range(5)]
    tick()
    for n, (_, job_id) in enumerate(uploads):
        finish(database, job_id, T0 + timedelta(minutes=n))
    clock.now = T0 + timedelta(days=2)
    left = []
    for _ in range(3):  # a full batch makes the next tick look again at once, in order of finishing
        tick()
        left.append(partitions(instance))
    ids = [m for m, _ in uploads]
    assert left == [set(ids[2:]), set(ids[4:]), set()]
    assert isinstance(tick(), dg.SkipReason)


def test_transcode_re_adds_a_removed_partition_and_runs_only_the_renditions(
    instance, database, ticker
) -> None:
    clock = Clock(T0)
    tick = ticker(clock, retention_days=30)
    media_id, first_job = upload(database)
    tick()
    finish(database, first_job, T0)
    clock.now = T0 + timedelta(days=31)
    tick()
    assert media_id not in partitions(instance)

    with database.session() as session:
        job_id = str(processing.request_transcode(session, uuid.UUID(media_id), ["hls", "thumbnails"]).id)
    result = tick()
    assert media_id in partitions(instance)
    assert [
        (r.partition_key, r.run_key, r.tags[JOB_TAG], r.asset_selection) for r in result.run_requests
    ] == [(media_id, f"transcode-{job_id}", job_id, [RENDITIONS, THUMBNAILS])]
    # One unfinished transcode per media: a second waits for this one.
    with pytest.raises(Conflict), database.session() as session:
        processing.request_transcode(session, uuid.UUID(media_id), ["mp4"])

    # A pending job keeps the partition through later retention passes; once the media's jobs finish,
    # it leaves again `retention_days` after that.
    clock.now += timedelta(days=40)
    tick()
    assert media_id in partitions(instance)
    finish(database, job_id, clock.now)
    with database.session() as session:
        mp4_job = str(processing.request_transcode(session, uuid.UUID(media_id), ["mp4"]).id)
    result = tick()
    assert [(r.run_key, r.tags[JOB_TAG], r.asset_selection) for r in result.run_requests] == [
        (f"transcode-{mp4_job}", mp4_job, [RENDITIONS])
    ]
    finish(database, mp4_job, clock.now)
    clock.now += timedelta(days=29)
    tick()
    assert media_id in partitions(instance)
    clock.now += timedelta(days=2)
    tick()
    assert media_id not in partitions(instance)


def test_a_media_expiring_and_re_requested_in_the_same_tick_keeps_its_partition(
    instance, database, ticker
) -> None:
    clock = Clock(T0)
    tick = ticker(clock, retention_days=30)
    media_id, first_job = upload(database)
    tick()
    finish(database, first_job, T0)
    # As if the retention pass read the DB before the transcode was committed and the outbox after
    # (the transcode job is back-dated so that the finished first job still counts as the latest).
    with database.session() as session:
        processing.request_transcode(session, uuid.UUID(media_id))
        session.flush()
        session.execute(
            sa.update(MediaJob).where(MediaJob.kind == "transcode").values(created_at=T0 - timedelta(days=1))
        )
    clock.now = T0 + timedelta(days=31)
    [request] = tick().run_requests
    assert request.run_key.startswith("transcode-") and media_id in partitions(instance)


def test_analyze_fails_its_job_honestly_when_no_analysis_assets_are_installed(
    instance, database, ticker, tmp_path
) -> None:
    media_id, _ = upload(database)
    with database.session() as session:
        job_id = str(processing.request_analysis(session, uuid.UUID(media_id)).id)
    definitions = media_definitions(database, tmp_path, [])
    tick = ticker(definitions=definitions)
    result = tick()
    assert [r.run_key for r in result.run_requests] == [f"media-{media_id}"]  # the upload only
    with database.session() as session:
        job = session.get(MediaJob, uuid.UUID(job_id))
        assert (job.status, job.error) == ("failed", processing.NO_ANALYSIS_ASSETS)
        assert job.finished_at is not None
        [event] = session.scalars(sa.select(OutboxEvent).where(OutboxEvent.event_type == "media.failed"))
        assert event.payload["job_id"] == job_id and event.payload["reason"] == processing.NO_ANALYSIS_ASSETS
    assert isinstance(tick(), dg.SkipReason)


@dg.asset(partitions_def=media_partitions, group_name=MEDIA_ANALYSIS_GROUP)
def media_transcript_probe() -> None:
    """Stands in for the transcription asset of a later issue."""


def test_analyze_requests_the_analysis_assets_when_they_exist(instance, database, ticker, tmp_path) -> None:
    media_id, _ = upload(database)
    tick = ticker()
    tick()
    with database.session() as session:
        job_id = str(processing.request_analysis(session, uuid.UUID(media_id), ["moderation"]).id)
    definitions = media_definitions(database, tmp_path, [media_transcript_probe])
    tick.definitions = definitions
    [request] = tick().run_requests
    assert (request.partition_key, request.run_key, request.tags[JOB_TAG]) == (
        media_id,
        f"analyze-{job_id}",
        job_id,
    )
    assert request.asset_selection == [dg.AssetKey("media_transcript_probe")]
    with database.session() as session:
        assert session.get(MediaJob, uuid.UUID(job_id)).status == "pending"


def test_the_first_cursor_format_is_read_as_an_outbox_seq(instance, database) -> None:
    upload(database)
    media_id, _ = upload(database)
    with database.session() as session:
        first_seq = session.scalar(sa.select(sa.func.min(OutboxEvent.seq)))
    sensor = build_media_uploads_sensor(media_job, RETENTION_DAYS, clock=Clock(T0))
    with dg.build_sensor_context(
        instance=instance, resources={"database": database}, cursor=str(first_seq)
    ) as context:
        result = sensor(context)
    assert [r.partition_key for r in result.run_requests] == [media_id]


def test_the_daemon_s_evaluation_resolves_every_run_against_the_media_job(database, tmp_path) -> None:
    """`evaluate_tick` with an instance reference is what the code server runs for the daemon: each
    run request is checked against the job's partitions and gets its partition tags."""
    uploads = [upload(database) for _ in range(50)]
    sensor = build_media_uploads_sensor(media_job, RETENTION_DAYS, clock=Clock(T0))
    store = LocalObjectStore(root=str(tmp_path / "objects"))
    defs = dg.Definitions(
        assets=[media_metadata, media_thumbnails],
        jobs=[media_job],
        sensors=[sensor],
        resources={"database": database, "object_store": store},
    )
    with (
        dg.instance_for_test() as instance,
        dg.build_sensor_context(
            instance=instance, instance_ref=instance.get_ref(), definitions=defs, resources=defs.resources
        ) as context,
    ):
        data = defs.get_repository_def().get_sensor_def(sensor.name).evaluate_tick(context)
        assert partitions(instance) == {m for m, _ in uploads}
    assert [(r.tags["dagster/partition"], r.tags[JOB_TAG]) for r in data.run_requests] == uploads


def test_sensor_adds_partitions_and_requests_one_run_per_upload(instance, database) -> None:
    ids = [upload(database)[0] for _ in range(3)]
    sensor = build_media_uploads_sensor(media_job, RETENTION_DAYS)
    with dg.build_sensor_context(instance=instance, resources={"database": database}) as context:
        result = sensor(context)
    assert [r.partition_key for r in result.run_requests] == ids
    assert [r.run_key for r in result.run_requests] == [f"media-{i}" for i in ids]
    assert instance.get_dynamic_partitions(media_partitions.name) == ids  # added in bulk by the tick
    with dg.build_sensor_context(
        instance=instance, resources={"database": database}, cursor=result.cursor
    ) as context:
        assert isinstance(sensor(context), dg.SkipReason)


def test_a_burst_of_uploads_is_one_tick(instance, database) -> None:
    engine = sync_engine(database.url)
    with Session(engine) as session, session.begin():
        for _ in range(2000):
            media_id = new_id()
            record_event(session, "media.uploaded", "media", media_id, {"id": str(media_id)})
    engine.dispose()
    sensor = build_media_uploads_sensor(media_job, RETENTION_DAYS)
    with dg.build_sensor_context(instance=instance, resources={"database": database}) as context:
        result = sensor(context)
    assert len(result.run_requests) == 2000
    assert len(instance.get_dynamic_partitions(media_partitions.name)) == 2000
