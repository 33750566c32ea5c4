"""POST /api/v1/media/transcode and /analyze: a job and its outbox event in one transaction, 202 with
the status URL, and the refusals (unknown media 404, unknown format 422, refused original 409)."""

from __future__ import annotations

import uuid

import dagster as dg
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from domain.db import sync_engine
from domain.ids import new_id
from domain.media import processing
from domain.media.jobs import JOB_TAG
from domain.schema import MediaAsset, MediaJob, OutboxEvent
from domain.settings import Settings
from orchestration.jobs import media_job
from resources.database import OperationalDatabase
from sensors.media import build_media_uploads_sensor
from tests.conftest import record_test_upload

API = "/api/v1/media"


def recorded(url: str, kind: str = "video") -> str:
    """An accepted upload straight in the DB (the upload routes have their own tests)."""
    engine = sync_engine(url)
    media_id = new_id()
    with Session(engine) as session, session.begin():
        record_test_upload(session, media_id=media_id, kind=kind)
    engine.dispose()
    return str(media_id)


def jobs_and_events(url: str, media_id: str) -> tuple[list[MediaJob], list[OutboxEvent]]:
    engine = sync_engine(url)
    with Session(engine) as session:
        jobs = list(
            session.scalars(
                sa.select(MediaJob)
                .where(MediaJob.media_asset_id == uuid.UUID(media_id))
                .order_by(MediaJob.created_at)
            )
        )
        events = list(
            session.scalars(
                sa.select(OutboxEvent).where(OutboxEvent.aggregate_id == media_id).order_by(OutboxEvent.seq)
            )
        )
    engine.dispose()
    return jobs, events


async def test_transcode_creates_a_job_and_its_event_and_answers_202(client, migrated_url) -> None:
    media_id = recorded(migrated_url)
    res = await client.post(
        f"{API}/transcode", json={"media_id": media_id, "formats": ["hls", "thumbnails", "hls"]}
    )
    assert res.status_code == 202, res.text
    body = res.json()
    assert body["kind"] == "transcode" and body["status"] == "pending" and body["media_id"] == media_id
    assert body["requested"] == {"formats": ["hls", "thumbnails"]}
    assert body["status_url"] == f"{API}/job/{body['job_id']}/status"
    status = (await client.get(body["status_url"])).json()
    assert (status["kind"], status["status"], status["stage"]) == ("transcode", "pending", "queued")

    jobs, events = jobs_and_events(migrated_url, media_id)
    assert [(j.kind, j.requested) for j in jobs] == [
        ("process", {}),
        ("transcode", {"formats": ["hls", "thumbnails"]}),
    ]
    assert [e.event_type for e in events] == ["media.uploaded", "media.transcode_requested"]
    assert events[1].payload["job_id"] == body["job_id"] and events[1].payload["formats"] == [
        "hls",
        "thumbnails",
    ]


async def test_transcode_without_formats_asks_for_all_of_them(client, migrated_url) -> None:
    media_id = recorded(migrated_url, kind="audio")
    res = await client.post(f"{API}/transcode", json={"media_id": media_id})
    assert res.status_code == 202, res.text
    assert res.json()["requested"] == {"formats": list(processing.FORMATS)}


@pytest.mark.parametrize(
    ("formats", "detail"),
    [(["hls", "webm"], "unknown formats 'webm'"), ([], "name at least one")],
)
async def test_unknown_or_no_formats_are_422_and_write_nothing(client, migrated_url, formats, detail) -> None:
    media_id = recorded(migrated_url)
    res = await client.post(f"{API}/transcode", json={"media_id": media_id, "formats": formats})
    assert res.status_code == 422, res.text
    assert res.headers["content-type"].startswith("application/problem+json")
    problem = res.json()
    assert detail in problem["detail"] and problem["errors"][0]["field"] == "formats"
    jobs, events = jobs_and_events(migrated_url, media_id)
    assert len(jobs) == 1 and len(events) == 1  # the upload's own


async def test_unknown_media_is_404_and_a_malformed_body_400(client) -> None:
    missing = await client.post(f"{API}/transcode", json={"media_id": str(uuid.uuid4())})
    assert missing.status_code == 404 and missing.headers["content-type"].startswith(
        "application/problem+json"
    )
    assert (await client.post(f"{API}/analyze", json={"media_id": str(uuid.uuid4())})).status_code == 404
    assert (await client.post(f"{API}/transcode", json={"media_id": "not-a-uuid"})).status_code == 400
    assert (await client.post(f"{API}/transcode", json={"formats": ["hls"]})).status_code == 400


async def test_a_media_whose_original_failed_validation_is_409(client, migrated_url) -> None:
    media_id = recorded(migrated_url)
    engine = sync_engine(migrated_url)
    with Session(engine) as session, session.begin():  # what media_metadata leaves behind
        session.get(MediaAsset, uuid.UUID(media_id)).upload_status = "failed"
        job = session.scalar(sa.select(MediaJob).where(MediaJob.media_asset_id == uuid.UUID(media_id)))
        job.status, job.stage, job.error = "failed", "metadata", "ffprobe cannot read this file"
    engine.dispose()
    for path in ("transcode", "analyze"):
        res = await client.post(f"{API}/{path}", json={"media_id": media_id})
        assert res.status_code == 409, res.text
        assert "failed validation" in res.json()["detail"]


async def test_a_failed_transcode_can_be_retried(client, migrated_url) -> None:
    media_id = recorded(migrated_url)
    engine = sync_engine(migrated_url)
    with Session(engine) as session, session.begin():  # the renditions failed, the original is fine
        session.get(MediaAsset, uuid.UUID(media_id)).upload_status = "failed"
        job = session.scalar(sa.select(MediaJob).where(MediaJob.media_asset_id == uuid.UUID(media_id)))
        job.status, job.stage = "failed", "renditions"
    engine.dispose()
    res = await client.post(f"{API}/transcode", json={"media_id": media_id})
    assert res.status_code == 202, res.text
    body = res.json()
    status = (await client.get(body["status_url"])).json()
    assert (status["kind"], status["status"], status["stage"]) == ("transcode", "pending", "queued")

    # A new job and its event, for the media sensor to start a run; the failed job stays as it was.
    jobs, events = jobs_and_events(migrated_url, media_id)
    assert [(j.kind, j.status, j.stage) for j in jobs] == [
        ("process", "failed", "renditions"),
        ("transcode", "pending", "queued"),
    ]
    assert str(jobs[1].id) == body["job_id"] and jobs[1].requested == {"formats": list(processing.FORMATS)}
    assert [e.event_type for e in events] == ["media.uploaded", "media.transcode_requested"]
    assert events[1].payload["job_id"] == body["job_id"]
    # The media sensor turns it into a run of the renditions for that job.
    with (
        dg.DagsterInstance.ephemeral() as instance,
        dg.build_sensor_context(
            instance=instance,
            resources={"database": OperationalDatabase(url=migrated_url)},
            definitions=dg.Definitions(),
        ) as context,
    ):
        result = build_media_uploads_sensor(media_job, Settings().media_partition_retention_days)(context)
    retried = [r for r in result.run_requests if r.run_key == f"transcode-{body['job_id']}"]
    assert [(r.partition_key, r.tags[JOB_TAG]) for r in retried] == [(media_id, body["job_id"])]


async def test_analyze_creates_a_job_and_refuses_what_cannot_be_analyzed(client, migrated_url) -> None:
    media_id = recorded(migrated_url)
    res = await client.post(f"{API}/analyze", json={"media_id": media_id, "analyses": ["moderation"]})
    assert res.status_code == 202, res.text
    assert res.json()["kind"] == "analyze" and res.json()["requested"] == {"analyses": ["moderation"]}
    jobs, events = jobs_and_events(migrated_url, media_id)
    assert [j.kind for j in jobs] == ["process", "analyze"]
    assert events[-1].event_type == "media.analyze_requested" and events[-1].payload["analyses"] == [
        "moderation"
    ]

    unknown = await client.post(f"{API}/analyze", json={"media_id": media_id, "analyses": ["faces"]})
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "analyses"
    picture = recorded(migrated_url, kind="image")
    silent = await client.post(f"{API}/analyze", json={"media_id": picture, "analyses": ["transcription"]})
    assert silent.status_code == 422 and "no speech" in silent.json()["detail"]
    assert (
        await client.post(f"{API}/analyze", json={"media_id": picture, "analyses": ["moderation"]})
    ).status_code == 202


async def test_analyze_without_analysis_assets_shows_the_reason_at_the_status_url(
    client, migrated_url
) -> None:
    media_id = recorded(migrated_url)
    accepted = (await client.post(f"{API}/analyze", json={"media_id": media_id})).json()
    sensor = build_media_uploads_sensor(media_job, Settings().media_partition_retention_days)
    with (
        dg.DagsterInstance.ephemeral() as instance,
        dg.build_sensor_context(
            instance=instance,
            resources={"database": OperationalDatabase(url=migrated_url)},
            definitions=dg.Definitions(),
        ) as context,
    ):
        sensor(context)
    status = (await client.get(accepted["status_url"])).json()
    assert status["status"] == "failed" and status["error"] == processing.NO_ANALYSIS_ASSETS
    assert "transcription and moderation come with their own issue" in status["error"]


async def test_reprocessing_needs_the_upload_permission(anonymous, token_for, migrated_url) -> None:
    media_id = recorded(migrated_url)
    viewer = {"Authorization": f"Bearer {token_for('viewer')}"}
    for path in ("transcode", "analyze"):
        assert (await anonymous.post(f"{API}/{path}", json={"media_id": media_id})).status_code == 401
        res = await anonymous.post(f"{API}/{path}", json={"media_id": media_id}, headers=viewer)
        assert res.status_code == 403
    jobs, _ = jobs_and_events(migrated_url, media_id)
    assert len(jobs) == 1


async def test_the_routes_are_in_the_openapi_document(client) -> None:
    spec = (await client.get("/api/docs/openapi.json")).json()
    for path, operation_id in ((f"{API}/transcode", "transcodeMedia"), (f"{API}/analyze", "analyzeMedia")):
        post = spec["paths"][path]["post"]
        assert post["operationId"] == operation_id and post["summary"] and post["tags"] == ["media"]
        assert "202" in post["responses"]
