"""The CMS sensors (sensors/cms.py) against a real operational DB: due publications and their job,
content changes read from the outbox by cursor, and the outbox relay (skipped when embedded, a run
that publishes to a real NATS JetStream otherwise)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime, timedelta

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.orm import Session

from assets.cms import CMS_GROUP
from domain import content
from domain.db import sync_engine
from domain.migrate import upgrade
from domain.schema import ContentItem, OutboxEvent
from orchestration import jobs
from resources.database import OperationalDatabase
from resources.event_bus import NatsEventBus, OutboxEventBus
from sensors.cms import (
    build_auth_housekeeping_schedule,
    build_content_changes_sensor,
    build_outbox_relay_sensor,
    build_scheduled_content_sensor,
    build_tus_cleanup_schedule,
)

scheduled_content_sensor = build_scheduled_content_sensor(jobs.publish_due_content_job)
outbox_relay_sensor = build_outbox_relay_sensor(jobs.outbox_relay_job)
# The content analytics job is built with the dbt models (`jobs.build_dbt_jobs`); a job of the same
# name over the content snapshot stands in for it.
content_changes_sensor = build_content_changes_sensor(
    dg.define_asset_job("content_analytics_job", selection=dg.AssetSelection.groups(CMS_GROUP))
)


def schedule_item(url: str, due_in: timedelta) -> uuid.UUID:
    """A scheduled item (created, updated, scheduled: three outbox events) due in `due_in`."""
    engine = sync_engine(url)
    now = datetime.now(UTC)
    with Session(engine) as session, session.begin():
        item = content.create_content(session, content.NewContent(type="article", title={"en": "Due soon"}))
        content.update_content(session, item.id, {"status": "in_review"}, expected_version=1)
        content.schedule(session, item.id, now + timedelta(seconds=30), now=now)
        item_id = item.id
    # Move publish_at to where the test wants it (in the past means due now).
    with Session(engine) as session, session.begin():
        session.execute(
            sa.update(ContentItem).where(ContentItem.id == item_id).values(publish_at=now + due_in)
        )
    engine.dispose()
    return item_id


def _status(url: str, item_id: uuid.UUID) -> str:
    engine = sync_engine(url)
    with engine.connect() as conn:
        status = conn.scalar(sa.select(ContentItem.status).where(ContentItem.id == item_id))
    engine.dispose()
    return status


def test_scheduled_content_sensor_and_job_publish_due_items(migrated_url: str) -> None:
    database = OperationalDatabase(url=migrated_url)
    later = schedule_item(migrated_url, timedelta(hours=1))
    with dg.build_sensor_context(resources={"database": database}) as context:
        result = scheduled_content_sensor(context)
    assert isinstance(result, dg.SkipReason)

    due = schedule_item(migrated_url, timedelta(seconds=-5))
    with dg.build_sensor_context(resources={"database": database}) as context:
        request = scheduled_content_sensor(context)
    assert isinstance(request, dg.RunRequest) and request.run_key.startswith("publish-")

    run = jobs.publish_due_content_job.execute_in_process(resources={"database": database})
    assert run.success
    assert _status(migrated_url, due) == "published"
    assert _status(migrated_url, later) == "scheduled"
    with dg.build_sensor_context(resources={"database": database}) as context:
        assert isinstance(scheduled_content_sensor(context), dg.SkipReason)


def test_content_changes_sensor_reads_the_outbox_by_cursor(migrated_url: str) -> None:
    database = OperationalDatabase(url=migrated_url)
    with dg.build_sensor_context(resources={"database": database}) as context:
        assert isinstance(content_changes_sensor(context), dg.SkipReason)
    schedule_item(migrated_url, timedelta(hours=1))  # created, updated, scheduled: three events
    with dg.build_sensor_context(resources={"database": database}, cursor="0") as context:
        request = content_changes_sensor(context)
        assert isinstance(request, dg.RunRequest) and request.tags["outbox_events"] == "3"
        cursor = context.cursor
    assert int(cursor) >= 3
    with dg.build_sensor_context(resources={"database": database}, cursor=cursor) as context:
        assert isinstance(content_changes_sensor(context), dg.SkipReason)


def test_outbox_relay_sensor_skips_in_embedded_mode(migrated_url: str) -> None:
    schedule_item(migrated_url, timedelta(hours=1))
    resources = {"database": OperationalDatabase(url=migrated_url), "event_bus": OutboxEventBus()}
    with dg.build_sensor_context(resources=resources) as context:
        result = outbox_relay_sensor(context)
    assert isinstance(result, dg.SkipReason) and "embedded" in result.skip_message


def test_outbox_relay_job_publishes_to_jetstream(postgres_url: str, nats_url: str) -> None:
    upgrade(postgres_url)
    schedule_item(postgres_url, timedelta(hours=1))
    database = OperationalDatabase(url=postgres_url)
    bus = NatsEventBus(
        url=nats_url, stream=f"T_{uuid.uuid4().hex[:8]}", subject_prefix=f"t{uuid.uuid4().hex[:8]}"
    )
    resources = {"database": database, "event_bus": bus}
    with dg.build_sensor_context(resources=resources) as context:
        request = outbox_relay_sensor(context)
    assert isinstance(request, dg.RunRequest)
    try:
        run = jobs.outbox_relay_job.execute_in_process(resources=resources)
        assert run.success
        assert run.output_for_node("relay_outbox") == 3
        with database.session() as session:
            assert session.scalar(sa.select(sa.func.count()).where(OutboxEvent.relayed_at.is_(None))) == 0
        with dg.build_sensor_context(resources=resources) as context:
            assert isinstance(outbox_relay_sensor(context), dg.SkipReason)
        assert asyncio.run(_stream_count(nats_url, bus.stream)) == 3
    finally:
        asyncio.run(_delete_stream(nats_url, bus.stream))


async def _stream_count(url: str, stream: str) -> int:
    import nats

    nc = await nats.connect(url)
    try:
        return (await nc.jetstream().stream_info(stream)).state.messages
    finally:
        await nc.close()


async def _delete_stream(url: str, stream: str) -> None:
    import nats

    nc = await nats.connect(url)
    try:
        with contextlib.suppress(Exception):  # already gone is fine
            await nc.jetstream().delete_stream(stream)
    finally:
        await nc.close()


def test_the_housekeeping_schedules_run_their_jobs_on_their_clock() -> None:
    auth = build_auth_housekeeping_schedule(jobs.auth_housekeeping_job)
    tus = build_tus_cleanup_schedule(jobs.tus_cleanup_job)
    assert (auth.job_name, auth.cron_schedule) == ("auth_housekeeping_job", "17 3 * * *")
    assert (tus.job_name, tus.cron_schedule) == ("tus_cleanup_job", "23 * * * *")
