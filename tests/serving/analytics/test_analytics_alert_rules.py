"""`/api/v1/analytics/alerts`: alert rules (create, list, deactivate) and the alerts they raised, on
each operational DB. A rule is created through the API, evaluated by the real evaluator
(`domain.analytics.alerts`, what `analytics_alerts_sensor` runs every 30 s) on live minutes at a fixed
clock, and its alerts read back through the API. Bad rules are problem details naming the field and
store nothing; reading needs `analytics:read` (the analyst), creating and deactivating rules
`analytics:manage` (an editor; only the rule's creator or an admin deactivates it, see
test_security_analytics_management.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from litestar.testing import AsyncTestClient
from sqlalchemy.orm import Session, sessionmaker

from domain.analytics import alerts
from domain.schema import Alert, AlertRule, LiveMinute, OutboxEvent
from tests.serving.analytics.conftest import assert_problem
from tests.serving.conftest import bearer

RULES = "/api/v1/analytics/alerts/rules"
ALERTS = "/api/v1/analytics/alerts"
T10 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def _count(db_sessions: sessionmaker[Session], table: type) -> int:
    with db_sessions() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(table))


def _evaluate(db_sessions: sessionmaker[Session], now: datetime) -> list[tuple[str, str]]:
    """One tick of the alert sensor: the real evaluator, committed."""
    with db_sessions.begin() as session:
        return [(t.name, t.kind) for t in alerts.evaluate_rules(session, now)]


async def test_a_valid_rule_is_stored_with_its_fields(
    anonymous: AsyncTestClient, analyst, editor, new_user, db_sessions: sessionmaker[Session]
) -> None:
    analyst_id, _ = analyst  # a recipient
    editor_id, headers = editor
    oncall_id, _ = new_user("oncall", ["admin"])
    res = await anonymous.post(
        RULES,
        json={
            "name": "  Views dropped  ",
            "metric": "events.view",
            "threshold": -50,
            "kind": "percent_change",
            "comparison": "below",
            "window_minutes": 15,
            "recipients": ["ONCALL@example.test", str(analyst_id)],
            "escalate_after": 2,
            "escalation_recipients": [str(oncall_id)],
        },
        headers=headers,
    )
    assert res.status_code == 201, res.text
    rule = res.json()
    assert datetime.fromisoformat(rule.pop("created_at")).tzinfo is not None
    rule_id = uuid.UUID(rule.pop("rule_id"))
    assert rule == {
        "name": "Views dropped",  # trimmed
        "metric": "events.view",
        "kind": "percent_change",
        "comparison": "below",
        "threshold": -50.0,
        "window_minutes": 15,
        "recipients": [str(oncall_id), str(analyst_id)],  # an email resolves to the user's id
        "escalate_after": 2,
        "escalation_recipients": [str(oncall_id)],
        "is_active": True,
    }
    with db_sessions() as session:
        stored = session.get(AlertRule, rule_id)
        assert stored is not None
        assert (stored.name, stored.metric, stored.kind, stored.comparison, stored.threshold) == (
            "Views dropped",
            "events.view",
            "percent_change",
            "below",
            -50.0,
        )
        assert (stored.window_minutes, stored.escalate_after, stored.created_by) == (15, 2, editor_id)
        assert stored.recipients == [str(oncall_id), str(analyst_id)]

    # Only name, metric and threshold are required; the rest has the documented defaults.
    res = await anonymous.post(
        RULES, json={"name": "5xx", "metric": "http.error_rate", "threshold": 5}, headers=headers
    )
    assert res.status_code == 201, res.text
    assert {k: v for k, v in res.json().items() if k not in ("rule_id", "created_at")} == {
        "name": "5xx",
        "metric": "http.error_rate",
        "kind": "absolute",
        "comparison": "above",
        "threshold": 5.0,
        "window_minutes": 5,
        "recipients": [],
        "escalate_after": 3,
        "escalation_recipients": [],
        "is_active": True,
    }
    assert _count(db_sessions, AlertRule) == 2


VALID = {"name": "Views high", "metric": "events.view", "threshold": 100}
DROP = object()  # a change that leaves the field out


INVALID: list[tuple[dict[str, Any], int, str]] = [
    ({"metric": "events.teleport"}, 422, "metric"),
    ({"metric": "cpu.load"}, 422, "metric"),
    ({"metric": 7}, 400, "metric"),
    ({"threshold": "high"}, 400, "threshold"),
    ({"threshold": True}, 400, "threshold"),
    ({"threshold": None}, 400, "threshold"),
    ({"threshold": DROP}, 400, "threshold"),
    ({"metric": "http.error_rate", "threshold": 150}, 422, "threshold"),  # a percentage
    ({"metric": "http.client_error_rate", "threshold": -1}, 422, "threshold"),
    ({"window_minutes": 0}, 422, "window_minutes"),
    ({"window_minutes": 1441}, 422, "window_minutes"),
    ({"window_minutes": 2.5}, 400, "window_minutes"),
    ({"kind": "weekly"}, 422, "kind"),
    ({"comparison": "equal"}, 422, "comparison"),
    ({"name": "   "}, 422, "name"),
    ({"escalate_after": -1}, 422, "escalate_after"),
    ({"recipients": ["nobody@example.test"]}, 422, "recipients[0]"),
    ({"escalation_recipients": [str(uuid.UUID(int=7))]}, 422, "recipients[0]"),
    ({"severity": "critical"}, 400, "severity"),
]


async def test_an_invalid_rule_is_a_problem_naming_the_field_and_stores_nothing(
    anonymous: AsyncTestClient, editor, db_sessions: sessionmaker[Session]
) -> None:
    _, headers = editor
    wrong = []
    for change, status, field in INVALID:  # one app and database for all the cases
        payload = {k: v for k, v in (VALID | change).items() if v is not DROP}
        try:
            assert_problem(await anonymous.post(RULES, json=payload, headers=headers), status, field)
        except AssertionError as exc:
            wrong.append(f"{change}: {exc}")
    assert wrong == []
    assert _count(db_sessions, AlertRule) == 0


async def test_rules_fire_into_the_alert_history_and_deactivating_one_resolves_its_alert(
    anonymous: AsyncTestClient, analyst, editor, db_sessions: sessionmaker[Session]
) -> None:
    _, headers = analyst  # reads
    _, writer = editor  # creates and deactivates
    assert (await anonymous.get(RULES, headers=headers)).json() == []
    views = (await anonymous.post(RULES, json=VALID, headers=writer)).json()
    searches = (
        await anonymous.post(
            RULES,
            json={"name": "Search burst", "metric": "events.search", "threshold": 10, "window_minutes": 2},
            headers=writer,
        )
    ).json()
    listed = (await anonymous.get(RULES, headers=headers)).json()
    assert [r["rule_id"] for r in listed] == [views["rule_id"], searches["rule_id"]]  # oldest first
    assert listed == [views, searches]

    # 150 views in 09:55..09:59 fire "Views high" at 10:00:30; 20 searches in 10:05 fire "Search burst"
    # at 10:06:30, when the views' window (10:01..10:05) is empty and "Views high" resolves.
    with db_sessions.begin() as session:
        for i in range(5):
            session.add(LiveMinute(minute=T10 - timedelta(minutes=5 - i), metric="events.view", value=30))
        session.add(LiveMinute(minute=T10 + timedelta(minutes=5), metric="events.search", value=20))
    assert _evaluate(db_sessions, T10 + timedelta(seconds=30)) == [("Views high", "fired")]
    assert _evaluate(db_sessions, T10 + timedelta(minutes=6, seconds=30)) == [
        ("Views high", "resolved"),
        ("Search burst", "fired"),
    ]

    history = (await anonymous.get(ALERTS, headers=headers)).json()
    assert [(a["rule_name"], a["status"]) for a in history] == [
        ("Search burst", "firing"),  # newest first
        ("Views high", "resolved"),
    ]
    burst, high = history
    assert (burst["rule_id"], burst["value"], burst["baseline"], burst["breaches"]) == (
        searches["rule_id"],
        20.0,
        None,
        1,
    )
    assert burst["message"] == "events.search over the last 2 min: 20 (threshold above 10)"
    assert datetime.fromisoformat(burst["fired_at"]) == T10 + timedelta(minutes=6, seconds=30)
    assert burst["resolved_at"] is None and burst["escalated_at"] is None
    assert (high["rule_id"], high["value"]) == (views["rule_id"], 0.0)
    assert datetime.fromisoformat(high["fired_at"]) == T10 + timedelta(seconds=30)
    assert datetime.fromisoformat(high["resolved_at"]) == T10 + timedelta(minutes=6, seconds=30)

    firing = (await anonymous.get(ALERTS, params={"status": "firing"}, headers=headers)).json()
    assert [a["alert_id"] for a in firing] == [burst["alert_id"]]
    resolved = (await anonymous.get(ALERTS, params={"status": "resolved"}, headers=headers)).json()
    assert [a["alert_id"] for a in resolved] == [high["alert_id"]]
    newest = (await anonymous.get(ALERTS, params={"limit": 1}, headers=headers)).json()
    assert [a["alert_id"] for a in newest] == [burst["alert_id"]]
    assert_problem(await anonymous.get(ALERTS, params={"status": "open"}, headers=headers), 400, "status")
    assert_problem(await anonymous.get(ALERTS, params={"limit": 0}, headers=headers), 400, "limit")

    # Deactivating "Search burst": 204, its open alert resolved, the rule kept (inactive) with its history.
    res = await anonymous.delete(f"{RULES}/{searches['rule_id']}", headers=writer)
    assert res.status_code == 204, res.text
    assert (await anonymous.get(ALERTS, params={"status": "firing"}, headers=headers)).json() == []
    closed = (await anonymous.get(ALERTS, params={"status": "resolved"}, headers=headers)).json()
    assert [a["alert_id"] for a in closed] == [burst["alert_id"], high["alert_id"]]
    assert closed[0]["message"].endswith("(rule deactivated)") and closed[0]["resolved_at"]
    rules = {r["rule_id"]: r["is_active"] for r in (await anonymous.get(RULES, headers=headers)).json()}
    assert rules == {views["rule_id"]: True, searches["rule_id"]: False}
    # It is no longer evaluated: a burst of searches after the deactivation fires nothing.
    later = alerts.minute_floor(datetime.now(UTC)) + timedelta(hours=1)
    with db_sessions.begin() as session:
        session.add(LiveMinute(minute=later, metric="events.search", value=20))
    assert _evaluate(db_sessions, later + timedelta(minutes=1, seconds=30)) == []
    with db_sessions() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Alert)) == 2
        assert session.scalars(sa.select(OutboxEvent.event_type).order_by(OutboxEvent.seq)).all() == [
            "alert.fired",
            "alert.resolved",
            "alert.fired",
        ]

    # Deactivating again changes nothing; an unknown rule is a 404 problem.
    assert (await anonymous.delete(f"{RULES}/{searches['rule_id']}", headers=writer)).status_code == 204
    missing = await anonymous.delete(f"{RULES}/{uuid.uuid4()}", headers=writer)
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/problem")
    assert _count(db_sessions, AlertRule) == 2


async def test_a_viewer_may_not_read_or_manage_alert_rules(
    anonymous: AsyncTestClient,
    token_for: Callable[[str], str],
    editor,
    db_sessions: sessionmaker[Session],
) -> None:
    _, headers = editor
    rule = (await anonymous.post(RULES, json=VALID, headers=headers)).json()
    viewer = bearer(token_for("viewer"))
    for method, url, body in [
        ("POST", RULES, VALID | {"name": "Sneaky"}),
        ("GET", RULES, None),
        ("DELETE", f"{RULES}/{rule['rule_id']}", None),
        ("GET", ALERTS, None),
    ]:
        res = await anonymous.request(method, url, json=body, headers=viewer)
        assert res.status_code == 403, (method, url, res.text)
        assert res.headers["content-type"].startswith("application/problem+json")
        res = await anonymous.request(method, url, json=body)
        assert res.status_code == 401, (method, url, res.text)
    with db_sessions() as session:
        assert session.scalars(sa.select(AlertRule.name)).all() == ["Views high"]
        assert session.scalar(sa.select(AlertRule.is_active)) is True
