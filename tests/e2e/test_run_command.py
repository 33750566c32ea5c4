"""The README's run command end to end: `thmnayah run` on embedded defaults brings up the API (with
its docs) and the Dagster UI (with the asset graph, dbt models included); the demo's scheduled item
gets published by the sensor with no hand in it, and the content sensor materializes the demo
assets in the warehouse."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from domain.demo import DEMO_USERS
from tests.conftest import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # the whole platform, from a cold start


def _get(url: str, token: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as response:
        return json.loads(response.read())


def _login(api: str, username: str) -> str:
    password = next(p for u, _, p, _ in DEMO_USERS if u == username)
    request = urllib.request.Request(
        f"{api}/api/v1/auth/login",
        data=json.dumps({"login": username, "password": password}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["access_token"]


def _graphql(url: str, query: str) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps({"query": query}).encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.loads(response.read())
    assert "errors" not in body, body
    return body["data"]


def _wait(what: str, check, timeout: float, proc: subprocess.Popen, log: Path):
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"thmnayah run exited ({proc.returncode}) while waiting for {what}:\n{log.read_text()[-5000:]}"
            )
        try:
            result = check()
            if result:
                return result
        except OSError as exc:
            last_error = exc
        time.sleep(2)
    pytest.fail(f"timed out waiting for {what} (last error: {last_error}):\n{log.read_text()[-5000:]}")


def test_run_command_brings_up_the_platform(tmp_path: Path) -> None:
    api_port, ui_port = free_port(), free_port()
    env = {
        **os.environ,
        "THMNAYAH_DEPLOYMENT": "local",
        "THMNAYAH_DATA_DIR": str(tmp_path / "data"),
        "THMNAYAH_API_PORT": str(api_port),
        "THMNAYAH_DAGSTER_PORT": str(ui_port),
    }
    env.pop("THMNAYAH_DATABASE_URL", None)
    log = tmp_path / "run.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "orchestration.cli",
                "run",
                "--schedule-delay",
                "5",
                "--report-delay",
                "20",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    api = f"http://127.0.0.1:{api_port}"
    graphql = f"http://127.0.0.1:{ui_port}/graphql"
    try:
        health = _wait("the API", lambda: _get(f"{api}/api/v1/health"), 120, proc, log)
        assert health["status"] == "ok", health
        docs = _wait("the OpenAPI docs", lambda: _get(f"{api}/api/docs/openapi.json"), 30, proc, log)
        assert "/api/v1/content" in docs["paths"]
        token = _login(api, "editor")  # a documented demo account
        demo = _get(f"{api}/api/v1/content?limit=50", token)["items"]
        assert len(demo) == 6 and any(i["title"].get("ar") for i in demo)
        assert all(i["created_by"] for i in demo)  # written by the demo editor
        # A newcomer's first requests: refused without a token, sent to the dashboard's sign-in page.
        # Neither is a server error, so the demo's "API server errors" alert must stay quiet.
        with pytest.raises(urllib.error.HTTPError) as refused:
            _get(f"{api}/api/v1/content")
        assert refused.value.code == 401
        browser = urllib.request.Request(f"{api}/dashboard", headers={"Accept": "text/html"})
        with urllib.request.urlopen(browser, timeout=10) as response:  # follows the redirect
            assert "/dashboard/login" in response.url

        _wait("the Dagster UI", lambda: _get(f"http://127.0.0.1:{ui_port}/server_info"), 240, proc, log)
        nodes = _graphql(graphql, "{ assetNodes { assetKey { path } groupName description } }")["assetNodes"]
        keys = {"/".join(n["assetKey"]["path"]): n for n in nodes}
        assert {
            "content_items_snapshot",
            "stg_cms__content_items",
            "dim_content",
            "media_metadata",
            "media_renditions",
        } <= set(keys)
        assert all(n["groupName"] and n["description"] for n in nodes)

        def published() -> bool:
            items = _get(f"{api}/api/v1/content?status=published&limit=50", token)["items"]
            return any(i["slug"] == "breaking-news-scheduled" for i in items)

        _wait("the scheduled demo item to be published by the sensor", published, 300, proc, log)

        def materialized() -> bool:
            data = _graphql(
                graphql,
                '{ assetNodes(assetKeys: [{path: ["dim_content"]}]) { assetMaterializations(limit: 1) { runId } } }',
            )
            return bool(data["assetNodes"][0]["assetMaterializations"])

        _wait("the demo assets (dbt mart) to materialize", materialized, 400, proc, log)

        def media_rendered() -> bool:  # the demo's video, its Arabic dub and its photo
            data = _graphql(
                graphql,
                '{ assetNodes(assetKeys: [{path: ["media_renditions"]}]) '
                "{ assetMaterializations(limit: 5) { partition } } }",
            )
            return len({m["partition"] for m in data["assetNodes"][0]["assetMaterializations"]}) >= 3

        _wait("the demo uploads' renditions to materialize", media_rendered, 400, proc, log)

        # Notifications: the welcome broadcast reaches every inbox (the viewer reads Arabic, locale
        # ar-SA), the published breaking story reaches its subscribers, the media uploads their uploader.
        viewer = _login(api, "viewer")
        viewer_id = _get(f"{api}/api/v1/auth/me", viewer)["user_id"]

        def viewer_inbox() -> list[dict] | None:
            items = _get(f"{api}/api/v1/notifications/{viewer_id}/inbox?limit=50", viewer)["items"]
            categories = {i["category"] for i in items}
            return items if {"broadcast", "content.published"} <= categories else None

        items = _wait("the viewer's demo notifications", viewer_inbox, 300, proc, log)
        welcome = next(i for i in items if i["category"] == "broadcast")
        assert welcome["subject"] == "أهلاً بكم في منصة ثمانية" and welcome["direction"] == "rtl"
        editor_id = _get(f"{api}/api/v1/auth/me", token)["user_id"]

        def editor_media_notice() -> bool:
            items = _get(f"{api}/api/v1/notifications/{editor_id}/inbox?limit=50", token)["items"]
            return any(i["category"] == "media.processed" for i in items)

        _wait("the editor's media.processed notification", editor_media_notice, 120, proc, log)
        mail = tmp_path / "data" / "mail" / "notifications"

        def welcome_mailed() -> bool:  # the broadcast's email, delivered by notification_deliveries
            return any(
                "To: editor@demo.thmnayah.local" in p.read_text(errors="replace") for p in mail.glob("*.eml")
            )

        _wait("the welcome broadcast's email to the editor", welcome_mailed, 120, proc, log)

        # Analytics: the demo's tracked events are loaded hour by hour (one range run), rolled up by
        # dbt and published; the weekly report is generated and its files listed; the dashboard is up.
        analyst = _login(api, "analyst")

        def dashboard_has_views() -> dict | None:
            overview = _get(f"{api}/api/v1/analytics/dashboard/overview", analyst)
            return overview if overview["kpis"]["views"] > 0 and overview["top_content"] else None

        overview = _wait("the demo events in the dashboard overview", dashboard_has_views, 300, proc, log)
        assert overview["kpis"]["searches"] > 0 and overview["kpis"]["active_users"] > 0

        def report_generated() -> dict | None:
            reports = _get(f"{api}/api/v1/analytics/reports", analyst)
            done = [r for r in reports if r["name"] == "Weekly content report" and r["last_generated"]]
            return done[0] if done else None

        report = _wait("the demo's weekly report", report_generated, 300, proc, log)
        job = _get(f"{api}/api/v1/analytics/reports/{report['report_id']}", analyst)["jobs"][0]
        assert job["status"] == "completed" and set(job["files"]) == {"csv", "xlsx", "pdf"}
        with urllib.request.urlopen(f"{api}/dashboard/login", timeout=10) as response:
            assert response.status == 200 and b"<form" in response.read()

        # Minutes have passed with the alerts sensor evaluating every 30 s: the refusals above fired
        # no server-error alert, and the system health shows no server error.
        fired = [a["rule_name"] for a in _get(f"{api}/api/v1/analytics/alerts", analyst)]
        assert "API server errors" not in fired, fired
        health = _get(f"{api}/api/v1/analytics/system/health?minutes=60", analyst)
        assert health["overall"]["server_error_rate"] == 0, health["routes"]
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
