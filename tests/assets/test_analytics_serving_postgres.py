"""The analytics load and publish with PostgreSQL as the operational DB (the warehouse stays chDB):
the event lake and PostgreSQL's route minutes and processing jobs -> `analytics_raw_events` and
`analytics_ops_raw` -> the dbt event models -> `analytics_serving_tables` in PostgreSQL -> the
analytics API of a PostgreSQL-backed app, with exact figures.

The stream is the known one of test_analytics_events.py (2026-03-01, hours 10 and 11, its figures
worked out by hand there) with real ids: its two content ids and two user ids become rows of the
PostgreSQL database, and one anonymous view of a content id that is not a UUID (an item the CMS does
not know) is added, which the publish must leave out.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa
from litestar.testing import AsyncTestClient
from sqlalchemy.orm import Session

from assets.analytics import event_models_assets
from assets.analytics_events import analytics_raw_events, raw_events_match_lake
from assets.analytics_ops import analytics_ops_raw
from assets.analytics_serving import analytics_serving_tables, serving_tables_match_marts
from domain import content
from domain.analytics.live import RouteFigures, add_routes
from domain.content import NewContent
from domain.db import sync_engine
from domain.migrate import upgrade
from domain.schema import ContentMetricsDaily, SearchAnalyticsDaily, UserEngagementDaily
from domain.settings import Settings
from orchestration.deployment import build_client, build_resources
from serving.app import create_app
from tests.assets.test_analytics_events import (
    C1,
    C2,
    FILE_A,
    FILE_B,
    FILE_C,
    H10,
    H11,
    at,
    event,
    write_events,
)
from tests.conftest import record_test_upload
from tests.serving.conftest import bearer, make_user, mint_token

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

DAY = date(2026, 3, 1)
API = "/api/v1/analytics"
ROUTE = "GET /api/v1/content/{content_id}"


@pytest.fixture
def on_postgres(postgres_url: str, data_dir: Path) -> Settings:
    """The embedded deployment (chDB, local object store) with a migrated PostgreSQL database."""
    upgrade(postgres_url)
    return Settings(deployment="local", data_dir=data_dir, database_url=postgres_url)


def _seed(url: str) -> dict[str, uuid.UUID]:
    """The stream's two items and two users, and an hour of route minutes and processing jobs."""
    engine = sync_engine(url)
    with Session(engine) as session, session.begin():
        c1 = content.create_content(
            session, NewContent(type="video", title={"ar": "تلاوة", "en": "Recitation"})
        )
        c2 = content.create_content(session, NewContent(type="article", title={"en": "Notes"}))
        ids = {C1: c1.id, C2: c2.id}
        fast, slow = RouteFigures(), RouteFigures()
        for ms in (2.0, 2.0, 4.0):
            fast.record(200, ms)
        slow.record(500, 40.0)
        add_routes(
            session, {(H10 + timedelta(minutes=1), ROUTE): fast, (H10 + timedelta(minutes=2), ROUTE): slow}
        )
        for n, (status, seconds) in enumerate([("completed", 30), ("failed", 5)]):
            _, job = record_test_upload(session, kind="video", mime="", size=1, filename=f"f{n}")
            job.status, job.started_at = status, H10 + timedelta(minutes=10 + n)
            job.finished_at = job.started_at + timedelta(seconds=seconds)
    engine.dispose()
    ids["u1"] = make_user(url, "stream-u1", ["viewer"], preferences={"locale": "ar"})
    ids["u2"] = make_user(url, "stream-u2", ["analyst"], preferences={"locale": "en"})
    return ids


def _with_ids(rows: list[dict[str, Any]], ids: dict[str, uuid.UUID]) -> list[dict[str, Any]]:
    return [
        {k: str(ids[v]) if k in ("content_id", "user_id") and v in ids else v for k, v in row.items()}
        for row in rows
    ]


def _serving_tables(url: str) -> dict[str, list[tuple]]:
    engine = sync_engine(url)
    c, u, s = ContentMetricsDaily, UserEngagementDaily, SearchAnalyticsDaily
    with Session(engine) as session:
        tables = {
            "content": session.execute(
                sa.select(
                    c.content_id,
                    c.date,
                    c.view_count,
                    c.unique_viewers,
                    c.average_watch_time,
                    c.completion_rate,
                    c.engagement_score,
                    c.share_count,
                    c.favorite_count,
                    c.comment_count,
                ).order_by(c.view_count.desc())
            ).all(),
            "users": session.execute(
                sa.select(
                    u.user_id,
                    u.date,
                    u.session_count,
                    u.total_session_time,
                    u.page_views,
                    u.content_interactions,
                    u.search_queries,
                    u.downloads,
                    u.shares,
                    u.last_activity,
                ).order_by(u.total_session_time)
            ).all(),
            "search": session.execute(
                sa.select(
                    s.query_text,
                    s.date,
                    s.language,
                    s.user_type,
                    s.search_count,
                    s.result_count,
                    s.click_count,
                    s.click_through_rate,
                    s.average_position,
                    s.zero_result_count,
                    s.zero_result_rate,
                ).order_by(s.query_text)
            ).all(),
        }
        updated = session.scalars(sa.select(c.updated_at)).all()
    engine.dispose()
    return {name: [tuple(r) for r in rows] for name, rows in tables.items()} | {"updated_at": updated}


def _checks(*results: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for r in results for e in r.get_asset_check_evaluations()}


def _metadata(result: dg.ExecuteInProcessResult, name: str) -> dict[str, Any]:
    """An asset's metadata (a range run records the same on each of its partitions)."""
    events = [e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == name]
    assert events, name
    return {k: v.value for k, v in events[0].materialization.metadata.items()}


async def test_the_load_and_publish_run_on_postgresql_and_the_api_serves_the_figures(on_postgres: Settings):
    url = on_postgres.database_url
    assert sa.engine.make_url(url).get_backend_name() == "postgresql"
    ids = _seed(url)
    c1, c2, u1, u2 = ids[C1], ids[C2], ids["u1"], ids["u2"]
    resources = build_resources(on_postgres)
    assert build_client(resources["database"]).backend == "postgresql"
    store = build_client(resources["object_store"])
    write_events(store, H10, _with_ids(FILE_A, ids))
    write_events(store, H10, _with_ids(FILE_B, ids))
    write_events(store, H11, _with_ids(FILE_C, ids))
    write_events(store, H10, [event("e17", "view", "10:45", content_id="legacy-42", session_id="s8")])

    # Both hours in one run, as a backfill (or the hourly job, hour by hour) does; then the day's models
    # and the publish, as `analytics_models_job` does.
    load = dg.materialize(
        [analytics_raw_events, raw_events_match_lake, analytics_ops_raw],
        tags={
            "dagster/asset_partition_range_start": "2026-03-01-10:00",
            "dagster/asset_partition_range_end": "2026-03-01-11:00",
        },
        resources=resources,
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert load.success
    assert _metadata(load, "analytics_raw_events")["dagster/row_count"] == 16  # 15 + the legacy view
    routes, jobs = (
        _metadata(load, "analytics_raw_route_minutes"),
        _metadata(load, "analytics_raw_processing_jobs"),
    )
    assert (
        routes["dagster/row_count"],
        routes["requests"],
        jobs["dagster/row_count"],
        jobs["failed_jobs"],
    ) == (
        2,
        4,
        2,
        1,
    )

    def publish(*models: dg.AssetsDefinition) -> dg.ExecuteInProcessResult:
        day = dg.materialize(
            [*models, analytics_serving_tables, serving_tables_match_marts],
            partition_key=DAY.isoformat(),
            resources=resources,
            instance=dg.DagsterInstance.ephemeral(),
        )
        assert day.success
        checks = _checks(load, day)
        assert {"raw_events_match_lake", "serving_tables_match_marts"} <= set(checks), checks
        assert all(checks.values()), checks
        return day

    day = publish(event_models_assets(on_postgres))
    published = _metadata(day, "analytics_serving_tables")
    assert published == {
        "days": "2026-03-01 .. 2026-03-02 (exclusive)",
        "dagster/row_count": 6,
        "rows/analytics_content_metrics": 2,
        "rows/analytics_user_engagement": 2,
        "rows/analytics_search": 2,
        "skipped_non_uuid_ids": 1,  # the legacy item's row of the content mart
    }

    # The serving tables in PostgreSQL hold the marts' figures (those of test_analytics_events.py).
    tables = _serving_tables(url)
    assert tables["content"] == [
        # c1: 3 views by 2 viewers, watch 60 s and 300 s -> 180; score 3 + 2 + 3 + 4 + 5 = 17.
        (c1, DAY, 3, 2, 180, 0.5, 17.0, 1, 1, 1),
        (c2, DAY, 1, 1, 0, 0.0, 1.0, 0, 0, 0),
    ]
    assert tables["users"] == [
        (u1, DAY, 2, 3240, 2, 3, 1, 0, 1, at("11:25")),
        (u2, DAY, 1, 3300, 1, 0, 2, 1, 0, at("11:05")),
    ]
    assert tables["search"] == [
        ("quran recitation", DAY, "en", "registered", 2, 4.0, 1, 0.5, 2.0, 0, 0.0),
        ("xyz", DAY, "en", "registered", 1, 0.0, 0, 0.0, None, 1, 1.0),
    ]
    assert all(isinstance(t, datetime) and t.utcoffset() == timedelta(0) for t in tables["updated_at"])
    # PostgreSQL's route minutes and jobs reached the warehouse marts.
    with build_client(resources["warehouse"]).client() as client:
        system = client.query(
            "SELECT route, requests, server_errors, p95_latency_ms"
            f" FROM `{on_postgres.warehouse_database}`.fct_system_metrics_daily"
        ).result_rows
        processing = client.query(
            "SELECT media_kind, jobs, completed, failed"
            f" FROM `{on_postgres.warehouse_database}`.fct_processing_jobs_daily"
        ).result_rows
    assert [tuple(r) for r in system] == [(ROUTE, 4, 1, 50.0)]
    assert [tuple(r) for r in processing] == [("video", 2, 1, 1)]

    # Publishing the day again replaces its rows: the same figures, no duplicate.
    assert _metadata(publish(), "analytics_serving_tables") == published
    again = _serving_tables(url)
    assert {k: v for k, v in again.items() if k != "updated_at"} == {
        k: v for k, v in tables.items() if k != "updated_at"
    }
    assert min(again["updated_at"]) > max(tables["updated_at"])

    # The PostgreSQL-backed app answers them.
    app = create_app(on_postgres)
    async with AsyncTestClient(app=app) as client:
        headers = bearer(mint_token(app, url, u2))  # u2 is an analyst

        async def get(path: str, **params: str) -> dict[str, Any]:
            res = await client.get(f"{API}{path}", params=params, headers=headers)
            assert res.status_code == 200, (path, res.text)
            return res.json()

        health = await get("/system/health")
        period = {"start_date": DAY.isoformat(), "end_date": DAY.isoformat()}
        assert health["process"]["database"] == "postgresql"
        c1_metrics = await get(f"/content/{c1}/metrics", **period)
        overview = await get("/dashboard/overview", **period)
        by_role = await get("/users/engagement", segment="role", **period)
        search = await get("/search/insights", **period)

    assert c1_metrics["title"] == {"ar": "تلاوة", "en": "Recitation"}
    assert c1_metrics["totals"] == {
        "views": 3,
        "unique_viewers": 2,
        "average_watch_time": 180,
        "completion_rate": 0.5,
        "engagement_score": 17.0,
        "shares": 1,
        "favorites": 1,
        "comments": 1,
    }
    assert [(d["date"], d["views"]) for d in c1_metrics["daily"]] == [("2026-03-01", 3)]

    kpis = overview["kpis"]
    assert kpis == {
        "views": 4,
        "unique_viewers": 3,
        "average_watch_time": 120,  # (180 x 2 + 0 x 1) / 3 viewers
        "completion_rate": pytest.approx(1 / 3),  # (0.5 x 2 + 0 x 1) / 3
        "engagement_score": 18.0,
        "active_users": 2,
        "sessions": 3,
        "average_session_time": 2180,  # (3240 + 3300) / 3
        "page_views": 3,
        "searches": 3,
        "zero_result_rate": pytest.approx(1 / 3),
        "click_through_rate": pytest.approx(1 / 3),
    }
    assert [(t["content_id"], t["views"]) for t in overview["top_content"]] == [(str(c1), 3), (str(c2), 1)]
    assert overview["daily"] == [{"date": "2026-03-01", "views": 4, "active_users": 2}]

    roles = {s["segment"]: s for s in by_role["segments"]}
    assert set(roles) == {"viewer", "analyst"}
    assert {k: roles["viewer"][k] for k in ("users", "sessions", "total_session_time", "shares")} == {
        "users": 1,
        "sessions": 2,
        "total_session_time": 3240,
        "shares": 1,
    }
    assert (roles["analyst"]["search_queries"], roles["analyst"]["downloads"]) == (2, 1)

    assert [(q["query"], q["searches"], q["clicks"]) for q in search["popular_queries"]] == [
        ("quran recitation", 2, 1),
        ("xyz", 1, 0),
    ]
    assert [q["query"] for q in search["zero_result_queries"]] == ["xyz"]
