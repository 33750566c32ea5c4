"""Sensors and the schedule of the notifications group: outbox events -> notifications, the delivery
drain when something is due, the hourly digest run, and queued broadcasts -> fan-out runs. Each is
built by a factory given the job it runs."""

import hashlib
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

import dagster as dg

from domain.notifications import broadcast, delivery, rules
from domain.schema import utcnow
from resources.database import OperationalDatabase

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

EVENTS_BATCH = 10_000  # outbox events per run at most
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def _in_flight(context: dg.SensorEvaluationContext, job_name: str) -> bool:
    if context.instance is None:
        return False
    runs = context.instance.get_run_records(
        filters=dg.RunsFilter(job_name=job_name, statuses=IN_FLIGHT), limit=1
    )
    return bool(runs)


def build_notification_events_sensor(job: "UnresolvedAssetJobDefinition") -> dg.SensorDefinition:
    @dg.sensor(
        name="notification_events_sensor",
        job=job,
        minimum_interval_seconds=15,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Reads the outbox by cursor for the event types the notification rules map "
            f"({', '.join(rules.EVENT_TYPES)}) and requests a run of `notification_events` for them."
        ),
    )
    def notification_events_sensor(
        context: dg.SensorEvaluationContext, database: dg.ResourceParam[OperationalDatabase]
    ):
        with database.session() as session:
            after = int(context.cursor) if context.cursor else rules.last_handled_seq(session)
            events = rules.pending_events(session, after=after, limit=EVENTS_BATCH)
        if not events:
            return dg.SkipReason(f"no notifying events after outbox seq {after}")
        last = events[-1].seq
        context.update_cursor(str(last))
        return dg.RunRequest(
            run_key=f"notify-upto-{last}",
            run_config={"ops": {"notification_events": {"config": {"after_seq": after, "upto_seq": last}}}},
            tags={"outbox_events": str(len(events)), "outbox_after": str(after)},
        )

    return notification_events_sensor


def deliveries_run_key(count: int, fingerprint: str, now: datetime) -> str:
    """Deterministic for one due set within an hour: a new due row, a retry coming due or an
    abandoned claim gives a new key, and so does the next hour should the set not change at all
    (runs that keep failing before touching a row)."""
    digest = hashlib.sha1(f"{count}|{fingerprint}".encode()).hexdigest()[:12]
    return f"deliver-{digest}-{now:%Y%m%d%H}"


def build_notification_deliveries_sensor(
    job: "UnresolvedAssetJobDefinition", clock: Callable[[], datetime] = utcnow
) -> dg.SensorDefinition:
    @dg.sensor(
        name="notification_deliveries_sensor",
        job=job,
        minimum_interval_seconds=15,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Every 15 s: runs the delivery drain when email/push/SMS/webhook deliveries are due.",
    )
    def notification_deliveries_sensor(
        context: dg.SensorEvaluationContext, database: dg.ResourceParam[OperationalDatabase]
    ):
        now = clock()
        with database.session() as session:
            count, fingerprint = delivery.due_fingerprint(session, now=now)
        if not count or fingerprint is None:
            return dg.SkipReason("no deliveries are due")
        if _in_flight(context, job.name):
            return dg.SkipReason(f"{count} deliveries are due; a drain run is already in progress")
        return dg.RunRequest(
            run_key=deliveries_run_key(count, fingerprint, now), tags={"due_deliveries": str(count)}
        )

    return notification_deliveries_sensor


def build_notification_broadcasts_sensor(
    job: dg.JobDefinition, clock: Callable[[], datetime] = utcnow
) -> dg.SensorDefinition:
    @dg.sensor(
        name="notification_broadcasts_sensor",
        job=job,
        minimum_interval_seconds=15,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Launches the fan-out of every queued broadcast whose scheduled time has come.",
    )
    def notification_broadcasts_sensor(
        context: dg.SensorEvaluationContext, database: dg.ResourceParam[OperationalDatabase]
    ):
        now = clock()
        with database.session() as session:
            due = [(str(b.id), b.name) for b in broadcast.due(session, now=now)]
        if not due:
            return dg.SkipReason("no queued broadcast is due")
        # One run per broadcast, ever: its id is the run key (a resumed fan-out is a re-execution).
        return [
            dg.RunRequest(
                run_key=f"broadcast-{broadcast_id}",
                run_config={"ops": {"fan_out_broadcast": {"config": {"broadcast_id": broadcast_id}}}},
                tags={"broadcast_id": broadcast_id, "broadcast_name": name[:60]},
            )
            for broadcast_id, name in due
        ]

    return notification_broadcasts_sensor


def build_notification_digest_schedule(job: "UnresolvedAssetJobDefinition") -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name="notification_digest_schedule",
        job=job,
        cron_schedule="0 * * * *",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Hourly at minute 0: runs the delivery drain, so hourly/daily/weekly digests go out "
        "at their boundary even when nothing else is due.",
    )
