"""Analytics reports: a `ReportDocument` built from the serving tables for a period, and rendered to
CSV, Excel, PDF or JSON, in Arabic or English.

Building and rendering are separate so that one query serves every format a report asks for. All
periods are whole UTC days, `[period_start, period_end)`. Aggregates over a period are recomputed
from the daily rows rather than averaged day by day (each builder says how); a table cell holds the
raw value (a rate as a fraction, a duration in seconds) and each table names its columns' formats so
every renderer can present them its own way.

Report types: `content`, `user`, `search`, `system`, and `custom`, which for now is `content` and
`search` combined (until report configurations choose their own sections).

Arabic text in PDFs: matplotlib >= 3.11 lays text out with libraqm, which shapes Arabic and reorders
it right-to-left itself; reordering it beforehand with python-bidi would reverse it a second time.
`display_text` therefore always shapes (presentation forms, so older matplotlib joins letters too)
but reorders only when matplotlib cannot.

matplotlib and openpyxl are imported by the renderers that need them, so the API process can import
this module (for `CONTENT_TYPES`, `build_document`) without paying for plotting libraries.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cache, lru_cache
from typing import Any, Literal

import sqlalchemy as sa

from domain.analytics.health import add_buckets, percentile
from domain.schema import (
    REPORT_TYPES,
    ContentItem,
    ContentMetricsDaily,
    RouteMinute,
    SearchAnalyticsDaily,
    User,
    UserEngagementDaily,
)

Language = Literal["ar", "en"]
LANGUAGES: tuple[str, ...] = ("ar", "en")

CONTENT_TYPES: dict[str, str] = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
    "json": "application/json",
}
EXTENSIONS: dict[str, str] = {"csv": ".csv", "xlsx": ".xlsx", "pdf": ".pdf", "json": ".json"}

# How a table column is presented: text as is; counts with separators; rates (fractions) in percent;
# seconds and milliseconds as decimals.
ColumnFormat = Literal["text", "int", "float", "percent", "seconds", "ms"]
MISSING = "–"
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

LABELS: dict[str, dict[str, str]] = {
    "report.content": {"en": "Content performance report", "ar": "تقرير أداء المحتوى"},
    "report.user": {"en": "User engagement report", "ar": "تقرير تفاعل المستخدمين"},
    "report.search": {"en": "Search analytics report", "ar": "تقرير تحليلات البحث"},
    "report.system": {"en": "System health report", "ar": "تقرير صحة النظام"},
    "report.custom": {"en": "Content and search report", "ar": "تقرير المحتوى والبحث"},
    "period": {"en": "Period: {start} to {end} (UTC)", "ar": "الفترة: من {start} إلى {end} (UTC)"},
    "key_figures": {"en": "Key figures", "ar": "المؤشرات الرئيسية"},
    "metric": {"en": "Metric", "ar": "المؤشر"},
    "value": {"en": "Value", "ar": "القيمة"},
    "chart_data": {"en": "Chart data", "ar": "بيانات الرسوم"},
    "page": {"en": "Page {page} of {pages}", "ar": "صفحة {page} من {pages}"},
    "date": {"en": "Date", "ar": "التاريخ"},
    # content
    "content": {"en": "Content", "ar": "المحتوى"},
    "views": {"en": "Views", "ar": "المشاهدات"},
    "unique_viewers": {"en": "Unique viewers (daily, summed)", "ar": "المشاهدون الفريدون (مجموع يومي)"},
    "avg_watch_time": {"en": "Avg watch time (s)", "ar": "متوسط مدة المشاهدة (ث)"},
    "completion_rate": {"en": "Completion rate", "ar": "معدل الإكمال"},
    "shares": {"en": "Shares", "ar": "المشاركات"},
    "favorites": {"en": "Favorites", "ar": "الإضافات إلى المفضلة"},
    "comments": {"en": "Comments", "ar": "التعليقات"},
    "engagement": {"en": "Engagement score", "ar": "درجة التفاعل"},
    "chart.daily_views": {"en": "Daily views", "ar": "المشاهدات اليومية"},
    "chart.top_content": {"en": "Top content by views", "ar": "المحتوى الأكثر مشاهدة"},
    "table.top_content": {"en": "Top content", "ar": "المحتوى الأبرز"},
    # users
    "active_users": {"en": "Active users", "ar": "المستخدمون النشطون"},
    "sessions": {"en": "Sessions", "ar": "الجلسات"},
    "avg_session_time": {"en": "Avg session time (s)", "ar": "متوسط مدة الجلسة (ث)"},
    "total_session_time": {"en": "Total session time (s)", "ar": "إجمالي مدة الجلسات (ث)"},
    "page_views": {"en": "Page views", "ar": "مشاهدات الصفحات"},
    "interactions": {"en": "Interactions", "ar": "التفاعلات"},
    "searches": {"en": "Searches", "ar": "عمليات البحث"},
    "downloads": {"en": "Downloads", "ar": "التنزيلات"},
    "active_days": {"en": "Active days", "ar": "أيام النشاط"},
    "last_activity": {"en": "Last activity (UTC)", "ar": "آخر نشاط (UTC)"},
    "username": {"en": "Username", "ar": "اسم المستخدم"},
    "chart.daily_users": {"en": "Daily active users and sessions", "ar": "المستخدمون النشطون والجلسات يوميًا"},
    "table.top_users": {"en": "Top users by session time", "ar": "المستخدمون الأطول جلسات"},
    # search
    "zero_result_rate": {"en": "Zero-result rate", "ar": "معدل البحث بلا نتائج"},
    "zero_result_searches": {"en": "Zero-result searches", "ar": "عمليات بحث بلا نتائج"},
    "ctr": {"en": "Click-through rate", "ar": "نسبة النقر"},
    "clicks": {"en": "Clicks", "ar": "النقرات"},
    "avg_position": {"en": "Avg clicked position", "ar": "متوسط ترتيب النتيجة المختارة"},
    "avg_results": {"en": "Avg results", "ar": "متوسط عدد النتائج"},
    "query": {"en": "Query", "ar": "عبارة البحث"},
    "language": {"en": "Language", "ar": "اللغة"},
    "chart.daily_searches": {"en": "Daily searches", "ar": "عمليات البحث اليومية"},
    "table.popular_queries": {"en": "Popular queries", "ar": "عبارات البحث الأكثر شيوعًا"},
    "table.zero_result_queries": {"en": "Zero-result queries", "ar": "عبارات بحث بلا نتائج"},
    # system
    "requests": {"en": "Requests", "ar": "الطلبات"},
    "client_error_rate": {"en": "4xx error rate", "ar": "معدل أخطاء 4xx"},
    "server_error_rate": {"en": "5xx error rate", "ar": "معدل أخطاء 5xx"},
    "p50": {"en": "p50 latency (ms)", "ar": "زمن الاستجابة p50 (مللي ثانية)"},
    "p95": {"en": "p95 latency (ms)", "ar": "زمن الاستجابة p95 (مللي ثانية)"},
    "avg_latency": {"en": "Avg latency (ms)", "ar": "متوسط زمن الاستجابة (مللي ثانية)"},
    "max_latency": {"en": "Max latency (ms)", "ar": "أقصى زمن استجابة (مللي ثانية)"},
    "route": {"en": "Route", "ar": "المسار"},
    "chart.daily_requests": {"en": "Requests per day", "ar": "الطلبات يوميًا"},
    "table.routes": {"en": "Requests by route", "ar": "الطلبات حسب المسار"},
}


@dataclass(frozen=True)
class ReportTable:
    """A titled table; `formats` names each column's `ColumnFormat` (all "text" when empty)."""

    title: str
    columns: list[str]
    rows: list[list[Any]]
    formats: list[str] = field(default_factory=list)

    def format_of(self, index: int) -> str:
        return self.formats[index] if index < len(self.formats) else "text"


@dataclass(frozen=True)
class ReportChart:
    """A chart: one value per label in every series (`kind` "line" for time series, "bar" for rankings)."""

    title: str
    kind: Literal["line", "bar"]
    labels: list[str]
    series: dict[str, list[float]]


@dataclass(frozen=True)
class ReportDocument:
    """A report ready to render: translated labels, formatted KPIs, charts and tables, for the UTC days
    `[period_start, period_end)`."""

    title: str
    subtitle: str
    language: Language
    period_start: date
    period_end: date
    kpis: list[tuple[str, str]]
    charts: list[ReportChart]
    tables: list[ReportTable]


def label(key: str, language: str) -> str:
    return LABELS[key][language]


# --- building ------------------------------------------------------------------------------------


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
        (label("views", language), _count(total.views)),
        (label("unique_viewers", language), _count(total.viewers)),
        (label("avg_watch_time", language), _decimal(watch)),
        (label("completion_rate", language), _percent(completion)),
        (label("engagement", language), _decimal(float(total.engagement))),
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
        ReportChart(
            title=label("chart.daily_views", language),
            kind="line",
            labels=period.labels(),
            series={label("views", language): period.daily({day: views for day, views in daily})},
        ),
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
        (label("active_users", language), _count(total.users)),
        (label("sessions", language), _count(total.sessions)),
        (label("avg_session_time", language), _decimal(_ratio(int(total.session_time), int(total.sessions)))),
        (label("page_views", language), _count(total.page_views)),
        (label("searches", language), _count(total.searches)),
        (label("downloads", language), _count(total.downloads)),
    ]
    rows = [
        [usernames.get(row.user_id) or str(row.user_id), int(row.active_days), int(row.sessions)]
        + [int(row.session_time), _rounded(_ratio(int(row.session_time), int(row.sessions)), 1)]
        + [int(row.page_views), int(row.interactions), int(row.searches), int(row.downloads), int(row.shares)]
        + [_utc_minute(row.last_activity)]
        for row in ranked
    ]
    table = _table(language, "table.top_users", USER_COLUMNS, rows)
    chart = ReportChart(
        title=label("chart.daily_users", language),
        kind="line",
        labels=period.labels(),
        series={
            label("active_users", language): period.daily({day: users for day, users, _ in daily}),
            label("sessions", language): period.daily({day: sessions for day, _, sessions in daily}),
        },
    )
    return kpis, [chart], [table]


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
        (label("searches", language), _count(total.searches)),
        (label("zero_result_rate", language), _percent(_ratio(int(total.zero), int(total.searches)))),
        (label("ctr", language), _percent(_ratio(int(total.clicks), int(total.searches)))),
        (
            label("avg_position", language),
            _decimal(_ratio(float(total.position_weighted), int(total.position_weight))),
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
    chart = ReportChart(
        title=label("chart.daily_searches", language),
        kind="line",
        labels=period.labels(),
        series={
            label("searches", language): period.daily({day: n for day, n, _ in daily}),
            label("zero_result_searches", language): period.daily({day: n for day, _, n in daily}),
        },
    )
    return kpis, [chart], [popular_table, zero_table]


@dataclass
class _RouteTotals:
    requests: int = 0
    client_errors: int = 0
    server_errors: int = 0
    latency_sum_ms: float = 0.0
    latency_max_ms: float = 0.0
    buckets: list[int] = field(default_factory=list)

    def add(self, row: Any) -> None:
        self.requests += row.requests
        self.client_errors += row.client_errors
        self.server_errors += row.server_errors
        self.latency_sum_ms += row.latency_sum_ms
        self.latency_max_ms = max(self.latency_max_ms, row.latency_max_ms)
        self.buckets = add_buckets(self.buckets, row.latency_buckets or [])


def _system_section(conn: sa.Connection, period: _Period, language: str, top: int) -> Section:
    """API health from `analytics_route_minutes`: requests and 4xx/5xx error rates are sums over the
    minutes; latency percentiles are read from the histograms summed over all minutes (per route and
    overall) with `health.percentile`, never averaged; the average latency is the latency sum / requests.
    Histograms are JSON, so the minutes are streamed and added up here rather than in SQL; days are
    cut in UTC. Route minutes are pruned after 8 days (`alerts.KEEP_MINUTES`): older days read 0.
    The route table lists every route (a short, fixed list) so a slow, rarely used one still shows."""
    t = RouteMinute.__table__
    routes: dict[str, _RouteTotals] = {}
    overall = _RouteTotals()
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
        routes.setdefault(row.route, _RouteTotals()).add(row)
        overall.add(row)
        day = row.minute.astimezone(UTC).date()
        per_day[day] = per_day.get(day, 0) + row.requests

    kpis = [
        (label("requests", language), _count(overall.requests)),
        (label("client_error_rate", language), _percent(_ratio(overall.client_errors, overall.requests))),
        (label("server_error_rate", language), _percent(_ratio(overall.server_errors, overall.requests))),
        (label("p50", language), _decimal(percentile(overall.buckets, 0.5))),
        (label("p95", language), _decimal(percentile(overall.buckets, 0.95))),
    ]
    ordered = sorted(routes.items(), key=lambda item: (-item[1].requests, item[0]))
    rows = [
        [route, totals.requests]
        + [_rounded(_ratio(totals.client_errors, totals.requests))]
        + [_rounded(_ratio(totals.server_errors, totals.requests))]
        + [_rounded(_ratio(totals.latency_sum_ms, totals.requests), 1)]
        + [
            percentile(totals.buckets, 0.5),
            percentile(totals.buckets, 0.95),
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


# --- formatting ----------------------------------------------------------------------------------


def _count(value: float | None) -> str:
    return f"{int(value or 0):,}"


def _decimal(value: float | None) -> str:
    if value is None:
        return MISSING
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _percent(value: float | None) -> str:
    return MISSING if value is None else f"{value * 100:.1f}%"


def format_cell(value: Any, fmt: str) -> str:
    """A table cell as text (CSV keeps raw values; PDF shows these)."""
    if value is None:
        return MISSING
    if fmt == "int":
        return f"{int(value):,}"
    if fmt == "percent":
        return _percent(float(value))
    if fmt in ("float", "seconds", "ms"):
        return f"{float(value):,.1f}"
    return str(value)


_ARABIC = re.compile("[\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\ufb50-\ufdff\ufe70-\ufeff]")


def has_arabic(text: str) -> bool:
    return _ARABIC.search(text) is not None


@cache
def _matplotlib_reorders_rtl() -> bool:
    """Whether matplotlib lays text out with libraqm (3.11+), which applies the bidi algorithm itself."""
    from matplotlib import ft2font

    return hasattr(ft2font, "__libraqm_version__")


@cache
def _reshaper(keep_harakat: bool) -> Any:
    import arabic_reshaper

    return arabic_reshaper.ArabicReshaper(configuration={"delete_harakat": not keep_harakat})


@lru_cache(maxsize=4096)
def display_text(text: str, *, reorder: bool | None = None) -> str:
    """`text` ready for matplotlib: Arabic letters shaped into their joined presentation forms
    (arabic-reshaper) and, when `reorder` (default: when matplotlib does not reorder right-to-left
    text itself), put in visual order with python-bidi. Harakat (short-vowel marks) are kept only when
    not reordering, that is when libraqm positions them; drawn without it they would overlap. Text
    without Arabic letters is returned as is."""
    if not has_arabic(text):
        return text
    from bidi import get_display

    if reorder is None:
        reorder = not _matplotlib_reorders_rtl()
    shaped = _reshaper(keep_harakat=not reorder).reshape(text)
    return get_display(shaped) if reorder else shaped


# --- renderers -----------------------------------------------------------------------------------


def render(doc: ReportDocument, fmt: str) -> bytes:
    """`doc` in `fmt` ("csv", "xlsx", "pdf" or "json"); see `CONTENT_TYPES` and `EXTENSIONS`."""
    renderers: dict[str, Callable[[ReportDocument], bytes]] = {
        "csv": render_csv,
        "xlsx": render_xlsx,
        "pdf": render_pdf,
        "json": render_json,
    }
    if fmt not in renderers:
        raise ValueError(f"unknown report format {fmt!r}; expected one of {', '.join(renderers)}")
    return renderers[fmt](doc)


def render_json(doc: ReportDocument) -> bytes:
    """UTF-8 JSON (Arabic unescaped), dates in ISO format, KPIs as {label, value} objects."""
    payload = {
        "title": doc.title,
        "subtitle": doc.subtitle,
        "language": doc.language,
        "period_start": doc.period_start.isoformat(),
        "period_end": doc.period_end.isoformat(),
        "kpis": [{"label": name, "value": value} for name, value in doc.kpis],
        "charts": [asdict(chart) for chart in doc.charts],
        "tables": [asdict(table) for table in doc.tables],
    }
    return json.dumps(payload, ensure_ascii=False, indent=2).encode("utf-8")


# Spreadsheets run a cell that starts with one of these as a formula (`=HYPERLINK(...)`, `+cmd|...`,
# `@SUM(...)`); tab and carriage return are in OWASP's list because some importers drop them first.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?\d[\d,]*(\.\d+)?%?")


def spreadsheet_text(value: Any) -> Any:
    """`value` safe for a CSV cell: text starting with a `FORMULA_TRIGGERS` character gets a leading
    single quote (OWASP's advice), so a spreadsheet shows it rather than runs it. Numbers, and text
    that is a plain number ("-12", "-5.0%", "1,234"), are left alone: a spreadsheet reads those as
    numbers, which run nothing."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def render_csv(doc: ReportDocument) -> bytes:
    """UTF-8 with a BOM (so Excel detects the encoding and shows Arabic). Sections separated by a blank
    line, each a one-cell title row, then its header row, then its rows: the report title and period,
    the KPIs (label, formatted value), then every table with raw values (rates as fractions, durations
    in seconds, missing values empty). Text that a spreadsheet would run as a formula starts with a
    single quote (`spreadsheet_text`)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")

    def write(row: Sequence[Any]) -> None:
        writer.writerow(["" if value is None else spreadsheet_text(value) for value in row])

    write([doc.title])
    write([doc.subtitle])
    write([])
    write([label("key_figures", doc.language)])
    write([label("metric", doc.language), label("value", doc.language)])
    for kpi in doc.kpis:
        write(kpi)
    for table in doc.tables:
        write([])
        write([table.title])
        write(table.columns)
        for row in table.rows:
            write(row)
    return ("\ufeff" + out.getvalue()).encode("utf-8")


_SHEET_NAME_INVALID = re.compile(r"[\[\]:*?/\\]")


def sheet_name(title: str, taken: set[str]) -> str:
    """A valid, unique Excel sheet name from `title`: no []:*?/\\, no leading or trailing apostrophe,
    at most 31 characters, numbered when already taken (compared case-insensitively, as Excel does)."""
    base = _SHEET_NAME_INVALID.sub(" ", title).strip().strip("'").strip() or "Sheet"
    name = base[:31]
    number = 2
    while name.casefold() in {other.casefold() for other in taken}:
        suffix = f" ({number})"
        name = base[: 31 - len(suffix)].rstrip() + suffix
        number += 1
    taken.add(name)
    return name


_XLSX_NUMBER_FORMATS = {
    "int": "#,##0",
    "float": "#,##0.0",
    "percent": "0.0%",
    "seconds": "#,##0.0",
    "ms": "#,##0.0",
}


def render_xlsx(doc: ReportDocument) -> bytes:
    """An Excel workbook: a "Summary" sheet with the title, period, KPIs and one native chart per
    `ReportChart` (their data on a "Chart data" sheet at the end), and one sheet per table with a bold,
    frozen header, number formats (rates as 0.0%) and column widths from the longest value. Sheets are
    right-to-left for Arabic. Text is only ever text (`_no_formulas`); numbers stay numbers."""
    from openpyxl import Workbook
    from openpyxl.chart import BarChart, LineChart, Reference
    from openpyxl.styles import Font

    bold = Font(bold=True)
    workbook = Workbook()
    workbook.properties.title = doc.title
    workbook.properties.creator = "Thmnayah"
    taken: set[str] = set()
    summary = workbook.active
    summary.title = sheet_name("Summary", taken)
    summary["A1"] = doc.title
    summary["A1"].font = Font(bold=True, size=14)
    summary["A2"] = doc.subtitle
    summary.append([])
    summary.append([label("metric", doc.language), label("value", doc.language)])
    for cell in summary[4]:
        cell.font = bold
    for row in doc.kpis:
        summary.append([_xlsx_value(value) for value in row])
    _fit_columns(summary, [[name, value] for name, value in doc.kpis], minimum=12)

    sheets = []
    for table in doc.tables:
        sheet = workbook.create_sheet(sheet_name(table.title, taken))
        sheet.append(table.columns)
        for cell in sheet[1]:
            cell.font = bold
        sheet.freeze_panes = "A2"
        for row in table.rows:
            sheet.append([_xlsx_value(value) for value in row])
        for index in range(len(table.columns)):
            number_format = _XLSX_NUMBER_FORMATS.get(table.format_of(index))
            if number_format and table.rows:
                for (cell,) in sheet.iter_rows(
                    min_row=2, max_row=len(table.rows) + 1, min_col=index + 1, max_col=index + 1
                ):
                    cell.number_format = number_format
        shown = [[format_cell(v, table.format_of(i)) for i, v in enumerate(row)] for row in table.rows[:200]]
        _fit_columns(sheet, [table.columns, *shown])
        sheets.append(sheet)

    if doc.charts:
        data = workbook.create_sheet(sheet_name(label("chart_data", doc.language), taken))
        sheets.append(data)
        top_row = 1
        anchor_row = 4
        for chart in doc.charts:
            names = list(chart.series)
            data.cell(top_row, 1, chart.title).font = bold
            if chart.kind == "line":
                data.cell(top_row + 1, 1, label("date", doc.language))
            for offset, name in enumerate(names):
                data.cell(top_row + 1, 2 + offset, name).font = bold
            for i, text in enumerate(chart.labels):
                data.cell(top_row + 2 + i, 1, _xlsx_value(text))
                for offset, name in enumerate(names):
                    data.cell(top_row + 2 + i, 2 + offset, chart.series[name][i])
            last_row = top_row + 1 + len(chart.labels)
            native = LineChart() if chart.kind == "line" else BarChart()
            if chart.kind == "bar" and _horizontal_bars(chart):
                native.type = "bar"
            native.title = chart.title
            native.width, native.height = 18, 9
            if chart.labels:
                native.add_data(
                    Reference(data, min_col=2, max_col=1 + len(names), min_row=top_row + 1, max_row=last_row),
                    titles_from_data=True,
                )
                native.set_categories(Reference(data, min_col=1, min_row=top_row + 2, max_row=last_row))
            summary.add_chart(native, f"D{anchor_row}")
            anchor_row += 20
            top_row = last_row + 2
        _fit_columns(data, [[text] for chart in doc.charts for text in chart.labels], minimum=12)

    for sheet in [summary, *sheets]:
        _no_formulas(sheet)
    if doc.language == "ar":
        for sheet in [summary, *sheets]:
            sheet.sheet_view.rightToLeft = True
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def _xlsx_value(value: Any) -> Any:
    """Text without the control characters that a workbook cannot hold (openpyxl refuses them, which
    would fail the whole workbook over one search query); other values as they are."""
    if isinstance(value, str):
        from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

        return ILLEGAL_CHARACTERS_RE.sub("", value)
    return value


def _no_formulas(sheet: Any) -> None:
    """Every text cell stays text: openpyxl stores a string starting with `=` as a formula, so such
    cells (and any starting with another `FORMULA_TRIGGERS` character) are made plain strings with
    Excel's quote prefix, shown as typed and never run. The workbook holds no formula of its own."""
    for row in sheet.iter_rows():
        for cell in row:
            if isinstance(cell.value, str) and cell.value.startswith(FORMULA_TRIGGERS):
                cell.data_type = "s"
                cell.quotePrefix = True


def _fit_columns(sheet: Any, rows: Sequence[Sequence[Any]], *, minimum: int = 8, maximum: int = 60) -> None:
    from openpyxl.utils import get_column_letter

    widths: dict[int, int] = {}
    for row in rows:
        for index, value in enumerate(row):
            widths[index] = max(widths.get(index, 0), len(str(value)) if value is not None else 0)
    for index, width in widths.items():
        sheet.column_dimensions[get_column_letter(index + 1)].width = min(max(width + 2, minimum), maximum)


def _horizontal_bars(chart: ReportChart) -> bool:
    """Rankings with long labels (content titles) read better as horizontal bars; days stay vertical."""
    return any(len(text) > 12 for text in chart.labels)


# PDF layout, A4 landscape, in figure fractions.
A4_LANDSCAPE = (11.69, 8.27)
PDF_TABLE_ROWS_PER_PAGE = 30
_LEFT, _RIGHT = 0.06, 0.94
_TEXT = "#1f2933"
_MUTED = "#616e7c"


def render_pdf(doc: ReportDocument) -> bytes:
    """A PDF of A4 landscape pages: a title page with the KPIs, one page per chart, and the tables
    paginated (`PDF_TABLE_ROWS_PER_PAGE` rows a page, header repeated), each page numbered. Drawn with
    matplotlib figures (no pyplot, so no global backend state) in DejaVu Sans, whose glyphs cover
    Arabic; Arabic strings go through `display_text` and are right-aligned, and Arabic reports mirror
    their tables (columns from right to left) and ranking charts (labels on the right); time still runs
    left to right. All text is drawn as it is (math text off: `$` is a dollar sign). Metadata Title is
    the report's title; no creation date, so the same document renders to the same bytes."""
    import matplotlib
    from matplotlib.backends.backend_pdf import PdfPages

    rtl = doc.language == "ar"
    table_pages = [
        (table, table.rows[i : i + PDF_TABLE_ROWS_PER_PAGE])
        for table in doc.tables
        for i in range(0, max(len(table.rows), 1), PDF_TABLE_ROWS_PER_PAGE)
    ]
    out = io.BytesIO()
    # text.parse_math off: a `$` in a query or a title is a dollar sign, never mathtext (whose parse
    # errors would fail the whole PDF).
    rc = {
        "font.family": "DejaVu Sans",
        "pdf.fonttype": 3,
        "axes.unicode_minus": False,
        "text.parse_math": False,
    }
    metadata = {"Title": doc.title, "Subject": doc.subtitle, "CreationDate": None}
    with matplotlib.rc_context(rc), PdfPages(out, metadata=metadata) as pdf:
        drawers = [lambda: _title_page(doc, rtl)]
        drawers += [lambda chart=chart: _chart_page(chart, rtl) for chart in doc.charts]
        drawers += [
            lambda table=table, rows=rows: _table_page(table, rows, rtl) for table, rows in table_pages
        ]
        for page, draw in enumerate(drawers, start=1):
            figure = draw()
            _footer(figure, doc, page, len(drawers), rtl)
            pdf.savefig(figure)
    return out.getvalue()


def _new_page() -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=A4_LANDSCAPE)


def _put(figure: Any, x: float, y: float, text: str, *, align: str = "left", **style: Any) -> None:
    style.setdefault("color", _TEXT)
    figure.text(x, y, display_text(text), ha=align, va="baseline", **style)


def _heading(figure: Any, title: str, rtl: bool, *, size: int = 16) -> None:
    x, align = (_RIGHT, "right") if rtl else (_LEFT, "left")
    _put(figure, x, 0.93, title, align=align, fontsize=size, fontweight="bold")


def _footer(figure: Any, doc: ReportDocument, page: int, pages: int, rtl: bool) -> None:
    numbering = label("page", doc.language).format(page=page, pages=pages)
    _put(figure, _LEFT, 0.03, numbering if rtl else doc.title, fontsize=8, color=_MUTED)
    _put(figure, _RIGHT, 0.03, doc.title if rtl else numbering, align="right", fontsize=8, color=_MUTED)


def _title_page(doc: ReportDocument, rtl: bool) -> Any:
    figure = _new_page()
    start, end = (_RIGHT, _LEFT) if rtl else (_LEFT, _RIGHT)
    near, far = ("right", "left") if rtl else ("left", "right")
    _put(figure, start, 0.80, doc.title, align=near, fontsize=26, fontweight="bold")
    _put(figure, start, 0.74, doc.subtitle, align=near, fontsize=13, color=_MUTED)
    _put(figure, start, 0.64, label("key_figures", doc.language), align=near, fontsize=15, fontweight="bold")
    figure.add_artist(_rule(0.625))
    step = min(0.06, 0.55 / max(len(doc.kpis), 1))
    for i, (name, value) in enumerate(doc.kpis):
        y = 0.58 - i * step
        _put(figure, start, y, name, align=near, fontsize=13)
        _put(figure, end, y, value, align=far, fontsize=13, fontweight="bold")
    return figure


def _rule(y: float) -> Any:
    from matplotlib.lines import Line2D

    return Line2D([_LEFT, _RIGHT], [y, y], color="#cbd2d9", linewidth=0.8)


def _chart_page(chart: ReportChart, rtl: bool) -> Any:
    figure = _new_page()
    _heading(figure, chart.title, rtl)
    horizontal = chart.kind == "bar" and _horizontal_bars(chart)
    left = 0.34 if horizontal and not rtl else 0.08
    right = 0.66 if horizontal and rtl else 0.92
    axes = figure.add_axes((left, 0.16, right - left, 0.70))
    positions = list(range(len(chart.labels)))
    names = list(chart.series)
    if chart.kind == "line":
        for name in names:
            axes.plot(
                positions,
                chart.series[name],
                marker="o",
                markersize=3,
                linewidth=1.6,
                label=display_text(name),
            )
    elif horizontal:
        height = 0.8 / max(len(names), 1)
        for k, name in enumerate(names):
            axes.barh(
                [p + k * height for p in positions],
                chart.series[name],
                height=height,
                label=display_text(name),
            )
        axes.set_yticks([p + height * (len(names) - 1) / 2 for p in positions])
        axes.set_yticklabels([display_text(_truncate(text, 45)) for text in chart.labels], fontsize=8)
        axes.invert_yaxis()
        if rtl:
            axes.invert_xaxis()
            axes.yaxis.tick_right()
    else:
        width = 0.8 / max(len(names), 1)
        for k, name in enumerate(names):
            axes.bar(
                [p + k * width for p in positions], chart.series[name], width=width, label=display_text(name)
            )
    if not horizontal:
        step = max(1, math.ceil(len(positions) / 16))
        axes.set_xticks(positions[::step])
        axes.set_xticklabels(
            [display_text(text) for text in chart.labels[::step]], rotation=45, ha="right", fontsize=8
        )
    value_axis = axes.xaxis if horizontal else axes.yaxis
    value_axis.set_major_formatter(_thousands_formatter())
    axes.grid(axis="x" if horizontal else "y", color="#e4e7eb", linewidth=0.6)
    axes.set_axisbelow(True)
    for side in ("top", "left" if horizontal and rtl else "right"):
        axes.spines[side].set_visible(False)
    if len(names) > 1 or chart.kind == "line":
        axes.legend(loc="upper right" if rtl else "upper left", fontsize=9, frameon=False)
    if not positions:
        axes.set_xticks([])
        axes.set_yticks([])
    return figure


def _thousands_formatter() -> Any:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda value, _: f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}")


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _table_page(table: ReportTable, rows: list[list[Any]], rtl: bool) -> Any:
    """One page of a table: columns sized by their values (headers wrap onto two lines rather than
    widen a column), numbers right-aligned, text aligned to its reading direction, every other row
    shaded; an Arabic table runs from the right."""
    from matplotlib.patches import Rectangle

    figure = _new_page()
    _heading(figure, table.title, rtl, size=14)
    cells = [[format_cell(value, table.format_of(i)) for i, value in enumerate(row)] for row in rows]
    # Column widths in characters: the longest value (capped), at least part of the header, and a gap.
    chars = [
        max(min(max([4, *(len(row[i]) for row in cells)]), 42), min(len(column), 14)) + 2
        for i, column in enumerate(table.columns)
    ]
    span = _RIGHT - _LEFT
    widths = [span * n / sum(chars) for n in chars]
    # Column i spans [edges[i], edges[i] + widths[i]].
    edges: list[float] = []
    x = _RIGHT if rtl else _LEFT
    for width in widths:
        edges.append(x - width if rtl else x)
        x = x - width if rtl else x + width
    font_size = 8 if len(table.columns) <= 8 else 7
    # About how many characters of this size fit in a column (DejaVu Sans averages ~0.62 em).
    fit = [max(3, int(width * A4_LANDSCAPE[0] * 72 / (font_size * 0.62)) - 1) for width in widths]
    headers = [textwrap.wrap(column, fit[i]) or [""] for i, column in enumerate(table.columns)]
    if any(len(lines) > 2 for lines in headers):
        headers = [lines[:1] + [_truncate(" ".join(lines[1:]), fit[i])] if len(lines) > 1 else lines
                   for i, lines in enumerate(headers)]  # fmt: skip
    row_height = 0.78 / (PDF_TABLE_ROWS_PER_PAGE + 2)
    header_height = row_height * (1.7 if any(len(lines) > 1 for lines in headers) else 1)
    top = 0.87

    def cell(y: float, i: int, text: str, **style: Any) -> None:
        at_right = table.format_of(i) != "text" or rtl or has_arabic(text)
        x = edges[i] + widths[i] - 0.004 if at_right else edges[i] + 0.004
        figure.text(x, y, text, ha="right" if at_right else "left", va="center", fontsize=font_size,
                    color=_TEXT, linespacing=1.1, **style)  # fmt: skip

    figure.add_artist(
        Rectangle(
            (_LEFT, top - header_height), span, header_height, color="#e4e7eb", transform=figure.transFigure
        )
    )
    for i, lines in enumerate(headers):
        cell(top - header_height / 2, i, "\n".join(display_text(line) for line in lines), fontweight="bold")
    for r, row in enumerate(cells):
        bottom = top - header_height - (r + 1) * row_height
        if r % 2:
            shade = Rectangle(
                (_LEFT, bottom), span, row_height, color="#f5f7fa", transform=figure.transFigure
            )
            figure.add_artist(shade)
        for i, text in enumerate(row):
            cell(bottom + row_height / 2, i, display_text(_truncate(text, fit[i])))
    return figure
