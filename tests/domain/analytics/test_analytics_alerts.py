"""Alert rules on a controlled clock: windows of complete minutes, the three kinds of threshold, the
fired -> repeated -> escalated -> resolved lifecycle with its outbox events, idempotency within a
minute, the HTTP metrics, rule validation, pruning, and the notifications the events become."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from domain.analytics import alerts
from domain.analytics.health import BUCKET_COUNT, bucket_index
from domain.auth import audit, rbac, users
from domain.migrate import upgrade
from domain.notifications import rules
from domain.schema import Alert, AlertRule, LiveMinute, Notification, OutboxEvent, RouteMinute
from resources.database import OperationalDatabase as DB

T10 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday
RECIPIENT = str(uuid.UUID(int=1))
ESCALATION = str(uuid.UUID(int=2))


def at(minutes: float) -> datetime:
    """T10 plus `minutes` (evaluations happen 30 s into a minute unless a test says otherwise)."""
    return T10 + timedelta(minutes=minutes)


def open_db(url: str) -> DB:
    upgrade(url)
    db = DB(url=url)
    with db.session() as session:
        rbac.seed_system_roles(session)
    return db


@pytest.fixture
def db(sqlite_url: str) -> Iterator[DB]:
    database = open_db(sqlite_url)
    yield database
    database.engine().dispose()


@pytest.fixture
def both_db(migrated_url: str) -> Iterator[DB]:
    database = open_db(migrated_url)
    yield database
    database.engine().dispose()


def add_rule(db: DB, **fields: Any) -> uuid.UUID:
    values: dict[str, Any] = dict(
        name="Views high",
        metric="events.view",
        kind="absolute",
        comparison="above",
        threshold=100.0,
        window_minutes=5,
        recipients=[RECIPIENT],
        escalate_after=3,
        escalation_recipients=[],
    )
    values.update(fields)
    with db.session() as session:
        rule = AlertRule(**values)
        session.add(rule)
        session.flush()
        return rule.id


def live(db: DB, metric: str, first: datetime, values: list[float]) -> None:
    """One LiveMinute per value, from minute `first` on."""
    with db.session() as session:
        for i, value in enumerate(values):
            session.add(LiveMinute(minute=first + timedelta(minutes=i), metric=metric, value=value))


def evaluate(db: DB, now: datetime) -> list[tuple[str, float, float | None]]:
    with db.session() as session:
        return [(t.kind, t.value, t.baseline) for t in alerts.evaluate_rules(session, now)]


def alert_rows(db: DB) -> list[Alert]:
    with db.session() as session:
        return list(session.scalars(sa.select(Alert).order_by(Alert.fired_at)))


def outbox_events(db: DB) -> list[tuple[str, str, dict[str, Any]]]:
    with db.session() as session:
        rows = session.scalars(sa.select(OutboxEvent).order_by(OutboxEvent.seq))
        return [(e.event_type, e.aggregate_id, e.payload) for e in rows]


def test_absolute_rule_fires_repeats_and_resolves(both_db: DB) -> None:
    db = both_db
    rule_id = add_rule(db)
    live(db, "events.view", at(-6), [1000])  # 09:54, before the window
    live(db, "events.view", at(-5), [24] * 5)  # 09:55..09:59: 120
    live(db, "events.view", at(0), [50])  # 10:00, the running minute: not read at 10:00:30

    with db.session() as session:
        transitions = alerts.evaluate_rules(session, at(0.5))
    [alert] = alert_rows(db)
    assert transitions == [alerts.Transition(rule_id, alert.id, "fired", 120.0, None, "Views high")]
    message = "events.view over the last 5 min: 120 (threshold above 100)"
    assert (alert.rule_id, alert.status, alert.value, alert.baseline, alert.breaches) == (
        rule_id,
        "firing",
        120.0,
        None,
        1,
    )
    assert (alert.fired_at, alert.last_evaluated_at, alert.escalated_at, alert.resolved_at) == (
        at(0.5),
        at(0.5),
        None,
        None,
    )
    assert alert.message == message
    fired = {
        "name": "Views high",
        "message": message,
        "severity": "warning",
        "recipients": [RECIPIENT],
        "rule_id": str(rule_id),
        "alert_id": str(alert.id),
        "metric": "events.view",
        "value": 120.0,
        "baseline": None,
        "breaches": 1,
    }
    assert outbox_events(db) == [("alert.fired", str(alert.id), fired)]

    assert evaluate(db, at(1.5)) == [("repeated", 146.0, None)]  # 09:56..10:00
    [alert] = alert_rows(db)
    assert (alert.status, alert.breaches, alert.value, alert.last_evaluated_at) == (
        "firing",
        2,
        146.0,
        at(1.5),
    )
    assert len(outbox_events(db)) == 1  # a repeat announces nothing

    assert evaluate(db, at(5.5)) == [("resolved", 50.0, None)]  # 10:00..10:04
    [alert] = alert_rows(db)
    assert (alert.status, alert.resolved_at, alert.breaches, alert.escalated_at) == (
        "resolved",
        at(5.5),
        2,
        None,
    )
    resolved = dict(
        fired,
        message="events.view over the last 5 min: 50 (threshold above 100)",
        severity="info",
        value=50.0,
        breaches=2,
    )
    assert outbox_events(db)[1:] == [("alert.resolved", str(alert.id), resolved)]

    assert evaluate(db, at(6.5)) == []
    assert len(alert_rows(db)) == 1 and len(outbox_events(db)) == 2


def test_below_rule_fires_on_an_idle_metric_and_resolves(db: DB) -> None:
    add_rule(
        db, name="Searches low", metric="events.search", comparison="below", threshold=10, window_minutes=3
    )
    assert evaluate(db, at(0.5)) == [("fired", 0.0, None)]  # no rows: no searches at all
    assert alert_rows(db)[0].message == "events.search over the last 3 min: 0 (threshold below 10)"
    live(db, "events.search", at(0), [4, 4, 4])
    assert evaluate(db, at(2.5)) == [("repeated", 8.0, None)]  # 09:59 (none) + 10:00 + 10:01
    assert evaluate(db, at(3.5)) == [("resolved", 12.0, None)]
    assert [e[0] for e in outbox_events(db)] == ["alert.fired", "alert.resolved"]


def test_percent_change_compares_with_the_window_before(db: DB) -> None:
    drop = add_rule(db, name="Views drop", kind="percent_change", comparison="below", threshold=-30)
    add_rule(db, name="Views surge", kind="percent_change", comparison="above", threshold=50)
    live(db, "events.view", at(-10), [20] * 5 + [12] * 5)  # 09:50..09:54: 100, 09:55..09:59: 60

    with db.session() as session:
        transitions = alerts.evaluate_rules(session, at(0.5))
    assert [(t.rule_id, t.kind, t.value, t.baseline) for t in transitions] == [(drop, "fired", 60.0, 100.0)]
    [alert] = alert_rows(db)
    assert alert.message == (
        "events.view over the last 5 min: 60 vs 100 the window before (-40.0%, threshold below -30%)"
    )
    assert outbox_events(db)[0][2]["baseline"] == 100.0


def test_same_hour_last_week_compares_with_the_window_seven_days_back(db: DB) -> None:
    add_rule(db, name="Busier than last week", kind="same_hour_last_week", threshold=50, window_minutes=60)
    week_ago = at(-60) - timedelta(days=7)
    live(db, "events.view", week_ago, [10] * 60)  # last Monday 09:00..09:59: 600
    live(db, "events.view", at(-120), [16] * 120)  # today 08:00..09:59: 960 per hour, flat

    assert evaluate(db, at(0.5)) == [("fired", 960.0, 600.0)]  # +60% on last week, 0% on the hour before
    assert alert_rows(db)[0].message == (
        "events.view over the last 60 min: 960 vs 600 the same time last week (+60.0%, threshold above 50%)"
    )


def test_escalates_once_after_repeated_breaches_and_tells_everyone_it_resolved(db: DB) -> None:
    add_rule(db, escalate_after=3, escalation_recipients=[ESCALATION])
    live(db, "events.view", at(-5), [100] * 12)  # 500 per window until 10:06, then nothing

    kinds = [evaluate(db, at(m + 0.5))[0][0] for m in range(5)]
    assert kinds == ["fired", "repeated", "escalated", "repeated", "repeated"]
    [alert] = alert_rows(db)
    assert (alert.breaches, alert.escalated_at) == (5, at(2.5))
    events = outbox_events(db)
    assert [e[0] for e in events] == ["alert.fired", "alert.escalated"]
    escalated = events[1][2]
    assert (escalated["severity"], escalated["recipients"], escalated["breaches"]) == (
        "critical",
        [ESCALATION],
        3,
    )
    assert (
        escalated["message"]
        == "events.view over the last 5 min: 500 (threshold above 100); 3 evaluations in a row"
    )

    assert evaluate(db, at(12.5)) == [("resolved", 0.0, None)]
    resolved = outbox_events(db)[2]
    assert resolved[0] == "alert.resolved" and resolved[2]["recipients"] == [RECIPIENT, ESCALATION]


def test_escalation_without_its_own_recipients_adds_the_admins(db: DB) -> None:
    with db.session() as session:
        admin = users.create_user(
            session,
            users.NewUser("boss", "boss@example.test", None, roles=["admin"]),
            created_by=None,
            origin=audit.Origin(),
        ).id
    add_rule(db, escalate_after=1)
    live(db, "events.view", at(-5), [100] * 5)
    assert [k for k, _, _ in evaluate(db, at(0.5))] == ["fired", "escalated"]
    events = outbox_events(db)
    assert [(e[0], e[2]["recipients"]) for e in events] == [
        ("alert.fired", [RECIPIENT]),
        ("alert.escalated", [RECIPIENT, str(admin)]),
    ]


def test_evaluating_twice_in_one_minute_changes_nothing(db: DB) -> None:
    add_rule(db)
    live(db, "events.view", at(-5), [30] * 5)
    assert evaluate(db, at(0.5)) == [("fired", 150.0, None)]
    assert evaluate(db, at(0.9)) == []
    assert alert_rows(db)[0].breaches == 1 and len(outbox_events(db)) == 1
    assert evaluate(db, at(1.05)) == [("repeated", 120.0, None)]
    assert evaluate(db, at(1.5)) == []
    assert alert_rows(db)[0].breaches == 2

    live(db, "events.view", at(5), [200])  # 10:05, a new surge that a same-minute re-run must not see
    assert evaluate(db, at(5.2)) == [("resolved", 0.0, None)]
    with db.session() as session:  # late data for 10:04 arriving in the same minute
        session.add(LiveMinute(minute=at(4), metric="events.view", value=500))
    assert evaluate(db, at(5.6)) == []
    assert evaluate(db, at(6.5)) == [("fired", 700.0, None)]  # a new alert, a minute later
    assert [a.status for a in alert_rows(db)] == ["resolved", "firing"]


def test_no_baseline_or_no_value_means_no_transition(db: DB) -> None:
    change = add_rule(db, name="Change", kind="percent_change", threshold=10)
    last_week = add_rule(db, name="Last week", kind="same_hour_last_week", threshold=10)
    errors = add_rule(db, name="Errors", metric="http.error_rate", threshold=1)
    live(db, "events.view", at(-5), [1000] * 5)  # a huge value, but nothing before it to compare with
    assert evaluate(db, at(0.5)) == []  # and the error rate without requests is no rate at all

    with db.session() as session:  # inactive rules are not evaluated (their baselines fill up from here)
        session.execute(
            sa.update(AlertRule).where(AlertRule.id.in_([change, last_week])).values(is_active=False)
        )
        session.add(RouteMinute(minute=at(1), route="GET /x", requests=10, server_errors=5))
    assert evaluate(db, at(2.5)) == [("fired", 50.0, None)]
    assert evaluate(db, at(7.5)) == []  # no requests since: not evaluable, the alert stays open
    [alert] = alert_rows(db)
    assert (alert.rule_id, alert.status, alert.breaches) == (errors, "firing", 1)


def route_minute(minute: datetime, route: str, latencies: dict[float, int], **counts: int) -> RouteMinute:
    buckets = [0] * BUCKET_COUNT
    for latency, n in latencies.items():
        buckets[bucket_index(latency)] += n
    return RouteMinute(
        minute=minute,
        route=route,
        requests=sum(latencies.values()),
        latency_buckets=buckets,
        latency_sum_ms=sum(k * n for k, n in latencies.items()),
        **counts,
    )


def test_http_metrics_from_route_minutes(db: DB) -> None:
    with db.session() as session:
        session.add_all(
            [
                route_minute(at(-2), "GET /a", {20: 100}, server_errors=2, client_errors=10),
                route_minute(at(-1), "GET /a", {20: 270, 500: 30}, server_errors=6),
                route_minute(at(-1), "POST /b", {}),
                route_minute(at(0), "GET /a", {9000: 1000}, server_errors=1000),  # outside [09:58, 10:00)
            ]
        )
    with db.session() as session:
        value = {
            m: alerts.metric_value(session, m, at(-2), at(0)) for m in alerts.METRICS if m.startswith("http.")
        }
        assert alerts.metric_value(session, "http.p95_ms", at(-10), at(-2)) is None
        assert alerts.metric_value(session, "http.error_rate", at(-10), at(-2)) is None
        assert alerts.metric_value(session, "http.requests", at(-10), at(-2)) == 0.0
        with pytest.raises(ValueError, match="unknown metric"):
            alerts.metric_value(session, "http.nothing", at(-2), at(0))
    # 400 requests, 8 server and 10 client errors; the 95th percentile (rank 380) is in the 500 ms bucket.
    assert value == {
        "http.requests": 400.0,
        "http.error_rate": 2.0,
        "http.client_error_rate": 2.5,
        "http.p95_ms": 500.0,
    }

    add_rule(db, name="Errors", metric="http.error_rate", threshold=1.5, window_minutes=2)
    add_rule(db, name="Slow", metric="http.p95_ms", threshold=750, window_minutes=2)
    assert evaluate(db, at(0.5)) == [("fired", 2.0, None)]
    assert (
        outbox_events(db)[0][2]["message"] == "http.error_rate over the last 2 min: 2 (threshold above 1.5)"
    )


def test_validate_rule() -> None:
    assert alerts.validate_rule("events.view", "absolute", "above", 100, 5) == []
    assert alerts.validate_rule("http.p95_ms", "same_hour_last_week", "below", -20.5, 1440) == []
    assert set(alerts.METRICS) >= {
        "events.view",
        "events.search",
        "http.requests",
        "http.error_rate",
        "http.client_error_rate",
        "http.p95_ms",
    }
    errors = alerts.validate_rule("events.nope", "ratio", "equal", float("nan"), 0)
    assert [field for field, _ in errors] == ["metric", "kind", "comparison", "threshold", "window_minutes"]
    assert errors[0][1].startswith("unknown metric 'events.nope'; one of: events.view, ")
    assert errors[4][1] == "must be between 1 and 1440"
    assert alerts.validate_rule("events.view", "absolute", "above", "100", 1441) == [
        ("threshold", "must be a finite number"),
        ("window_minutes", "must be between 1 and 1440"),
    ]
    assert alerts.validate_rule("events.view", "absolute", "above", True, 2.5) == [
        ("threshold", "must be a finite number"),
        ("window_minutes", "must be a whole number of minutes"),
    ]
    assert alerts.validate_rule("http.error_rate", "absolute", "above", 150, 5) == [
        ("threshold", "http.error_rate is a percentage: the threshold must be between 0 and 100")
    ]
    assert alerts.validate_rule("http.error_rate", "percent_change", "above", 150, 5) == []


def test_prune_keeps_eight_days(db: DB) -> None:
    cutoff = T10 - timedelta(days=8)
    with db.session() as session:
        for minute in (cutoff - timedelta(minutes=1), cutoff, T10):
            session.add(LiveMinute(minute=minute, metric="events.view", value=1))
            session.add(RouteMinute(minute=minute, route="GET /a", requests=1))
    with db.session() as session:
        assert alerts.prune_live_minutes(session, at(0.5)) == 2
    with db.session() as session:
        assert list(session.scalars(sa.select(LiveMinute.minute).order_by(LiveMinute.minute))) == [
            cutoff,
            T10,
        ]
        assert list(session.scalars(sa.select(RouteMinute.minute).order_by(RouteMinute.minute))) == [
            cutoff,
            T10,
        ]
        assert alerts.prune_live_minutes(session, at(0.5), keep=timedelta(minutes=1)) == 2


def test_alert_events_become_notifications_for_the_recipients(db: DB) -> None:
    with db.session() as session:
        rules.seed_default_templates(session)
        ops = users.create_user(
            session, users.NewUser("ops", "ops@example.test", None), created_by=None, origin=audit.Origin()
        ).id
        arabic = users.create_user(
            session,
            users.NewUser("noor", "noor@example.test", None, preferences={"locale": "ar"}),
            created_by=None,
            origin=audit.Origin(),
        ).id
    add_rule(db, recipients=[str(ops), str(arabic)])
    live(db, "events.view", at(-5), [24] * 5)
    evaluate(db, at(0.5))
    evaluate(db, at(5.5))
    summary = rules.process_events(db.session, after=0, now=at(6))
    assert (summary.processed, summary.failed) == (2, 0)

    with db.session() as session:
        notes = session.scalars(
            sa.select(Notification).where(Notification.channel == "in_app").order_by(Notification.created_at)
        ).all()
        got = {
            (n.recipient_id, n.category): (n.subject, n.content, n.critical, n.notification_type)
            for n in notes
        }
    fired = "Views high (warning): events.view over the last 5 min: 120 (threshold above 100)"
    resolved = "Views high is resolved: events.view over the last 5 min: 0 (threshold above 100)"
    assert got[(ops, "alert.fired")] == ("Alert: Views high", fired, True, "error")
    assert got[(ops, "alert.resolved")] == ("Resolved: Views high", resolved, False, "success")
    assert got[(arabic, "alert.fired")][0] == "تنبيه: Views high"
    assert got[(arabic, "alert.resolved")][0] == "زال التنبيه: Views high"
    assert len(got) == 4
