"""Building a report: the sections of each report type, read from the serving tables for a period.

All periods are whole UTC days, `[period_start, period_end)`. Aggregates over a period are recomputed
from the daily rows rather than averaged day by day (each section says how).

Report types: `content`, `user`, `search`, `system`, and `custom`, which for now is `content` and
`search` combined (until report configurations choose their own sections).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa

from domain.analytics.health import percentile
from domain.analytics.live import RouteFigures
from domain.analytics.reports.document import (
    LANGUAGES,
    ReportChart,
    ReportDocument,
    ReportTable,
    format_count,
    format_decimal,
    format_percent,
)
from domain.analytics.reports.labels import label
from domain.schema import (
    REPORT_TYPES,
    ContentItem,
    ContentMetricsDaily,
    RouteMinute,
    SearchAnalyticsDaily,
    User,
    UserEngagementDaily,
)

TOP_CHART_BARS = 10

# Table columns: (label key, format).
CONTENT_COLUMNS = (
    ("content", "text"), ("views", "int"), ("unique_viewers", "int"), ("avg_watch_time", "seconds"),
    ("completion_rate", "percent"), ("shares", "int"), ("favorites", "int"), ("comments", "int"),
    ("engagement", "float"),
)  # fmt: skip
USER_COLUMNS = (
    ("username", "text"), ("active_days", "int"), ("sessions", "int"), ("total_session_time", "int"),
    ("avg_session_time", "seconds"), ("page_views", "int"), ("interactions", "int"), ("searches", "int"),
    ("downloads", "int"), ("shares", "int"), ("last_activity", "text"),
)  # fmt: skip
QUERY_COLUMNS = (
    ("query", "text"), ("language", "text"), ("searches", "int"), ("avg_results", "float"), ("clicks", "int"),
    ("ctr", "percent"), ("avg_position", "float"), ("zero_result_rate", "percent"),
)  # fmt: skip
ZERO_RESULT_COLUMNS = (
    ("query", "text"), ("language", "text"), ("searches", "int"), ("zero_result_searches", "int"),
    ("zero_result_rate", "percent"),
)  # fmt: skip
ROUTE_COLUMNS = (
    ("route", "text"), ("requests", "int"), ("client_error_rate", "percent"), ("server_error_rate", "percent"),
    ("avg_latency", "ms"), ("p50", "ms"), ("p95", "ms"), ("max_latency", "ms"),
)  # fmt: skip


def build_document(
    conn: sa.Connection,
    report_type: str,
    period_start: date,
    period_end: date,
    language: str,
    *,
    top: int = 20,
) -> ReportDocument:
    """The report of `report_type` over the UTC days `[period_start, period_end)`, labelled in
    `language`; ranked tables hold at most `top` rows. `custom` is `content` and `search` combined.

    Raises ValueError for an unknown report type or language, an empty period or `top` < 1."""
    if report_type not in REPORT_TYPES:
        raise ValueError(f"unknown report type {report_type!r}; expected one of {', '.join(REPORT_TYPES)}")
    if language not in LANGUAGES:
        raise ValueError(f"unknown report language {language!r}; expected 'ar' or 'en'")
    if period_end <= period_start:
        raise ValueError(f"empty report period: {period_start} to {period_end} (the end is exclusive)")
    if top < 1:
        raise ValueError("top must be at least 1")
    period = _Period(period_start, period_end)
    sections = {
        "content": [_content_section],
        "user": [_user_section],
        "search": [_search_section],
        "system": [_system_section],
        "custom": [_content_section, _search_section],
    }[report_type]
    kpis: list[tuple[str, str]] = []
    charts: list[ReportChart] = []
    tables: list[ReportTable] = []
    for section in sections:
        more_kpis, more_charts, more_tables = section(conn, period, language, top)
        kpis += more_kpis
        charts += more_charts
        tables += more_tables
    last_day = period_end - timedelta(days=1)
    return ReportDocument(
        title=label(f"report.{report_type}", language),
        subtitle=label("period", language).format(start=period_start.isoformat(), end=last_day.isoformat()),
        language=language,  # type: ignore[arg-type]
        period_start=period_start,
        period_end=period_end,
        kpis=kpis,
        charts=charts,
        tables=tables,
    )


Section = tuple[list[tuple[str, str]], list[ReportChart], list[ReportTable]]


@dataclass(frozen=True)
class _Period:
    start: date
    end: date

    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days)]

    def labels(self) -> list[str]:
        return [day.isoformat() for day in self.days()]

    def daily(self, values: dict[date, float]) -> list[float]:
        """One value per day of the period, 0 for days without rows."""
        return [float(values.get(day, 0)) for day in self.days()]

    def start_at(self) -> datetime:
        return datetime.combine(self.start, time(), tzinfo=UTC)

    def end_at(self) -> datetime:
        return datetime.combine(self.end, time(), tzinfo=UTC)


def _sum(column: Any) -> Any:
    return sa.func.coalesce(sa.func.sum(column), 0)


def _weight_if_present(value: Any, weight: Any) -> Any:
    """The weight of the rows where `value` is known (the denominator of a weighted mean)."""
    return _sum(sa.case((value.is_not(None), weight), else_=0))


def _table(
    language: str, title_key: str, columns: Sequence[tuple[str, str]], rows: list[list[Any]]
) -> ReportTable:
    """A table titled and headed in `language`; `columns` pairs each column's label key with its format."""
    return ReportTable(
        title=label(title_key, language),
        columns=[label(key, language) for key, _ in columns],
        rows=rows,
        formats=[fmt for _, fmt in columns],
    )


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def _rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def _content_section(conn: sa.Connection, period: _Period, language: str, top: int) -> Section:
    """Content performance from `analytics_content_metrics`.

    Over the period: views, shares, favorites, comments and engagement scores are sums of the daily
    rows; unique viewers too (the daily rows cannot tell the same viewer on two days apart, so this is
    viewer-days, and the label says so). Completion rate is completers / viewers, recovered exactly by
    weighting each day's rate with that day's unique viewers (days without a rate are left out).
    Average watch time is weighted by views, the closest weight the serving rows carry to the number of
    watch sessions the daily average was taken over."""
    t = ContentMetricsDaily.__table__
    in_period = (t.c.date >= period.start, t.c.date < period.end)
    measures = (
        _sum(t.c.view_count).label("views"),
        _sum(t.c.unique_viewers).label("viewers"),
        _sum(t.c.average_watch_time * t.c.view_count).label("watch_weighted"),
        _sum(sa.func.coalesce(t.c.completion_rate, 0.0) * t.c.unique_viewers).label("completers"),
        _weight_if_present(t.c.completion_rate, t.c.unique_viewers).label("completion_weight"),
        _sum(t.c.share_count).label("shares"),
        _sum(t.c.favorite_count).label("favorites"),
        _sum(t.c.comment_count).label("comments"),
        _sum(t.c.engagement_score).label("engagement"),
    )
    total = conn.execute(sa.select(*measures).where(*in_period)).one()
    daily = conn.execute(sa.select(t.c.date, _sum(t.c.view_count)).where(*in_period).group_by(t.c.date)).all()
    ranked = conn.execute(
        sa.select(t.c.content_id, *measures)
        .where(*in_period)
        .group_by(t.c.content_id)
        .order_by(sa.desc("views"), t.c.content_id)
        .limit(top)
    ).all()
    titles = _content_titles(conn, [row.content_id for row in ranked], language)

    def stats(row: Any) -> tuple[float | None, float | None]:
        watch = _ratio(float(row.watch_weighted), int(row.views))
        completion = _ratio(float(row.completers), int(row.completion_weight))
        return watch, completion

    watch, completion = stats(total)
    kpis = [
        (label("views", language), format_count(total.views)),
        (label("unique_viewers", language), format_count(total.viewers)),
        (label("avg_watch_time", language), format_decimal(watch)),
        (label("completion_rate", language), format_percent(completion)),
        (label("engagement", language), format_decimal(float(total.engagement))),
    ]
    rows: list[list[Any]] = []
    for row in ranked:
        row_watch, row_completion = stats(row)
        counts = [int(row.shares), int(row.favorites), int(row.comments)]
        rows.append(
            [titles[row.content_id], int(row.views), int(row.viewers), _rounded(row_watch, 1)]
            + [_rounded(row_completion), *counts, _rounded(float(row.engagement), 2)]
        )
    table = _table(language, "table.top_content", CONTENT_COLUMNS, rows)
    charts = [
        _daily_chart(period, language, "chart.daily_views", daily, "views"),
        ReportChart(
            title=label("chart.top_content", language),
            kind="bar",
            labels=[row[0] for row in rows[:TOP_CHART_BARS]],
            series={label("views", language): [float(row[1]) for row in rows[:TOP_CHART_BARS]]},
        ),
    ]
    return kpis, charts, [table]


def _content_titles(conn: sa.Connection, ids: Sequence[Any], language: str) -> dict[Any, str]:
    """Each content item's title in `language`, else in the other language, else its slug, else its
    id (an item deleted since keeps its metrics)."""
    other = "en" if language == "ar" else "ar"
    t = ContentItem.__table__
    found = {
        row.id: (row.title or {}, row.slug)
        for row in conn.execute(sa.select(t.c.id, t.c.title, t.c.slug).where(t.c.id.in_(ids)))
    }
    titles: dict[Any, str] = {}
    for content_id in ids:
        title, slug = found.get(content_id, ({}, None))
        text = (title.get(language) or "").strip() or (title.get(other) or "").strip() or slug
        titles[content_id] = text or str(content_id)
    return titles


def _user_section(conn: sa.Connection, period: _Period, language: str, top: int) -> Section:
    """User engagement from `analytics_user_engagement`: active users are the distinct users with a
    row in the period (a row means they did something that day); sessions, page views, searches and
    downloads are sums; the average session time is total session time / sessions (not a mean of
    daily means). The top users are ranked by total session time."""
    t = UserEngagementDaily.__table__
    in_period = (t.c.date >= period.start, t.c.date < period.end)
    measures = (
        _sum(t.c.session_count).label("sessions"),
        _sum(t.c.total_session_time).label("session_time"),
        _sum(t.c.page_views).label("page_views"),
        _sum(t.c.content_interactions).label("interactions"),
        _sum(t.c.search_queries).label("searches"),
        _sum(t.c.downloads).label("downloads"),
        _sum(t.c.shares).label("shares"),
    )
    total = conn.execute(
        sa.select(sa.func.count(sa.distinct(t.c.user_id)).label("users"), *measures).where(*in_period)
    ).one()
    daily = conn.execute(
        sa.select(t.c.date, sa.func.count(sa.distinct(t.c.user_id)), _sum(t.c.session_count))
        .where(*in_period)
        .group_by(t.c.date)
    ).all()
    ranked = conn.execute(
        sa.select(
            t.c.user_id,
            sa.func.count().label("active_days"),
            sa.func.max(t.c.last_activity).label("last_activity"),
            *measures,
        )
        .where(*in_period)
        .group_by(t.c.user_id)
        .order_by(sa.desc("session_time"), t.c.user_id)
        .limit(top)
    ).all()
    users = User.__table__
    ids = [row.user_id for row in ranked]
    usernames = dict(conn.execute(sa.select(users.c.id, users.c.username).where(users.c.id.in_(ids))).all())

    kpis = [
        (label("active_users", language), format_count(total.users)),
        (label("sessions", language), format_count(total.sessions)),
        (
            label("avg_session_time", language),
            format_decimal(_ratio(int(total.session_time), int(total.sessions))),
        ),
        (label("page_views", language), format_count(total.page_views)),
        (label("searches", language), format_count(total.searches)),
        (label("downloads", language), format_count(total.downloads)),
    ]
    rows = [
        [usernames.get(row.user_id) or str(row.user_id), int(row.active_days), int(row.sessions)]
        + [int(row.session_time), _rounded(_ratio(int(row.session_time), int(row.sessions)), 1)]
        + [int(row.page_views), int(row.interactions), int(row.searches), int(row.downloads), int(row.shares)]
        + [_utc_minute(row.last_activity)]
        for row in ranked
    ]
    table = _table(language, "table.top_users", USER_COLUMNS, rows)
    chart = _daily_chart(period, language, "chart.daily_users", daily, "active_users", "sessions")
    return kpis, [chart], [table]


def _daily_chart(
    period: _Period, language: str, title: str, daily: Sequence[Sequence[Any]], *measures: str
) -> ReportChart:
    """A line chart over the period's days, one series a measure: `daily` rows are the day and then
    one value per measure, in the order the measures are named (labels are the measures' keys)."""
    return ReportChart(
        title=label(title, language),
        kind="line",
        labels=period.labels(),
        series={
            label(measure, language): period.daily({row[0]: row[i] for row in daily})
            for i, measure in enumerate(measures, start=1)
        },
    )


def _utc_minute(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _search_section(conn: sa.Connection, period: _Period, language: str, top: int) -> Section:
    """Search analytics from `analytics_search`. Over the period: zero-result rate = zero-result
    searches / searches and click-through rate = clicks / searches (sums, so a query clicked on the day
    after it was searched still counts); average results per search weighted by searches; average
    clicked position weighted by clicks. Queries are grouped by text and interface language, over
    both user types."""
    t = SearchAnalyticsDaily.__table__
    in_period = (t.c.date >= period.start, t.c.date < period.end)
    measures = (
        _sum(t.c.search_count).label("searches"),
        _sum(t.c.click_count).label("clicks"),
        _sum(t.c.zero_result_count).label("zero"),
        _sum(sa.func.coalesce(t.c.result_count, 0.0) * t.c.search_count).label("results_weighted"),
        _weight_if_present(t.c.result_count, t.c.search_count).label("results_weight"),
        _sum(sa.func.coalesce(t.c.average_position, 0.0) * t.c.click_count).label("position_weighted"),
        _weight_if_present(t.c.average_position, t.c.click_count).label("position_weight"),
    )
    total = conn.execute(sa.select(*measures).where(*in_period)).one()
    daily = conn.execute(
        sa.select(t.c.date, _sum(t.c.search_count), _sum(t.c.zero_result_count))
        .where(*in_period)
        .group_by(t.c.date)
    ).all()
    by_query = sa.select(t.c.query_text, t.c.language, *measures).where(*in_period)
    by_query = by_query.group_by(t.c.query_text, t.c.language)
    popular = conn.execute(
        by_query.order_by(sa.desc("searches"), t.c.query_text, t.c.language).limit(top)
    ).all()
    zero = conn.execute(
        by_query.having(sa.func.sum(t.c.zero_result_count) > 0)
        .order_by(sa.desc("zero"), sa.desc("searches"), t.c.query_text, t.c.language)
        .limit(top)
    ).all()

    kpis = [
        (label("searches", language), format_count(total.searches)),
        (label("zero_result_rate", language), format_percent(_ratio(int(total.zero), int(total.searches)))),
        (label("ctr", language), format_percent(_ratio(int(total.clicks), int(total.searches)))),
        (
            label("avg_position", language),
            format_decimal(_ratio(float(total.position_weighted), int(total.position_weight))),
        ),
    ]

    def query_row(row: Any) -> list[Any]:
        return [row.query_text, row.language, int(row.searches)] + [
            _rounded(_ratio(float(row.results_weighted), int(row.results_weight)), 1),
            int(row.clicks),
            _rounded(_ratio(int(row.clicks), int(row.searches))),
            _rounded(_ratio(float(row.position_weighted), int(row.position_weight)), 1),
            _rounded(_ratio(int(row.zero), int(row.searches))),
        ]

    popular_table = _table(
        language, "table.popular_queries", QUERY_COLUMNS, [query_row(row) for row in popular]
    )
    zero_rows = [
        [row.query_text, row.language, int(row.searches), int(row.zero)]
        + [_rounded(_ratio(int(row.zero), int(row.searches)))]
        for row in zero
    ]
    zero_table = _table(language, "table.zero_result_queries", ZERO_RESULT_COLUMNS, zero_rows)
    chart = _daily_chart(period, language, "chart.daily_searches", daily, "searches", "zero_result_searches")
    return kpis, [chart], [popular_table, zero_table]


def _system_section(conn: sa.Connection, period: _Period, language: str, top: int) -> Section:
    """API health from `analytics_route_minutes`: requests and 4xx/5xx error rates are sums over the
    minutes; latency percentiles are read from the histograms summed over all minutes (per route and
    overall) with `health.percentile`, never averaged; the average latency is the latency sum / requests.
    Histograms are JSON, so the minutes are streamed and added up here rather than in SQL; days are
    cut in UTC. Route minutes are pruned after 8 days (`alerts.KEEP_MINUTES`): older days read 0.
    The route table lists every route (a short, fixed list) so a slow, rarely used one still shows."""
    t = RouteMinute.__table__
    routes: dict[str, RouteFigures] = {}
    overall = RouteFigures()
    per_day: dict[date, float] = {}
    result = conn.execution_options(yield_per=5000).execute(
        sa.select(
            t.c.minute,
            t.c.route,
            t.c.requests,
            t.c.client_errors,
            t.c.server_errors,
            t.c.latency_sum_ms,
            t.c.latency_max_ms,
            t.c.latency_buckets,
        ).where(t.c.minute >= period.start_at(), t.c.minute < period.end_at())
    )
    for row in result:
        figures = RouteFigures.of_minute(row)
        routes.setdefault(row.route, RouteFigures()).merge(figures)
        overall.merge(figures)
        day = row.minute.astimezone(UTC).date()
        per_day[day] = per_day.get(day, 0) + row.requests

    kpis = [
        (label("requests", language), format_count(overall.requests)),
        (
            label("client_error_rate", language),
            format_percent(_ratio(overall.client_errors, overall.requests)),
        ),
        (
            label("server_error_rate", language),
            format_percent(_ratio(overall.server_errors, overall.requests)),
        ),
        (label("p50", language), format_decimal(percentile(overall.latency_buckets, 0.5))),
        (label("p95", language), format_decimal(percentile(overall.latency_buckets, 0.95))),
    ]
    ordered = sorted(routes.items(), key=lambda item: (-item[1].requests, item[0]))
    rows = [
        [route, totals.requests]
        + [_rounded(_ratio(totals.client_errors, totals.requests))]
        + [_rounded(_ratio(totals.server_errors, totals.requests))]
        + [_rounded(_ratio(totals.latency_sum_ms, totals.requests), 1)]
        + [
            percentile(totals.latency_buckets, 0.5),
            percentile(totals.latency_buckets, 0.95),
            _rounded(totals.latency_max_ms, 1),
        ]
        for route, totals in ordered
    ]
    table = _table(language, "table.routes", ROUTE_COLUMNS, rows)
    chart = ReportChart(
        title=label("chart.daily_requests", language),
        kind="bar",
        labels=period.labels(),
        series={label("requests", language): period.daily(per_day)},
    )
    return kpis, [chart], [table]
