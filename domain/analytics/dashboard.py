"""What the analytics API and the dashboard page read: queries over the serving tables (published
from the warehouse marts), the live minute counters and the API's route metrics.

Every function takes a sync `Session` and plain values, and returns plain dicts and lists, so the
controllers, the dashboard page and the tests share one implementation. Periods are UTC days,
`[start, end)`. Figures over several days follow one rule: sums of counts are exact; rates and
averages over a period are weighted by what they are rates of (completion rate by unique viewers,
CTR by searches), never averages of daily rates; "unique viewers" over a period is the sum of the
daily unique viewers (viewer-days), since the marts keep no viewer sets.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from domain.analytics.health import percentile
from domain.analytics.live import RouteFigures
from domain.schema import (
    ContentItem,
    ContentMetricsDaily,
    LiveMinute,
    Role,
    RouteMinute,
    SearchAnalyticsDaily,
    User,
    UserEngagementDaily,
    UserRole,
)

LIVE_WINDOW = timedelta(minutes=5)
LIVE_SERIES_MINUTES = 30
SEGMENTS = ("role", "activity", "language")
# Users by the number of days they were active in the period.
ACTIVITY_SEGMENTS: tuple[tuple[str, int, int | None], ...] = (
    ("casual (1 day)", 1, 1),
    ("regular (2-6 days)", 2, 6),
    ("frequent (7+ days)", 7, None),
)


def minute_of(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(second=0, microsecond=0)


def _ratio(numerator: float, denominator: float) -> float | None:
    return None if not denominator else numerator / denominator


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days)]


def titles(session: Session, content_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, dict[str, str]]:
    ids = list(set(content_ids))
    if not ids:
        return {}
    rows = session.execute(sa.select(ContentItem.id, ContentItem.title).where(ContentItem.id.in_(ids)))
    return {row.id: dict(row.title or {}) for row in rows}


# --- content ------------------------------------------------------------------------------------------


def _content_totals(rows: list[Any]) -> dict[str, Any]:
    viewers = sum(r.unique_viewers for r in rows)
    return {
        "views": sum(r.view_count for r in rows),
        "unique_viewers": viewers,
        "average_watch_time": round(
            _ratio(sum(r.average_watch_time * r.unique_viewers for r in rows), viewers) or 0
        ),
        "completion_rate": _ratio(sum((r.completion_rate or 0) * r.unique_viewers for r in rows), viewers),
        "engagement_score": float(sum(r.engagement_score for r in rows)),
        "shares": sum(r.share_count for r in rows),
        "favorites": sum(r.favorite_count for r in rows),
        "comments": sum(r.comment_count for r in rows),
    }


def content_metrics(session: Session, content_id: uuid.UUID, start: date, end: date) -> dict[str, Any]:
    """ContentMetrics of one item: totals over the period and one row per day (zeros on days
    without events)."""
    t = ContentMetricsDaily
    rows = list(
        session.execute(
            sa.select(t).where(t.content_id == content_id, t.date >= start, t.date < end).order_by(t.date)
        ).scalars()
    )
    by_day = {r.date: r for r in rows}
    daily = []
    for day in _days(start, end):
        r = by_day.get(day)
        daily.append(
            {
                "date": day.isoformat(),
                "views": r.view_count if r else 0,
                "unique_viewers": r.unique_viewers if r else 0,
                "average_watch_time": r.average_watch_time if r else 0,
                "completion_rate": r.completion_rate if r else None,
                "engagement_score": r.engagement_score if r else 0.0,
                "shares": r.share_count if r else 0,
                "favorites": r.favorite_count if r else 0,
                "comments": r.comment_count if r else 0,
            }
        )
    return {
        "totals": _content_totals(rows),
        "daily": daily,
        "updated_at": max((r.updated_at for r in rows), default=None),
    }


def top_content(session: Session, start: date, end: date, limit: int = 10) -> list[dict[str, Any]]:
    t = ContentMetricsDaily
    views = sa.func.sum(t.view_count).label("views")
    rows = session.execute(
        sa.select(
            t.content_id,
            views,
            sa.func.sum(t.unique_viewers).label("unique_viewers"),
            sa.func.sum(t.engagement_score).label("engagement_score"),
        )
        .where(t.date >= start, t.date < end)
        .group_by(t.content_id)
        .order_by(views.desc(), t.content_id)
        .limit(limit)
    ).all()
    names = titles(session, [r.content_id for r in rows])
    return [
        {
            "content_id": str(r.content_id),
            "title": names.get(r.content_id, {}),
            "views": int(r.views or 0),
            "unique_viewers": int(r.unique_viewers or 0),
            "engagement_score": float(r.engagement_score or 0),
        }
        for r in rows
    ]


# --- live ---------------------------------------------------------------------------------------------


def live(session: Session, now: datetime, *, window: timedelta = LIVE_WINDOW) -> dict[str, Any]:
    """The last minutes as the API processes counted them (flushed every couple of seconds): events by
    type over `window` (the current minute included) and views per minute over the last half hour."""
    current = minute_of(now)
    since = current - window + timedelta(minutes=1)
    series_since = current - timedelta(minutes=LIVE_SERIES_MINUTES - 1)
    rows = session.execute(
        sa.select(LiveMinute.minute, LiveMinute.metric, LiveMinute.value).where(
            LiveMinute.minute >= min(since, series_since), LiveMinute.minute <= current
        )
    ).all()
    events: dict[str, float] = defaultdict(float)
    views_per_minute: dict[datetime, float] = defaultdict(float)
    for minute, metric, value in rows:
        if not metric.startswith("events."):
            continue
        if minute >= since:
            events[metric.removeprefix("events.")] += value
        if metric == "events.view":
            views_per_minute[minute] += value
    minutes = [series_since + timedelta(minutes=i) for i in range(LIVE_SERIES_MINUTES)]
    return {
        "window_minutes": int(window.total_seconds() // 60),
        "as_of": now.astimezone(UTC).isoformat(),
        "events": {k: int(v) for k, v in sorted(events.items())},
        "total_events": int(sum(events.values())),
        "views_per_minute": [
            {"minute": m.isoformat(), "views": int(views_per_minute.get(m, 0))} for m in minutes
        ],
    }


# --- overview -----------------------------------------------------------------------------------------


def _content_totals_sql(session: Session, start: date, end: date) -> dict[str, Any]:
    c = ContentMetricsDaily
    r = session.execute(
        sa.select(
            sa.func.coalesce(sa.func.sum(c.view_count), 0).label("views"),
            sa.func.coalesce(sa.func.sum(c.unique_viewers), 0).label("viewers"),
            sa.func.coalesce(sa.func.sum(c.average_watch_time * c.unique_viewers), 0).label("watch"),
            sa.func.coalesce(sa.func.sum(sa.func.coalesce(c.completion_rate, 0) * c.unique_viewers), 0).label(
                "completed"
            ),
            sa.func.coalesce(sa.func.sum(c.engagement_score), 0).label("engagement"),
        ).where(c.date >= start, c.date < end)
    ).one()
    viewers = int(r.viewers)
    return {
        "views": int(r.views),
        "unique_viewers": viewers,
        "average_watch_time": round(_ratio(float(r.watch), viewers) or 0),
        "completion_rate": _ratio(float(r.completed), viewers),
        "engagement_score": float(r.engagement),
    }


def overview(session: Session, start: date, end: date, now: datetime) -> dict[str, Any]:
    """The dashboard: `period_overview` and the `live` last minutes."""
    return period_overview(session, start, end) | {"live": live(session, now)}


def period_overview(session: Session, start: date, end: date) -> dict[str, Any]:
    """KPIs over the period, daily series, top content and search at a glance, from the serving
    tables (which change when the analytics job publishes a day, so callers may cache this part).
    Aggregated in SQL over covering indexes: its cost grows with the period's rows, not the table's."""
    c, u, s = ContentMetricsDaily, UserEngagementDaily, SearchAnalyticsDaily
    totals = _content_totals_sql(session, start, end)
    users = session.execute(
        sa.select(
            sa.func.count(sa.distinct(u.user_id)),
            sa.func.coalesce(sa.func.sum(u.session_count), 0),
            sa.func.coalesce(sa.func.sum(u.total_session_time), 0),
            sa.func.coalesce(sa.func.sum(u.page_views), 0),
        ).where(u.date >= start, u.date < end)
    ).one()
    searches = session.execute(
        sa.select(
            sa.func.coalesce(sa.func.sum(s.search_count), 0),
            sa.func.coalesce(sa.func.sum(s.zero_result_count), 0),
            sa.func.coalesce(sa.func.sum(s.click_count), 0),
        ).where(s.date >= start, s.date < end)
    ).one()
    daily_views = dict(
        session.execute(
            sa.select(c.date, sa.func.sum(c.view_count)).where(c.date >= start, c.date < end).group_by(c.date)
        ).all()
    )
    daily_users = dict(
        session.execute(
            sa.select(u.date, sa.func.count(sa.distinct(u.user_id)))
            .where(u.date >= start, u.date < end)
            .group_by(u.date)
        ).all()
    )
    active_users, sessions, session_time, page_views = (int(v) for v in users)
    search_count, zero_results, clicks = (int(v) for v in searches)
    return {
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "kpis": {
            "views": totals["views"],
            "unique_viewers": totals["unique_viewers"],
            "average_watch_time": totals["average_watch_time"],
            "completion_rate": totals["completion_rate"],
            "engagement_score": totals["engagement_score"],
            "active_users": active_users,
            "sessions": sessions,
            "average_session_time": round(_ratio(session_time, sessions) or 0),
            "page_views": page_views,
            "searches": search_count,
            "zero_result_rate": _ratio(zero_results, search_count),
            "click_through_rate": _ratio(clicks, search_count),
        },
        "daily": [
            {
                "date": d.isoformat(),
                "views": int(daily_views.get(d) or 0),
                "active_users": int(daily_users.get(d, 0)),
            }
            for d in _days(start, end)
        ],
        "top_content": top_content(session, start, end, limit=10),
        "top_queries": popular_queries(session, start, end, limit=5),
    }


# --- users --------------------------------------------------------------------------------------------


def _engagement_by_user(session: Session, start: date, end: date) -> dict[uuid.UUID, dict[str, int]]:
    u = UserEngagementDaily
    rows = session.execute(
        sa.select(
            u.user_id,
            sa.func.count().label("active_days"),
            sa.func.sum(u.session_count).label("sessions"),
            sa.func.sum(u.total_session_time).label("session_time"),
            sa.func.sum(u.page_views).label("page_views"),
            sa.func.sum(u.content_interactions).label("interactions"),
            sa.func.sum(u.search_queries).label("searches"),
            sa.func.sum(u.downloads).label("downloads"),
            sa.func.sum(u.shares).label("shares"),
        )
        .where(u.date >= start, u.date < end)
        .group_by(u.user_id)
    ).all()
    return {r.user_id: {k: int(getattr(r, k) or 0) for k in r._fields if k != "user_id"} for r in rows}


def _segment_keys(
    session: Session, segment: str, per_user: Mapping[uuid.UUID, Mapping[str, int]]
) -> dict[uuid.UUID, list[str]]:
    ids = list(per_user)
    if segment == "activity":
        keys: dict[uuid.UUID, list[str]] = {}
        for user_id, figures in per_user.items():
            days = figures["active_days"]
            keys[user_id] = [
                name
                for name, low, high in ACTIVITY_SEGMENTS
                if days >= low and (high is None or days <= high)
            ]
        return keys
    if segment == "role":
        keys = {user_id: [] for user_id in ids}
        for chunk in range(0, len(ids), 500):
            rows = session.execute(
                sa.select(UserRole.user_id, Role.name)
                .join(Role, Role.id == UserRole.role_id)
                .where(UserRole.user_id.in_(ids[chunk : chunk + 500]), UserRole.is_active.is_(True))
            ).all()
            for user_id, name in rows:
                keys[user_id].append(name)
        return {user_id: names or ["(no role)"] for user_id, names in keys.items()}
    if segment == "language":
        keys = {}
        for chunk in range(0, len(ids), 500):
            rows = session.execute(
                sa.select(User.id, User.preferences).where(User.id.in_(ids[chunk : chunk + 500]))
            ).all()
            for user_id, prefs in rows:
                locale = str((prefs or {}).get("locale") or (prefs or {}).get("language") or "")
                keys[user_id] = [locale.split("-")[0].lower() or "(unset)"]
        return {user_id: keys.get(user_id, ["(unknown user)"]) for user_id in ids}
    raise ValueError(f"unknown segment {segment!r}; one of {', '.join(SEGMENTS)}")


def users_engagement(session: Session, start: date, end: date, segment: str) -> dict[str, Any]:
    """UserEngagement totals over the period and per segment: by `role` (a user with two roles counts
    in both), `activity` (days active in the period) or `language` (the interface language the user
    chose)."""
    per_user = _engagement_by_user(session, start, end)
    keys = _segment_keys(session, segment, per_user)
    fields = ("sessions", "session_time", "page_views", "interactions", "searches", "downloads", "shares")
    groups: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(("users", *fields), 0))
    for user_id, figures in per_user.items():
        for key in keys[user_id]:
            group = groups[key]
            group["users"] += 1
            for f in fields:
                group[f] += figures[f]

    def shaped(figures: Mapping[str, int]) -> dict[str, Any]:
        return {
            "users": figures["users"],
            "sessions": figures["sessions"],
            "total_session_time": figures["session_time"],
            "average_session_time": round(_ratio(figures["session_time"], figures["sessions"]) or 0),
            "sessions_per_user": _ratio(figures["sessions"], figures["users"]),
            "page_views": figures["page_views"],
            "content_interactions": figures["interactions"],
            "search_queries": figures["searches"],
            "downloads": figures["downloads"],
            "shares": figures["shares"],
        }

    totals = dict.fromkeys(("users", *fields), 0)
    totals["users"] = len(per_user)
    for figures in per_user.values():
        for f in fields:
            totals[f] += figures[f]
    return {
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "segment_by": segment,
        "totals": shaped(totals),
        "segments": [
            {"segment": key, **shaped(figures)}
            for key, figures in sorted(groups.items(), key=lambda kv: (-kv[1]["users"], kv[0]))
        ],
    }


# --- search -------------------------------------------------------------------------------------------


def popular_queries(
    session: Session,
    start: date,
    end: date,
    *,
    language: str | None = None,
    limit: int = 20,
    zero_only: bool = False,
) -> list[dict[str, Any]]:
    s = SearchAnalyticsDaily
    searches = sa.func.sum(s.search_count).label("searches")
    zero = sa.func.sum(s.zero_result_count).label("zero_results")
    query = (
        sa.select(
            s.query_text,
            s.language,
            searches,
            sa.func.sum(s.click_count).label("clicks"),
            zero,
            sa.func.sum(s.result_count * s.search_count).label("results_weighted"),
            sa.func.sum(s.average_position * s.click_count).label("position_weighted"),
        )
        .where(s.date >= start, s.date < end)
        .group_by(s.query_text, s.language)
    )
    if language:
        query = query.where(s.language == language)
    if zero_only:
        query = query.having(sa.func.sum(s.zero_result_count) > 0).order_by(zero.desc(), s.query_text)
    else:
        query = query.order_by(searches.desc(), s.query_text)
    rows = session.execute(query.limit(limit)).all()
    return [
        {
            "query": r.query_text,
            "language": r.language,
            "searches": int(r.searches or 0),
            "clicks": int(r.clicks or 0),
            "click_through_rate": _ratio(r.clicks or 0, r.searches or 0),
            "average_results": _ratio(r.results_weighted or 0, r.searches or 0),
            "average_position": _ratio(r.position_weighted or 0, r.clicks or 0),
            "zero_results": int(r.zero_results or 0),
            "zero_result_rate": _ratio(r.zero_results or 0, r.searches or 0),
        }
        for r in rows
    ]


def search_insights(
    session: Session, start: date, end: date, *, language: str | None = None, limit: int = 20
) -> dict[str, Any]:
    """SearchAnalytics: totals, popular and zero-result queries, daily trend, and the queries rising
    most (searches in the second half of the period against the first half)."""
    s = SearchAnalyticsDaily
    base = sa.select(
        s.date,
        sa.func.sum(s.search_count).label("searches"),
        sa.func.sum(s.zero_result_count).label("zero_results"),
        sa.func.sum(s.click_count).label("clicks"),
    ).where(s.date >= start, s.date < end)
    if language:
        base = base.where(s.language == language)
    daily = {r.date: r for r in session.execute(base.group_by(s.date)).all()}
    trend = []
    for day in _days(start, end):
        r = daily.get(day)
        n, zero, clicks = (int(r.searches), int(r.zero_results), int(r.clicks)) if r else (0, 0, 0)
        trend.append(
            {
                "date": day.isoformat(),
                "searches": n,
                "zero_result_rate": _ratio(zero, n),
                "click_through_rate": _ratio(clicks, n),
            }
        )
    total = sum(t["searches"] for t in trend)
    zero_total = sum(int(r.zero_results) for r in daily.values())
    clicks_total = sum(int(r.clicks) for r in daily.values())
    by_language = session.execute(
        sa.select(s.language, sa.func.sum(s.search_count))
        .where(s.date >= start, s.date < end)
        .group_by(s.language)
        .order_by(s.language)
    ).all()
    return {
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "language": language,
        "totals": {
            "searches": total,
            "zero_result_rate": _ratio(zero_total, total),
            "click_through_rate": _ratio(clicks_total, total),
            "by_language": {lang or "(none)": int(n) for lang, n in by_language},
        },
        "popular_queries": popular_queries(session, start, end, language=language, limit=limit),
        "zero_result_queries": popular_queries(
            session, start, end, language=language, limit=limit, zero_only=True
        ),
        "rising_queries": _rising(session, start, end, language, limit),
        "trend": trend,
    }


def _rising(
    session: Session, start: date, end: date, language: str | None, limit: int
) -> list[dict[str, Any]]:
    days = (end - start).days
    if days < 2:
        return []
    middle = start + timedelta(days=days // 2)
    s = SearchAnalyticsDaily
    half = sa.case((s.date >= middle, "recent"), else_="earlier")
    query = (
        sa.select(s.query_text, half.label("half"), sa.func.sum(s.search_count))
        .where(s.date >= start, s.date < end)
        .group_by(s.query_text, half)
    )
    if language:
        query = query.where(s.language == language)
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"earlier": 0, "recent": 0})
    for text, which, n in session.execute(query).all():
        counts[text][which] += int(n or 0)
    rising = [
        {"query": text, "earlier": c["earlier"], "recent": c["recent"], "change": c["recent"] - c["earlier"]}
        for text, c in counts.items()
        if c["recent"] > c["earlier"]
    ]
    rising.sort(key=lambda r: (-r["change"], r["query"]))
    return rising[:limit]


# --- system -------------------------------------------------------------------------------------------


def system_health(session: Session, now: datetime, minutes: int = 60) -> dict[str, Any]:
    """The API's response times and error rates per route over the last `minutes` (the current one
    included), from the minutes the request middleware of every API process flushed."""
    current = minute_of(now)
    since = current - timedelta(minutes=minutes - 1)
    rows = session.execute(
        sa.select(RouteMinute).where(RouteMinute.minute >= since, RouteMinute.minute <= current)
    ).scalars()
    routes: dict[str, RouteFigures] = {}
    per_minute: dict[datetime, list[int]] = defaultdict(lambda: [0, 0])
    everything = RouteFigures()
    for r in rows:
        figures = RouteFigures.of_minute(r)
        routes.setdefault(r.route, RouteFigures()).merge(figures)
        everything.merge(figures)
        per_minute[r.minute][0] += r.requests
        per_minute[r.minute][1] += r.server_errors

    def shaped(figures: RouteFigures) -> dict[str, Any]:
        n = figures.requests
        return {
            "requests": n,
            "client_error_rate": _ratio(figures.client_errors, n),
            "server_error_rate": _ratio(figures.server_errors, n),
            "average_ms": _ratio(figures.latency_sum_ms, n),
            "p50_ms": percentile(figures.latency_buckets, 0.50),
            "p95_ms": percentile(figures.latency_buckets, 0.95),
            "p99_ms": percentile(figures.latency_buckets, 0.99),
            "max_ms": figures.latency_max_ms if n else None,
        }

    return {
        "window_minutes": minutes,
        "as_of": now.astimezone(UTC).isoformat(),
        "overall": shaped(everything),
        "routes": sorted(
            ({"route": route, **shaped(figures)} for route, figures in routes.items()),
            key=lambda r: (-r["requests"], r["route"]),
        ),
        "per_minute": [
            {
                "minute": (since + timedelta(minutes=i)).isoformat(),
                "requests": per_minute.get(since + timedelta(minutes=i), [0, 0])[0],
                "server_errors": per_minute.get(since + timedelta(minutes=i), [0, 0])[1],
            }
            for i in range(minutes)
        ],
    }
