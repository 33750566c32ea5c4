"""Live minute counters and route minutes add up across flushes (as several API processes would), and
the dashboard queries read them and the serving tables on both operational databases."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from domain.analytics import dashboard
from domain.analytics.health import bucket_index
from domain.analytics.live import RouteFigures, add_live, add_routes
from domain.db import sync_engine
from domain.schema import ContentMetricsDaily, SearchAnalyticsDaily, UserEngagementDaily

NOW = datetime(2026, 12, 4, 10, 30, 20, tzinfo=UTC)
MINUTE = NOW.replace(second=0)


@pytest.fixture
def session(migrated_url: str):
    engine = sync_engine(migrated_url)
    with Session(engine) as s:
        yield s
    engine.dispose()


def _figures(*samples: tuple[int, float]) -> RouteFigures:
    figures = RouteFigures()
    for status, ms in samples:
        figures.record(status, ms)
    return figures


def test_flushes_from_two_processes_add_up_and_the_dashboard_reads_them(session: Session):
    route = "GET /api/v1/content/{content_id}"
    for process in range(2):
        with session.begin():
            add_live(
                session,
                {
                    (MINUTE, "events.view"): 3.0,
                    (MINUTE - timedelta(minutes=1), "events.search"): 1.0 + process,
                },
            )
            add_routes(session, {(MINUTE, route): _figures((200, 4.0), (404, 1.0), (500, 40.0 + process))})
    live = dashboard.live(session, NOW)
    assert live["events"] == {"search": 3, "view": 6}
    assert live["total_events"] == 9
    assert live["views_per_minute"][-1] == {"minute": MINUTE.isoformat(), "views": 6}
    assert len(live["views_per_minute"]) == dashboard.LIVE_SERIES_MINUTES

    health = dashboard.system_health(session, NOW, minutes=5)
    (row,) = health["routes"]
    assert row["route"] == route and row["requests"] == 6
    assert row["client_error_rate"] == row["server_error_rate"] == pytest.approx(2 / 6)
    assert row["max_ms"] == 41.0
    assert row["average_ms"] == pytest.approx((4 + 1 + 40 + 4 + 1 + 41) / 6)
    # 4 of 6 requests took <= 5 ms; the p95 falls in the bucket of the 40 ms ones (30 < x <= 50).
    assert row["p50_ms"] == 5 and row["p95_ms"] == 50
    assert health["overall"]["requests"] == 6
    assert sum(m["requests"] for m in health["per_minute"]) == 6
    assert bucket_index(40.0) == bucket_index(50.0) != bucket_index(30.0)


def test_the_dashboard_weights_rates_and_handles_an_empty_period(session: Session):
    empty = dashboard.overview(session, date(2026, 12, 1), date(2026, 12, 4), NOW)
    assert empty["kpis"]["views"] == 0 and empty["kpis"]["completion_rate"] is None
    assert [d["views"] for d in empty["daily"]] == [0, 0, 0]

    session.rollback()  # end the read's transaction
    item, user = uuid.uuid4(), uuid.uuid4()
    with session.begin():
        for day, views, viewers, rate in ((date(2026, 12, 1), 10, 8, 0.5), (date(2026, 12, 2), 4, 2, 1.0)):
            session.add(
                ContentMetricsDaily(
                    content_id=item,
                    date=day,
                    view_count=views,
                    unique_viewers=viewers,
                    average_watch_time=100,
                    completion_rate=rate,
                    engagement_score=views,
                )
            )
        session.add(
            UserEngagementDaily(user_id=user, date=date(2026, 12, 1), session_count=2, total_session_time=300)
        )
        session.add(
            UserEngagementDaily(user_id=user, date=date(2026, 12, 2), session_count=1, total_session_time=60)
        )
        for lang, n, zero, clicks in (("ar", 4, 4, 0), ("en", 6, 0, 3)):
            session.add(
                SearchAnalyticsDaily(
                    query_text=f"q-{lang}",
                    date=date(2026, 12, 2),
                    language=lang,
                    user_type="registered",
                    search_count=n,
                    click_count=clicks,
                    zero_result_count=zero,
                    result_count=2.0,
                    average_position=1.5 if clicks else None,
                )
            )
    kpis = dashboard.overview(session, date(2026, 12, 1), date(2026, 12, 4), NOW)["kpis"]
    # Completion over the period: (0.5 x 8 + 1.0 x 2) / 10 viewer-days, not the mean of 0.5 and 1.0.
    assert kpis["completion_rate"] == pytest.approx(0.6)
    assert (kpis["views"], kpis["unique_viewers"], kpis["active_users"], kpis["sessions"]) == (14, 10, 1, 3)
    assert kpis["average_session_time"] == 120
    assert kpis["zero_result_rate"] == pytest.approx(0.4) and kpis["click_through_rate"] == pytest.approx(0.3)
    insights = dashboard.search_insights(session, date(2026, 12, 1), date(2026, 12, 4))
    assert [q["query"] for q in insights["zero_result_queries"]] == ["q-ar"]
    assert insights["rising_queries"][0]["recent"] >= 1
    by_activity = dashboard.users_engagement(session, date(2026, 12, 1), date(2026, 12, 4), "activity")
    assert [(s["segment"], s["users"], s["sessions"]) for s in by_activity["segments"]] == [
        ("regular (2-6 days)", 1, 3)
    ]
    with pytest.raises(ValueError, match="unknown segment"):
        dashboard.users_engagement(session, date(2026, 12, 1), date(2026, 12, 4), "planet")
