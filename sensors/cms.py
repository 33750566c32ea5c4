"""Sensors and schedules that turn operational-DB state and clocks into runs: due publications, outbox
relay, content changes, auth housekeeping and expired-upload cleanup. Each is built by a factory
given the job it runs."""

import hashlib
from typing import TYPE_CHECKING

import dagster as dg
import sqlalchemy as sa

from domain import content, outbox
from domain.schema import OutboxEvent, utcnow
from resources.database import OperationalDatabase
from resources.event_bus import EventBus

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition


def build_scheduled_content_sensor(job: dg.JobDefinition) -> dg.SensorDefinition:
    @dg.sensor(
        job=job,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Publishes scheduled content whose publish_at has passed (checks every 30 s).",
    )
    def scheduled_content_sensor(
        context: dg.SensorEvaluationContext, database: dg.ResourceParam[OperationalDatabase]
    ):
        with database.session() as session:
            due = content.due_for_publication(session, utcnow())
        if not due:
            return dg.SkipReason("no scheduled content is due")
        digest = hashlib.sha1(",".join(sorted(map(str, due))).encode()).hexdigest()[:16]
        return dg.RunRequest(run_key=f"publish-{digest}", tags={"due_items": str(len(due))})

    return scheduled_content_sensor


def build_outbox_relay_sensor(job: dg.JobDefinition) -> dg.SensorDefinition:
    @dg.sensor(
        job=job,
        minimum_interval_seconds=15,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Relays new outbox events to NATS JetStream when the deployment has a relaying bus.",
    )
    def outbox_relay_sensor(
        context: dg.SensorEvaluationContext,
        database: dg.ResourceParam[OperationalDatabase],
        event_bus: dg.ResourceParam[EventBus],
    ):
        if not event_bus.relays:
            return dg.SkipReason("embedded deployment: the outbox table is the event bus, nothing to relay")
        with database.session() as session:
            newest = session.scalar(
                sa.select(sa.func.max(OutboxEvent.seq)).where(OutboxEvent.relayed_at.is_(None))
            )
        if newest is None:
            return dg.SkipReason("every outbox event has been relayed")
        # A new run key only when newer events arrived; a failed relay is retried by the next new
        # event or by hand, and re-publishing is harmless (JetStream drops duplicates by message id).
        return dg.RunRequest(run_key=f"relay-upto-{newest}")

    return outbox_relay_sensor


def build_content_changes_sensor(job: "UnresolvedAssetJobDefinition") -> dg.SensorDefinition:
    @dg.sensor(
        job=job,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Reads content events from the outbox by cursor and refreshes the warehouse snapshot "
        "and dbt models.",
    )
    def content_changes_sensor(
        context: dg.SensorEvaluationContext, database: dg.ResourceParam[OperationalDatabase]
    ):
        after = int(context.cursor or 0)
        with database.session() as session:
            events = outbox.events_after(session, after, limit=10_000, types=content.EVENT_TYPES)
        if not events:
            return dg.SkipReason(f"no content events after outbox seq {after}")
        last = events[-1].seq
        context.update_cursor(str(last))
        return dg.RunRequest(run_key=f"content-upto-{last}", tags={"outbox_events": str(len(events))})

    return content_changes_sensor


def build_auth_housekeeping_schedule(job: dg.JobDefinition) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name="auth_housekeeping_schedule",
        job=job,
        cron_schedule="17 3 * * *",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Daily at 03:17 UTC: deletes sessions that ended 30+ days ago and expired link tokens.",
    )


def build_tus_cleanup_schedule(job: dg.JobDefinition) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name="tus_cleanup_schedule",
        job=job,
        cron_schedule="23 * * * *",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Hourly: deletes resumable uploads that expired (24 h) before completing, and their "
        "bytes.",
    )
