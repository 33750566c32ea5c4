"""Attacks on report definitions and alert rules through the API, on each operational DB.

`analytics:read` (the analyst) reads; writing takes `analytics:manage` (editors and admins): creating
and deactivating alert rules, creating, generating and deactivating report definitions. A rule or a
definition is deactivated only by its creator or an admin. A schedule may fire at most once an hour;
each user has a cap on active definitions and on manual generations an hour (429). A recipient that
cannot be used gets one message whatever the reason, so `recipients` tells nobody which emails have
accounts.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from litestar.testing import AsyncTestClient
from sqlalchemy.orm import Session, sessionmaker

from domain.analytics import report_jobs
from domain.schema import AlertRule, Report, ReportRun, User
from tests.serving.conftest import bearer

REPORTS = "/api/v1/analytics/reports"
RULES = "/api/v1/analytics/alerts/rules"
RULE = {"name": "Views high", "metric": "events.view", "threshold": 100}
REPORT = {"name": "Searches", "report_type": "search", "run_now": False}


def _count(db_sessions: sessionmaker[Session], table: type) -> int:
    with db_sessions() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(table))


def _problem(res: Any, status: int) -> dict[str, Any]:
    assert res.status_code == status, res.text
    assert res.headers["content-type"].startswith("application/problem+json")
    return res.json()


@pytest.fixture
def people(new_user) -> dict[str, tuple[uuid.UUID, dict[str, str]]]:
    out = {}
    for name, roles in (
        ("analyst", ["analyst"]),
        ("editor", ["editor"]),
        ("other", ["editor"]),
        ("admin", ["admin"]),
        ("viewer", ["viewer"]),
    ):
        user_id, token = new_user(f"{name}-{uuid.uuid4().hex[:6]}", roles)
        out[name] = (user_id, bearer(token))
    return out


async def test_analytics_read_does_not_write_rules_or_reports(
    anonymous: AsyncTestClient, people, db_sessions: sessionmaker[Session]
) -> None:
    analyst = people["analyst"][1]
    editor = people["editor"][1]
    rule = (await anonymous.post(RULES, json=RULE, headers=editor)).json()
    report = (await anonymous.post(f"{REPORTS}/generate", json=REPORT, headers=editor)).json()

    every_minute = {"name": "Every minute", "report_type": "system", "schedule": "* * * * *"}
    for method, url, body in [
        ("POST", RULES, RULE | {"name": "Mine"}),
        ("DELETE", f"{RULES}/{rule['rule_id']}", None),
        ("POST", f"{REPORTS}/generate", every_minute),
        ("POST", f"{REPORTS}/generate", {"report_id": report["report_id"]}),
        ("DELETE", f"{REPORTS}/{report['report_id']}", None),
    ]:
        _problem(await anonymous.request(method, url, json=body, headers=analyst), 403)
    # Reading stays open to the analyst.
    assert (await anonymous.get(RULES, headers=analyst)).status_code == 200
    assert (await anonymous.get(f"{REPORTS}/{report['report_id']}", headers=analyst)).status_code == 200
    with db_sessions() as session:
        assert session.scalars(sa.select(AlertRule.is_active)).all() == [True]
        assert session.scalars(sa.select(Report.is_active)).all() == [True]
        assert _count(db_sessions, ReportRun) == 0


async def test_only_the_creator_or_an_admin_deactivates_a_rule_or_a_report(
    anonymous: AsyncTestClient, people, db_sessions: sessionmaker[Session]
) -> None:
    editor, other, admin = people["editor"][1], people["other"][1], people["admin"][1]
    rules = [
        (await anonymous.post(RULES, json=RULE | {"name": f"R{i}"}, headers=editor)).json() for i in range(2)
    ]
    weekly = REPORT | {"schedule": "0 6 * * 1"}
    defs = [
        (await anonymous.post(f"{REPORTS}/generate", json=weekly, headers=editor)).json() for _ in range(2)
    ]

    # Another manager may not: 403, nothing changes.
    body = _problem(await anonymous.delete(f"{RULES}/{rules[0]['rule_id']}", headers=other), 403)
    assert "creator" in body["detail"]
    _problem(await anonymous.delete(f"{REPORTS}/{defs[0]['report_id']}", headers=other), 403)
    with db_sessions() as session:
        assert set(session.scalars(sa.select(AlertRule.is_active))) == {True}
        assert set(session.scalars(sa.select(Report.is_active))) == {True}

    # The creator and an admin may.
    assert (await anonymous.delete(f"{RULES}/{rules[0]['rule_id']}", headers=editor)).status_code == 204
    assert (await anonymous.delete(f"{RULES}/{rules[1]['rule_id']}", headers=admin)).status_code == 204
    assert (await anonymous.delete(f"{REPORTS}/{defs[0]['report_id']}", headers=editor)).status_code == 204
    assert (await anonymous.delete(f"{REPORTS}/{defs[1]['report_id']}", headers=admin)).status_code == 204
    with db_sessions() as session:
        assert set(session.scalars(sa.select(AlertRule.is_active))) == {False}
        assert set(session.scalars(sa.select(Report.next_run_at))) == {None}  # no more scheduled runs
    listed = (await anonymous.get(REPORTS, headers=editor)).json()
    assert {r["is_active"] for r in listed} == {False}
    _problem(await anonymous.delete(f"{REPORTS}/{uuid.uuid4()}", headers=admin), 404)


@pytest.mark.parametrize("schedule", ["* * * * *", "*/5 * * * *", "0,30 * * * *", "0-1 9 * * *"])
async def test_a_schedule_firing_more_than_once_an_hour_is_refused(
    anonymous: AsyncTestClient, people, db_sessions: sessionmaker[Session], schedule: str
) -> None:
    editor = people["editor"][1]
    res = await anonymous.post(
        f"{REPORTS}/generate",
        json={"name": "Flood", "report_type": "system", "schedule": schedule},
        headers=editor,
    )
    body = _problem(res, 422)
    assert [e["field"] for e in body["errors"]] == ["schedule"] and "hour" in body["detail"]
    assert _count(db_sessions, Report) == 0
    hourly = await anonymous.post(
        f"{REPORTS}/generate", json=REPORT | {"schedule": "15 * * * *"}, headers=editor
    )
    assert hourly.status_code == 202, hourly.text


async def test_definitions_and_manual_generations_are_capped_per_user(
    anonymous: AsyncTestClient, people, db_sessions: sessionmaker[Session], monkeypatch
) -> None:
    monkeypatch.setattr(report_jobs, "MAX_ACTIVE_REPORTS_PER_USER", 3)
    monkeypatch.setattr(report_jobs, "MAX_MANUAL_RUNS_PER_HOUR", 4)
    editor, other = people["editor"][1], people["other"][1]
    made = [
        (await anonymous.post(f"{REPORTS}/generate", json=REPORT, headers=editor)).json() for _ in range(3)
    ]
    body = _problem(await anonymous.post(f"{REPORTS}/generate", json=REPORT, headers=editor), 429)
    assert "3 active report definitions" in body["detail"]
    assert _count(db_sessions, Report) == 3
    # Another user has a cap of their own; deactivating one makes room again.
    assert (await anonymous.post(f"{REPORTS}/generate", json=REPORT, headers=other)).status_code == 202
    assert (await anonymous.delete(f"{REPORTS}/{made[0]['report_id']}", headers=editor)).status_code == 204
    assert (await anonymous.post(f"{REPORTS}/generate", json=REPORT, headers=editor)).status_code == 202

    for _ in range(4):
        res = await anonymous.post(
            f"{REPORTS}/generate", json={"report_id": made[1]["report_id"]}, headers=editor
        )
        assert res.status_code == 202, res.text
    res = await anonymous.post(
        f"{REPORTS}/generate", json={"report_id": made[2]["report_id"]}, headers=editor
    )
    body = _problem(res, 429)
    assert "4 report generations an hour" in body["detail"] and int(res.headers["retry-after"]) > 0
    assert _count(db_sessions, ReportRun) == 4


async def test_unknown_recipients_all_get_the_same_answer(
    anonymous: AsyncTestClient, people, db_sessions: sessionmaker[Session]
) -> None:
    editor = people["editor"][1]
    viewer_id = people["viewer"][0]
    with db_sessions() as session:
        viewer_email = session.get(User, viewer_id).email
    answers = []
    for recipient in [
        "nobody@example.test",
        viewer_email.upper(),
        str(uuid.uuid4()),
        str(viewer_id),
        "not an address",
    ]:
        for url, body in (
            (f"{REPORTS}/generate", REPORT | {"recipients": [recipient]}),
            (RULES, RULE | {"recipients": [recipient]}),
        ):
            problem = _problem(await anonymous.post(url, json=body, headers=editor), 422)
            assert recipient.lower() not in problem["detail"].lower()
            answers.append((problem["detail"], problem["errors"]))
    assert len(set(map(str, answers))) == 1, answers  # no way to tell an account from none
    assert _count(db_sessions, Report) == _count(db_sessions, AlertRule) == 0
    # A user who can read analytics is a recipient, by id or by email.
    analyst_id = people["analyst"][0]
    res = await anonymous.post(
        f"{REPORTS}/generate", json=REPORT | {"recipients": [str(analyst_id)]}, headers=editor
    )
    assert res.status_code == 202, res.text
