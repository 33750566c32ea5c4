"""Tracked events, all the way: the tracking API -> the lake -> `raw_events` -> the dbt marts (on chDB,
through the same dbt-clickhouse models as production) -> the serving tables -> the analytics API,
with the exact figures of a known event stream; loading the hours again changes no total.

The stream falls in the two hours before the current one (H1, H2), as a client would send it now:
  u1 (viewer, Arabic UI)   H1+00 view c1, +05 progress c1 60/300 s, +10 favorite c1,
                           +12 search "أخبار" (0 results, ar), H2+00 view c2, H2+01 share c1
  u2 (analyst, English UI) H1+20 view c1, +25 complete c1 (300 s), +30 search "News" (4 results, en),
                           +31 click "news" at position 2, +40 comment c1
u1's H2 events come 48 minutes after H1+12: a second session.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
from litestar.testing import AsyncTestClient
from sqlalchemy.orm import Session

from domain import content
from domain.content import NewContent
from domain.db import sync_engine
from domain.migrate import upgrade
from domain.settings import Settings
from orchestration.definitions import build_definitions
from serving.app import create_app
from tests.serving.conftest import bearer, make_user, mint_token

TRACK = "/api/v1/analytics/events/track"
API = "/api/v1/analytics"


def _stream(h1: datetime, c1: str, c2: str) -> dict[str, list[dict[str, Any]]]:
    h2 = h1 + timedelta(hours=1)

    def ev(kind: str, at: datetime, **fields: Any) -> dict[str, Any]:
        return {
            "type": kind,
            "event_id": str(uuid.uuid4()),
            "occurred_at": at.isoformat(),
            "platform": "web",
            **fields,
        }

    m = lambda minutes: timedelta(minutes=minutes)  # noqa: E731
    return {
        "u1": [
            ev("view", h1, content_id=c1, language="ar", session_id="s1"),
            ev("media_progress", h1 + m(5), content_id=c1, position_s=60, duration_s=300, language="ar"),
            ev("favorite", h1 + m(10), content_id=c1, language="ar"),
            ev("search", h1 + m(12), query="أخبار", result_count=0, language="ar"),
            ev("view", h2, content_id=c2, language="ar"),
            ev("share", h2 + m(1), content_id=c1, channel="whatsapp", language="ar"),
        ],
        "u2": [
            ev("view", h1 + m(20), content_id=c1, language="en"),
            ev("media_complete", h1 + m(25), content_id=c1, duration_s=300, language="en"),
            ev("search", h1 + m(30), query="News", result_count=4, language="en"),
            ev("search_click", h1 + m(31), query="news", content_id=c1, clicked_position=2, language="en"),
            ev("comment", h1 + m(40), content_id=c1, language="en"),
        ],
    }


def _materialize(settings: Settings, first: str, last: str) -> None:
    """The production chain: `analytics_events_job` over the hours, then the run that
    `analytics_days_sensor` requests once it succeeds (`analytics_models_job` over their days)."""
    definitions = build_definitions(settings)
    with dg.DagsterInstance.ephemeral() as instance:
        load = definitions.resolve_job_def("analytics_events_job").execute_in_process(
            tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last},
            instance=instance,
        )
        assert load.success
        sensor = definitions.resolve_sensor_def("analytics_days_sensor")
        request = sensor(
            dg.build_run_status_sensor_context(
                sensor_name=sensor.name,
                dagster_event=load.get_run_success_event(),
                dagster_instance=instance,
                dagster_run=load.dagster_run,
            )
        )
        assert isinstance(request, dg.RunRequest) and request.job_name == "analytics_models_job"
        models = definitions.resolve_job_def(request.job_name).execute_in_process(
            partition_key=request.partition_key, tags=request.tags, instance=instance
        )
        assert models.success
    checks = {
        e.check_name: e.passed
        for e in [*load.get_asset_check_evaluations(), *models.get_asset_check_evaluations()]
    }
    assert {"raw_events_match_lake", "serving_tables_match_marts"} <= set(checks), checks
    assert all(checks.values()), checks


async def _read(app_settings: Settings, token: str, paths: list[str]) -> list[dict[str, Any]]:
    async with AsyncTestClient(app=create_app(app_settings)) as client:
        out = []
        for path in paths:
            res = await client.get(path, headers=bearer(token))
            assert res.status_code == 200, (path, res.text)
            out.append(res.json())
        return out


async def test_tracked_events_reach_the_marts_and_the_api_with_exact_figures(data_dir: Path, sqlite_url: str):
    upgrade(sqlite_url)
    settings = Settings(deployment="local", data_dir=data_dir, database_url=sqlite_url)
    engine = sync_engine(sqlite_url)
    with Session(engine) as session, session.begin():
        c1 = content.create_content(
            session, NewContent(type="video", title={"ar": "وثائقي", "en": "Documentary"})
        )
        c2 = content.create_content(session, NewContent(type="article", title={"en": "Notes"}))
        c1_id, c2_id = str(c1.id), str(c2.id)
    engine.dispose()
    u1 = make_user(sqlite_url, "viewer-u1", ["viewer"], preferences={"locale": "ar-SA"})
    u2 = make_user(sqlite_url, "analyst-u2", ["analyst"], preferences={"locale": "en"})

    now = datetime.now(UTC)
    h1 = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    stream = _stream(h1, c1_id, c2_id)
    app = create_app(settings)
    async with AsyncTestClient(app=app) as client:
        tokens = {"u1": mint_token(app, sqlite_url, u1), "u2": mint_token(app, sqlite_url, u2)}
        for who, batch in stream.items():
            res = await client.post(TRACK, json={"events": batch}, headers=bearer(tokens[who]))
            assert res.json() == {"accepted": len(batch), "duplicates": 0, "rejected": []}
        # A client retry of a whole batch: nothing new.
        res = await client.post(TRACK, json={"events": stream["u2"]}, headers=bearer(tokens["u2"]))
        assert res.json() == {"accepted": 0, "duplicates": 5, "rejected": []}
    # The app stopped: its buffer is in the lake, its live counters in the DB.

    first, last = f"{h1:%Y-%m-%d-%H}:00", f"{h1 + timedelta(hours=1):%Y-%m-%d-%H}:00"
    _materialize(settings, first, last)

    start, end = h1.date().isoformat(), now.date().isoformat()
    period = f"start_date={start}&end_date={end}"
    paths = [
        f"{API}/content/{c1_id}/metrics?{period}",
        f"{API}/dashboard/overview?{period}",
        f"{API}/search/insights?{period}",
        f"{API}/users/engagement?{period}&segment=role",
        f"{API}/users/engagement?{period}&segment=language",
        f"{API}/system/health?minutes=60",
    ]
    analyst_token = mint_token(create_app(settings), sqlite_url, u2)
    c1_metrics, overview, search, by_role, by_language, health = await _read(settings, analyst_token, paths)

    # c1: views by u1 and u2; u2 completed (300 s), u1 reached 60 s -> average 180 s; completion 1/2;
    # engagement 2 views + 2 x 1 completion + 3 x 1 favorite + 4 x 1 comment + 5 x 1 share = 16.
    assert c1_metrics["title"] == {"ar": "وثائقي", "en": "Documentary"}
    assert c1_metrics["totals"] == {
        "views": 2,
        "unique_viewers": 2,
        "average_watch_time": 180,
        "completion_rate": 0.5,
        "engagement_score": 16.0,
        "shares": 1,
        "favorites": 1,
        "comments": 1,
    }
    assert sum(d["views"] for d in c1_metrics["daily"]) == 2

    kpis = overview["kpis"]
    assert (kpis["views"], kpis["unique_viewers"], kpis["active_users"], kpis["searches"]) == (3, 3, 2, 2)
    assert (kpis["sessions"], kpis["zero_result_rate"], kpis["click_through_rate"]) == (3, 0.5, 0.5)
    # Sessions: u1 00..12 min (720 s) and H2 00..01 (60 s); u2 20..40 min (1200 s) -> 1980 s / 3.
    assert kpis["average_session_time"] == 660
    assert [(t["content_id"], t["views"]) for t in overview["top_content"]] == [(c1_id, 2), (c2_id, 1)]
    assert overview["live"]["total_events"] == 11  # counted as received, duplicates not
    assert overview["live"]["events"]["view"] == 3

    assert search["totals"]["searches"] == 2 and search["totals"]["by_language"] == {"ar": 1, "en": 1}
    assert [(q["query"], q["language"], q["searches"], q["clicks"]) for q in search["popular_queries"]] == [
        ("news", "en", 1, 1),
        ("اخبار", "ar", 1, 0),  # normalized: the hamza on the alef is folded
    ]
    assert [q["query"] for q in search["zero_result_queries"]] == ["اخبار"]
    assert search["popular_queries"][0]["average_position"] == 2.0

    roles = {s["segment"]: s for s in by_role["segments"]}
    assert set(roles) == {"viewer", "analyst"}
    assert (roles["viewer"]["sessions"], roles["viewer"]["shares"], roles["viewer"]["search_queries"]) == (
        2,
        1,
        1,
    )
    assert (roles["analyst"]["sessions"], roles["analyst"]["content_interactions"]) == (1, 1)
    assert {s["segment"]: s["users"] for s in by_language["segments"]} == {"ar": 1, "en": 1}

    tracked = {r["route"]: r for r in health["routes"]}["POST /api/v1/analytics/events/track"]
    assert tracked["requests"] == 3 and tracked["server_error_rate"] == 0.0
    assert tracked["p95_ms"] is not None

    # Loading the same hours again (a backfill, a retry) moves no figure.
    _materialize(settings, first, last)
    again = await _read(settings, analyst_token, paths[:5])
    assert again[1]["live"]["total_events"] == 11
    for before in (c1_metrics, again[0]):
        assert before.pop("updated_at")  # when the day was last published: moves, the figures do not
    for before in (overview, again[1]):
        before.pop("live"), before.pop("period_as_of")
    assert again == [c1_metrics, overview, search, by_role, by_language]
