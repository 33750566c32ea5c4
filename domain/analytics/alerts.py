"""Alert rules on the live metrics: what can be watched, how a rule is evaluated, and the lifecycle of
the alerts it raises (fired -> repeated -> escalated once -> resolved), announced through the outbox.

Metrics are read from the per-minute counters the API processes keep (`LiveMinute` for tracked
events, `RouteMinute` for HTTP traffic), over minutes in `[start, end)`.

Window alignment: an evaluation at `now` reads the last `window_minutes` *complete* minutes, the
window ending at the minute boundary of `now` (the running minute is still being added to and would
read low). A breach in minute M is therefore seen from M+1:00 on; the sensor ticks every 30 s, so it
is announced within a minute of the minute that showed it. The API processes flush their counters
every few seconds, so an evaluation in the first seconds of a minute may miss the last seconds of the
minute before; rules on a window of a few minutes barely notice.

Baselines: `absolute` compares the value itself; `percent_change` compares the change in percent
against the window just before; `same_hour_last_week` against the same window 7 days earlier. A zero
or missing baseline (or a value that cannot be computed, such as an error rate without requests) makes
the rule not evaluable this time: its state is left as it is and nothing is announced.

Idempotency: at most one transition per rule per minute. A rule whose latest alert was last evaluated
at or after the current window's end (the minute boundary of `now`) is skipped, so evaluating twice in
one minute never counts a breach twice, and an alert that resolved cannot re-fire in the same minute.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from domain import outbox
from domain.analytics.event_types import ALERT_ESCALATED, ALERT_FIRED, ALERT_RESOLVED
from domain.analytics.events import EVENT_TYPES
from domain.analytics.health import add_buckets, percentile
from domain.auth.rbac import users_with_roles
from domain.ids import new_id
from domain.schema import ALERT_COMPARISONS, ALERT_KINDS, Alert, AlertRule, LiveMinute, RouteMinute

MAX_WINDOW_MINUTES = 1440
LAST_WEEK = timedelta(days=7)
KEEP_MINUTES = timedelta(days=8)  # a week for `same_hour_last_week`, plus its longest window
ESCALATION_ROLE = "admin"

METRICS: dict[str, str] = {
    **{f"events.{name}": f"tracked `{name}` events (count)" for name in EVENT_TYPES},
    "http.requests": "API requests (count)",
    "http.error_rate": "API requests answered with a 5xx, in percent of requests",
    "http.client_error_rate": "API requests answered with a 4xx, in percent of requests",
    "http.p95_ms": "95th percentile of API latency (ms), from the summed latency histograms",
}
PERCENT_METRICS = ("http.error_rate", "http.client_error_rate")


@dataclass(frozen=True)
class Transition:
    """What one evaluation changed for one rule. `kind`: fired | repeated | escalated | resolved."""

    rule_id: uuid.UUID
    alert_id: uuid.UUID
    kind: str
    value: float
    baseline: float | None
    name: str = ""


# --- rules -------------------------------------------------------------------------------------------


def validate_rule(
    metric: Any, kind: Any, comparison: Any, threshold: Any, window_minutes: Any
) -> list[tuple[str, str]]:
    """The problems of a rule definition as (field, message), empty when it is valid."""
    errors: list[tuple[str, str]] = []
    if metric not in METRICS:
        errors.append(("metric", f"unknown metric {metric!r}; one of: {', '.join(METRICS)}"))
    if kind not in ALERT_KINDS:
        errors.append(("kind", f"must be one of: {', '.join(ALERT_KINDS)}"))
    if comparison not in ALERT_COMPARISONS:
        errors.append(("comparison", f"must be one of: {', '.join(ALERT_COMPARISONS)}"))
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not math.isfinite(threshold):
        errors.append(("threshold", "must be a finite number"))
    elif kind == "absolute" and metric in PERCENT_METRICS and not 0 <= threshold <= 100:
        errors.append(("threshold", f"{metric} is a percentage: the threshold must be between 0 and 100"))
    if isinstance(window_minutes, bool) or not isinstance(window_minutes, int):
        errors.append(("window_minutes", "must be a whole number of minutes"))
    elif not 1 <= window_minutes <= MAX_WINDOW_MINUTES:
        errors.append(("window_minutes", f"must be between 1 and {MAX_WINDOW_MINUTES}"))
    return errors


# --- metrics -----------------------------------------------------------------------------------------


def minute_floor(at: datetime) -> datetime:
    """`at` (timezone-aware) truncated to its UTC minute."""
    return at.astimezone(UTC).replace(second=0, microsecond=0)


def metric_value(session: Session, metric: str, start: datetime, end: datetime) -> float | None:
    """The metric over the minutes in `[start, end)`: counts are 0 without rows; rates and latency
    are None without requests. Raises ValueError for an unknown metric."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}")
    if metric.startswith("events."):
        total = session.scalar(
            sa.select(sa.func.coalesce(sa.func.sum(LiveMinute.value), 0.0)).where(
                LiveMinute.metric == metric, LiveMinute.minute >= start, LiveMinute.minute < end
            )
        )
        return float(total or 0.0)
    in_window = (RouteMinute.minute >= start, RouteMinute.minute < end)
    if metric == "http.p95_ms":
        buckets: list[int] = []
        for row in session.scalars(sa.select(RouteMinute.latency_buckets).where(*in_window)):
            buckets = add_buckets(buckets, row or [])
        return percentile(buckets, 0.95)
    requests, server_errors, client_errors = session.execute(
        sa.select(
            sa.func.coalesce(sa.func.sum(RouteMinute.requests), 0),
            sa.func.coalesce(sa.func.sum(RouteMinute.server_errors), 0),
            sa.func.coalesce(sa.func.sum(RouteMinute.client_errors), 0),
        ).where(*in_window)
    ).one()
    if metric == "http.requests":
        return float(requests)
    if not requests:
        return None
    errors = server_errors if metric == "http.error_rate" else client_errors
    return errors / requests * 100


# --- evaluation --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    """One rule's figures at one evaluation: `compared` is what meets the threshold (the value, or its
    change in percent against the baseline), None when the rule cannot be evaluated."""

    value: float | None
    baseline: float | None
    compared: float | None


def read(session: Session, rule: AlertRule, end: datetime) -> Reading:
    window = timedelta(minutes=rule.window_minutes)
    start = end - window
    value = metric_value(session, rule.metric, start, end)
    if rule.kind == "absolute":
        return Reading(value, None, value)
    if rule.kind == "percent_change":
        baseline = metric_value(session, rule.metric, start - window, start)
    else:
        baseline = metric_value(session, rule.metric, start - LAST_WEEK, end - LAST_WEEK)
    if value is None or not baseline:
        return Reading(value, baseline, None)
    return Reading(value, baseline, (value - baseline) / baseline * 100)


def breached(rule: AlertRule, compared: float) -> bool:
    return compared > rule.threshold if rule.comparison == "above" else compared < rule.threshold


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{round(x, 2):g}"


def describe(rule: AlertRule, reading: Reading) -> str:
    """A person's reading of the figures, e.g. `events.view over the last 5 min: 120 (threshold above
    100)`."""
    head = f"{rule.metric} over the last {rule.window_minutes} min: {_num(reading.value)}"
    if rule.kind == "absolute":
        return f"{head} (threshold {rule.comparison} {_num(rule.threshold)})"
    against = "the window before" if rule.kind == "percent_change" else "the same time last week"
    change = "n/a" if reading.compared is None else f"{reading.compared:+.1f}%"
    return (
        f"{head} vs {_num(reading.baseline)} {against} "
        f"({change}, threshold {rule.comparison} {_num(rule.threshold)}%)"
    )


def _payload(
    rule: AlertRule, alert: Alert, message: str, severity: str, recipients: list[str]
) -> dict[str, Any]:
    return {
        "name": rule.name,
        "message": message,
        "severity": severity,
        "recipients": recipients,
        "rule_id": str(rule.id),
        "alert_id": str(alert.id),
        "metric": rule.metric,
        "value": alert.value,
        "baseline": alert.baseline,
        "breaches": alert.breaches,
    }


def _union(*groups: list[str]) -> list[str]:
    return list(dict.fromkeys(str(x) for group in groups for x in group))


def _admins(session: Session, now: datetime) -> list[str]:
    return [str(u) for u in users_with_roles(session, [ESCALATION_ROLE], now)]


def escalation_audience(session: Session, rule: AlertRule, now: datetime) -> list[str]:
    """Who an escalation goes to: the rule's escalation recipients, else its recipients and the admins."""
    if rule.escalation_recipients:
        return _union(rule.escalation_recipients)
    return _union(rule.recipients, _admins(session, now))


def _latest_alert(session: Session, rule_id: uuid.UUID) -> Alert | None:
    return session.scalar(
        sa.select(Alert)
        .where(Alert.rule_id == rule_id)
        .order_by(Alert.last_evaluated_at.desc(), Alert.fired_at.desc())
        .limit(1)
    )


def _escalate(session: Session, rule: AlertRule, alert: Alert, now: datetime) -> Transition | None:
    """Escalate once, when the breaches reach `escalate_after` (0 turns escalation off)."""
    if alert.escalated_at is not None or rule.escalate_after < 1 or alert.breaches < rule.escalate_after:
        return None
    alert.escalated_at = now
    message = f"{alert.message}; {alert.breaches} evaluations in a row"
    payload = _payload(rule, alert, message, "critical", escalation_audience(session, rule, now))
    outbox.record_event(session, ALERT_ESCALATED, "alert", alert.id, payload, at=now)
    return Transition(rule.id, alert.id, "escalated", alert.value, alert.baseline, rule.name)


def evaluate_rule(session: Session, rule: AlertRule, now: datetime) -> list[Transition]:
    """Evaluate one rule at `now` (see the module docstring) and apply its transition."""
    end = minute_floor(now)
    latest = _latest_alert(session, rule.id)
    if latest is not None and latest.last_evaluated_at >= end:
        return []  # already evaluated in this minute
    reading = read(session, rule, end)
    if reading.compared is None or reading.value is None:
        return []
    is_breach = breached(rule, reading.compared)
    message = describe(rule, reading)
    open_alert = latest if latest is not None and latest.status == "firing" else None

    if open_alert is None:
        if not is_breach:
            return []
        alert = Alert(
            id=new_id(),
            rule_id=rule.id,
            status="firing",
            value=reading.value,
            baseline=reading.baseline,
            breaches=1,
            fired_at=now,
            last_evaluated_at=now,
            message=message,
        )
        session.add(alert)
        payload = _payload(rule, alert, message, "warning", _union(rule.recipients))
        outbox.record_event(session, ALERT_FIRED, "alert", alert.id, payload, at=now)
        fired = [Transition(rule.id, alert.id, "fired", alert.value, alert.baseline, rule.name)]
        escalated = _escalate(session, rule, alert, now)
        return fired + ([escalated] if escalated else [])

    alert = open_alert
    alert.value, alert.baseline, alert.last_evaluated_at = reading.value, reading.baseline, now
    if is_breach:
        alert.breaches += 1
        alert.message = message
        escalated = _escalate(session, rule, alert, now)
        if escalated is not None:
            return [escalated]
        return [Transition(rule.id, alert.id, "repeated", alert.value, alert.baseline, rule.name)]

    alert.status, alert.resolved_at = "resolved", now
    recipients = _union(rule.recipients)
    if alert.escalated_at is not None:  # whoever was paged hears that it is over
        recipients = _union(rule.recipients or _admins(session, now), escalation_audience(session, rule, now))
    outbox.record_event(
        session,
        ALERT_RESOLVED,
        "alert",
        alert.id,
        _payload(rule, alert, message, "info", recipients),
        at=now,
    )
    return [Transition(rule.id, alert.id, "resolved", alert.value, alert.baseline, rule.name)]


def evaluate_rules(session: Session, now: datetime) -> list[Transition]:
    """Evaluate every active rule at `now`, in the caller's transaction (the caller commits): alerts
    are inserted or updated and `alert.fired` / `alert.escalated` / `alert.resolved` are recorded in the
    outbox, where the notification rules pick them up. Rules naming an unknown metric are skipped."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    rules = session.scalars(
        sa.select(AlertRule).where(AlertRule.is_active.is_(True)).order_by(AlertRule.created_at, AlertRule.id)
    ).all()
    transitions: list[Transition] = []
    for rule in rules:
        if rule.metric in METRICS:
            transitions += evaluate_rule(session, rule, now)
    session.flush()
    return transitions


def prune_live_minutes(session: Session, now: datetime, keep: timedelta = KEEP_MINUTES) -> int:
    """Delete live and route minutes older than `keep` (8 days: alerts compare with last week).
    Returns the number of rows deleted."""
    cutoff = minute_floor(now) - keep
    deleted = 0
    for table in (LiveMinute, RouteMinute):
        result = session.execute(sa.delete(table).where(table.minute < cutoff))
        deleted += result.rowcount or 0
    return deleted
