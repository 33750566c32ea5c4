"""Evaluate the analytics alert rules every 30 s against the live minute counters.

The sensor launches no run: `domain.analytics.alerts.evaluate_rules` writes the alerts and records
`alert.fired` / `alert.escalated` / `alert.resolved` in the outbox in one transaction, and the
notification events sensor turns those into notifications. Once an hour (the cursor holds the last
prune time) it also deletes live and route minutes past their 8 days.
"""

from collections.abc import Callable
from datetime import datetime, timedelta

import dagster as dg

from domain.analytics import alerts
from domain.schema import utcnow
from resources.database import OperationalDatabase

PRUNE_EVERY = timedelta(hours=1)


def _due_for_prune(cursor: str | None, now: datetime) -> bool:
    if not cursor:
        return True
    try:
        return now - datetime.fromisoformat(cursor) >= PRUNE_EVERY
    except (ValueError, TypeError):
        return True


def describe(transitions: list[alerts.Transition]) -> str:
    """`fired Views high (120); resolved Errors (0.5)`: one entry per transition, in order."""
    return "; ".join(f"{t.kind} {t.name or t.rule_id} ({t.value:g})" for t in transitions)


def build_analytics_alerts_sensor(clock: Callable[[], datetime] = utcnow) -> dg.SensorDefinition:
    @dg.sensor(
        name="analytics_alerts_sensor",
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Every 30 s: evaluates the active alert rules over the last complete minutes and "
        "records fired/escalated/resolved alerts in the outbox (notified by the notification sensors); "
        "prunes live minutes older than 8 days hourly. Launches no run.",
    )
    def analytics_alerts_sensor(
        context: dg.SensorEvaluationContext, database: dg.ResourceParam[OperationalDatabase]
    ):
        now = clock()
        with database.session() as session:
            transitions = alerts.evaluate_rules(session, now)
        pruned = None
        if _due_for_prune(context.cursor, now):
            with database.session() as session:
                pruned = alerts.prune_live_minutes(session, now)
            context.update_cursor(now.isoformat())
        message = describe(transitions) if transitions else "no alert changed"
        if pruned is not None:
            message += f"; pruned {pruned} live/route minutes"
        return dg.SkipReason(message)

    return analytics_alerts_sensor
