"""`/api/v1/analytics/reports`: report definitions and their jobs through the API alone, on each
operational DB (the rendering by `analytics_report_files` is tested in
tests/assets/test_analytics_reports_asset.py). A definition is saved or queued, listed, read with its
latest jobs; a job is read and its files are 404 until rendered; bad definitions are problem details
naming the field and store nothing; reading needs `analytics:read` (the analyst), saving and generating
`analytics:manage` (an editor; see test_security_analytics_management.py for the limits)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from litestar.testing import AsyncTestClient
from sqlalchemy.orm import Session, sessionmaker

from domain.schema import Report, ReportRun
from tests.serving.analytics.conftest import assert_problem
from tests.serving.conftest import bearer

API = "/api/v1/analytics/reports"
DEFAULT_CONFIGURATION = {
    "formats": ["csv", "xlsx", "pdf"],
    "language": "en",
    "period": "last_7_days",
    "top": 20,
}


def _counts(db_sessions: sessionmaker[Session]) -> tuple[int, int]:
    with db_sessions() as session:
        return (
            session.scalar(sa.select(sa.func.count()).select_from(Report)),
            session.scalar(sa.select(sa.func.count()).select_from(ReportRun)),
        )


async def test_a_definition_is_saved_queued_listed_and_read_with_its_jobs(
    anonymous: AsyncTestClient, analyst, editor, new_user, db_sessions: sessionmaker[Session]
) -> None:
    _, reader = analyst  # reads
    editor_id, headers = editor  # writes
    manager_id, _ = new_user("manager", ["analyst"])

    # Saved only (run_now false): no job, the next time of its schedule (Mondays 06:00 UTC).
    before = datetime.now(UTC)
    res = await anonymous.post(
        f"{API}/generate",
        json={
            "name": "Weekly content",
            "report_type": "content",
            "description": "For the editors",
            "schedule": "0  6 * * 1",
            "recipients": ["Manager@Example.test"],
            "run_now": False,
        },
        headers=headers,
    )
    assert res.status_code == 202, res.text
    saved = res.json()
    assert (saved["status"], saved["job_id"]) == ("saved", None)
    next_run = datetime.fromisoformat(saved["next_run_at"])
    assert (next_run.weekday(), next_run.hour, next_run.minute) == (0, 6, 0)
    assert before < next_run <= before + timedelta(days=7)
    weekly_id = saved["report_id"]
    assert _counts(db_sessions) == (1, 0)

    # A second, on-demand definition, queued at once.
    res = await anonymous.post(
        f"{API}/generate",
        json={"name": "Searches", "report_type": "search", "configuration": {"formats": ["json"]}},
        headers=headers,
    )
    assert res.status_code == 202, res.text
    searches = res.json()
    assert searches["status"] == "queued" and searches["next_run_at"] is None

    listed = (await anonymous.get(API, headers=reader)).json()
    assert [r["report_id"] for r in listed] == [searches["report_id"], weekly_id]  # newest first
    weekly = listed[1]
    assert datetime.fromisoformat(weekly.pop("created_at")).tzinfo is not None
    assert weekly == {
        "report_id": weekly_id,
        "name": "Weekly content",
        "description": "For the editors",
        "report_type": "content",
        "configuration": DEFAULT_CONFIGURATION,
        "schedule": "0 6 * * 1",  # normalized
        "recipients": [str(manager_id)],  # the email, resolved to the user's id
        "is_active": True,
        "last_generated": None,
        "next_run_at": saved["next_run_at"],
        "jobs": [],  # the list leaves jobs out
    }
    assert listed[0]["configuration"]["formats"] == ["json"]
    newest = (await anonymous.get(API, params={"limit": 1}, headers=reader)).json()
    assert [r["report_id"] for r in newest] == [searches["report_id"]]
    assert_problem(await anonymous.get(API, params={"limit": 0}, headers=reader), 400, "limit")

    # Generating the saved definition now, twice: two queued manual jobs over the last 7 whole days.
    jobs = []
    for _ in range(2):
        today = datetime.now(UTC).date()
        res = await anonymous.post(f"{API}/generate", json={"report_id": weekly_id}, headers=headers)
        assert res.status_code == 202, res.text
        queued = res.json()
        assert (queued["report_id"], queued["status"]) == (weekly_id, "queued")
        jobs.append((queued["job_id"], today))
    detail = (await anonymous.get(f"{API}/{weekly_id}", headers=reader)).json()
    assert [j["job_id"] for j in detail["jobs"]] == [jobs[1][0], jobs[0][0]]  # newest first
    assert detail | {"jobs": []} == weekly | {"created_at": detail["created_at"]}

    job_id, today = jobs[0]
    job = (await anonymous.get(f"{API}/jobs/{job_id}", headers=reader)).json()
    assert datetime.fromisoformat(job.pop("created_at")).tzinfo is not None
    assert date.fromisoformat(job["period_end"]) in (today, today + timedelta(days=1))  # midnight
    assert date.fromisoformat(job["period_end"]) - date.fromisoformat(job["period_start"]) == timedelta(7)
    assert job == {k: v for k, v in detail["jobs"][1].items() if k != "created_at"}  # as listed
    assert {k: job[k] for k in ("job_id", "report_id", "status", "trigger")} == {
        "job_id": job_id,
        "report_id": weekly_id,
        "status": "queued",
        "trigger": "manual",
    }
    assert (job["started_at"], job["finished_at"], job["error"], job["files"]) == (None, None, None, {})
    # Nothing is rendered yet: its files are 404s that say why.
    body = assert_problem(await anonymous.get(f"{API}/jobs/{job_id}/files/csv", headers=reader), 404)
    assert "status: queued" in body["detail"]

    with db_sessions() as session:
        assert session.get(Report, uuid.UUID(weekly_id)).created_by == editor_id
        assert set(session.scalars(sa.select(ReportRun.requested_by))) == {editor_id}
    assert _counts(db_sessions) == (2, 3)


INVALID: list[tuple[dict[str, Any], int, str]] = [
    ({"report_type": "content"}, 422, "name"),
    ({"name": "   ", "report_type": "content"}, 422, "name"),
    ({"name": "Weekly"}, 422, "report_type"),
    ({"name": "Weekly", "report_type": "finance"}, 400, "report_type"),
    ({"name": "Weekly", "report_type": "user", "schedule": "61 * * * *"}, 422, "schedule"),
    ({"name": "Weekly", "report_type": "user", "configuration": {"language": "fr"}}, 422, "configuration.language"),
    ({"name": "Weekly", "report_type": "user", "configuration": {"period": "yesterday"}}, 422, "configuration.period"),
    ({"name": "Weekly", "report_type": "user", "configuration": {"top": 0}}, 422, "configuration.top"),
    ({"name": "Weekly", "report_type": "user", "configuration": {"colour": "red"}}, 422, "configuration.colour"),
    ({"name": "Weekly", "report_type": "user", "recipients": ["nobody@example.test"]}, 422, "recipients[0]"),
    ({"name": "Weekly", "report_type": "user", "priority": "high"}, 400, "priority"),
    ({"report_id": "not-a-uuid"}, 400, "report_id"),
]  # fmt: skip


async def test_an_invalid_definition_or_unknown_report_is_a_problem_and_stores_nothing(
    anonymous: AsyncTestClient, editor, db_sessions: sessionmaker[Session]
) -> None:
    _, headers = editor
    wrong = []
    for payload, status, field in INVALID:  # one app and database for all the cases
        try:
            assert_problem(
                await anonymous.post(f"{API}/generate", json=payload, headers=headers), status, field
            )
        except AssertionError as exc:
            wrong.append(f"{payload}: {exc}")
    assert wrong == []
    unknown = uuid.uuid4()
    res = await anonymous.post(f"{API}/generate", json={"report_id": str(unknown)}, headers=headers)
    assert str(unknown) in assert_problem(res, 404)["detail"]
    assert_problem(await anonymous.get(f"{API}/{unknown}", headers=headers), 404)
    assert_problem(await anonymous.get(f"{API}/jobs/{unknown}", headers=headers), 404)
    assert_problem(await anonymous.get(f"{API}/jobs/{unknown}/files/pdf", headers=headers), 404)
    assert _counts(db_sessions) == (0, 0)


async def test_a_viewer_may_not_read_or_generate_reports(
    anonymous: AsyncTestClient, token_for, editor, db_sessions: sessionmaker[Session]
) -> None:
    _, headers = editor
    queued = (
        await anonymous.post(
            f"{API}/generate", json={"name": "Daily", "report_type": "system"}, headers=headers
        )
    ).json()
    viewer = bearer(token_for("viewer"))
    for method, url, body in [
        ("POST", f"{API}/generate", {"name": "Mine", "report_type": "content"}),
        ("POST", f"{API}/generate", {"report_id": queued["report_id"]}),
        ("GET", API, None),
        ("GET", f"{API}/{queued['report_id']}", None),
        ("GET", f"{API}/jobs/{queued['job_id']}", None),
        ("GET", f"{API}/jobs/{queued['job_id']}/files/csv", None),
    ]:
        res = await anonymous.request(method, url, json=body, headers=viewer)
        assert res.status_code == 403, (method, url, res.text)
        assert res.headers["content-type"].startswith("application/problem+json")
        res = await anonymous.request(method, url, json=body)
        assert res.status_code == 401, (method, url, res.text)
    assert _counts(db_sessions) == (1, 1)
