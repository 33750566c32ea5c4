"""Analytics reports: aggregates built from known serving rows (SQLite, and once on both backends), and
the CSV, Excel, PDF and JSON renderings read back with their own readers."""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import arabic_reshaper
import openpyxl
import pypdfium2 as pdfium
import pytest
import sqlalchemy as sa
from bidi import get_display
from sqlalchemy.orm import Session

from domain.analytics.health import BUCKET_COUNT, bucket_index
from domain.analytics.reports.document import MISSING, ReportDocument, ReportTable
from domain.analytics.reports.formats import CONTENT_TYPES, EXTENSIONS, render
from domain.analytics.reports.pdf import display_text
from domain.analytics.reports.sections import build_document
from domain.analytics.reports.xlsx import sheet_name
from domain.db import sync_engine
from domain.migrate import upgrade
from domain.schema import (
    REPORT_FORMATS,
    ContentItem,
    ContentMetricsDaily,
    RouteMinute,
    SearchAnalyticsDaily,
    User,
    UserEngagementDaily,
)

START = date(2026, 11, 1)
END = date(2026, 11, 4)  # exclusive: three days
DAY1, DAY2, DAY3 = START, START + timedelta(days=1), START + timedelta(days=2)
OUTSIDE = END  # first day after the period: its rows must not count

ARTICLE = uuid.UUID("01900000-0000-7000-8000-00000000000a")
ARABIC_ONLY = uuid.UUID("01900000-0000-7000-8000-00000000000b")
DELETED = uuid.UUID("01900000-0000-7000-8000-00000000000c")
ALICE = uuid.UUID("01900000-0000-7000-8000-0000000000a1")
GONE = uuid.UUID("01900000-0000-7000-8000-0000000000a2")

ARTICLE_TITLE = {"ar": "تاريخ الخط العربي", "en": "History of Arabic calligraphy"}
ARABIC_ONLY_TITLE = "أمسية شعرية"


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[sa.Engine]:
    upgrade(sqlite_url)
    engine = sync_engine(sqlite_url)
    yield engine
    engine.dispose()


def _metrics(
    content_id: uuid.UUID,
    day: date,
    views: int,
    viewers: int,
    watch: int,
    rate: float | None,
    *,
    shares: int = 0,
    favorites: int = 0,
    comments: int = 0,
) -> ContentMetricsDaily:
    engagement = views + 3 * favorites + 4 * comments + 5 * shares
    return ContentMetricsDaily(
        content_id=content_id,
        date=day,
        view_count=views,
        unique_viewers=viewers,
        average_watch_time=watch,
        completion_rate=rate,
        engagement_score=float(engagement),
        share_count=shares,
        favorite_count=favorites,
        comment_count=comments,
    )


def _search(
    query: str,
    day: date,
    language: str,
    user_type: str,
    searches: int,
    clicks: int,
    zero: int,
    results: float | None,
    position: float | None,
) -> SearchAnalyticsDaily:
    return SearchAnalyticsDaily(
        query_text=query,
        date=day,
        language=language,
        user_type=user_type,
        search_count=searches,
        result_count=results,
        click_count=clicks,
        click_through_rate=clicks / searches if searches else None,
        average_position=position,
        zero_result_count=zero,
        zero_result_rate=zero / searches if searches else None,
    )


def _buckets(latencies: dict[float, int]) -> list[int]:
    buckets = [0] * BUCKET_COUNT
    for latency, count in latencies.items():
        buckets[bucket_index(latency)] += count
    return buckets


def _minute(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def _seed(engine: sa.Engine) -> None:
    """Known rows for every report type, each with a row on the day after the period."""
    with Session(engine) as session, session.begin():
        session.add_all(
            [
                ContentItem(id=ARTICLE, type="article", title=ARTICLE_TITLE, slug="calligraphy"),
                ContentItem(id=ARABIC_ONLY, type="video", title={"ar": ARABIC_ONLY_TITLE}, slug="poetry"),
                User(id=ALICE, username="alice", email="alice@example.test"),
            ]
        )
        session.add_all(
            [
                _metrics(ARTICLE, DAY1, 10, 4, 100, 0.5, shares=1, favorites=2, comments=3),
                _metrics(ARTICLE, DAY2, 30, 6, 200, 1.0),
                _metrics(ARABIC_ONLY, DAY1, 5, 5, 0, None),
                _metrics(DELETED, DAY3, 2, 2, 60, 0.0),
                _metrics(ARTICLE, OUTSIDE, 1000, 900, 50, 0.1),
            ]
        )
        session.add_all(
            [
                UserEngagementDaily(
                    user_id=ALICE,
                    date=DAY1,
                    session_count=2,
                    total_session_time=600,
                    page_views=7,
                    content_interactions=1,
                    search_queries=3,
                    downloads=1,
                    shares=1,
                    last_activity=_minute(DAY1, 21, 5),
                ),
                UserEngagementDaily(
                    user_id=ALICE,
                    date=DAY2,
                    session_count=1,
                    total_session_time=900,
                    page_views=2,
                    search_queries=1,
                    last_activity=_minute(DAY2, 8),
                ),
                UserEngagementDaily(
                    user_id=GONE,
                    date=DAY2,
                    session_count=1,
                    total_session_time=100,
                    page_views=1,
                    downloads=2,
                ),
                UserEngagementDaily(user_id=GONE, date=OUTSIDE, session_count=50, total_session_time=9999),
            ]
        )
        session.add_all(
            [
                _search("قرآن", DAY1, "ar", "anonymous", 10, 4, 0, 20.0, 1.5),
                _search("قرآن", DAY1, "ar", "registered", 10, 6, 0, 10.0, 3.0),
                _search("قرآن", DAY2, "ar", "anonymous", 5, 0, 0, 12.0, None),
                _search("recipes", DAY2, "en", "anonymous", 8, 2, 4, 1.0, 2.0),
                _search("zzxq", DAY3, "en", "registered", 2, 0, 2, 0.0, None),
                _search("late", OUTSIDE, "en", "anonymous", 100, 0, 100, 0.0, None),
            ]
        )
        session.add_all(
            [
                RouteMinute(
                    minute=_minute(DAY1, 10),
                    route="GET /api/v1/content",
                    requests=100,
                    client_errors=4,
                    server_errors=1,
                    latency_sum_ms=2000.0,
                    latency_max_ms=450.0,
                    latency_buckets=_buckets({10: 80, 150: 10, 400: 10}),
                ),
                RouteMinute(
                    minute=_minute(DAY2, 23, 59),
                    route="GET /api/v1/content",
                    requests=100,
                    latency_sum_ms=1000.0,
                    latency_max_ms=30.0,
                    latency_buckets=_buckets({10: 100}),
                ),
                RouteMinute(
                    minute=_minute(DAY2, 12),
                    route="POST /api/v1/search",
                    requests=20,
                    server_errors=2,
                    latency_sum_ms=4000.0,
                    latency_max_ms=900.0,
                    latency_buckets=_buckets({200: 19, 900: 1}),
                ),
                RouteMinute(
                    minute=_minute(OUTSIDE, 0),
                    route="GET /api/v1/content",
                    requests=5000,
                    server_errors=5000,
                    latency_sum_ms=1.0,
                    latency_max_ms=1.0,
                    latency_buckets=_buckets({10000: 5000}),
                ),
            ]
        )


def _build(engine: sa.Engine, report_type: str, language: str = "en", **kwargs) -> ReportDocument:
    with engine.connect() as conn:
        return build_document(conn, report_type, START, END, language, **kwargs)


def _table(doc: ReportDocument, title: str) -> list[dict]:
    table = next(table for table in doc.tables if table.title == title)
    return [dict(zip(table.columns, row, strict=True)) for row in table.rows]


# --- aggregates --------------------------------------------------------------------------------------


def test_content_report_weights_daily_rows_over_the_period(engine):
    _seed(engine)
    doc = _build(engine, "content")

    assert doc.title == "Content performance report"
    assert doc.subtitle == "Period: 2026-11-01 to 2026-11-03 (UTC)"
    # Watch time weighted by views: (100*10 + 200*30 + 0*5 + 60*2) / 47; completion weighted by viewers,
    # days without a rate left out: (0.5*4 + 1.0*6 + 0.0*2) / 12 (a mean of daily rates would be 0.5).
    assert dict(doc.kpis) == {
        "Views": "47",
        "Unique viewers (daily, summed)": "17",
        "Avg watch time (s)": "151.5",
        "Completion rate": "66.7%",
        "Engagement score": "70",
    }
    rows = _table(doc, "Top content")
    assert [row["Content"] for row in rows] == [ARTICLE_TITLE["en"], ARABIC_ONLY_TITLE, str(DELETED)]
    assert rows[0] == {
        "Content": ARTICLE_TITLE["en"],
        "Views": 40,
        "Unique viewers (daily, summed)": 10,
        "Avg watch time (s)": 175.0,
        "Completion rate": 0.8,
        "Shares": 1,
        "Favorites": 2,
        "Comments": 3,
        "Engagement score": 63.0,
    }
    assert rows[1]["Completion rate"] is None
    daily, ranking = doc.charts
    assert (daily.kind, daily.labels) == ("line", ["2026-11-01", "2026-11-02", "2026-11-03"])
    assert daily.series == {"Views": [15.0, 30.0, 2.0]}
    assert (ranking.kind, ranking.labels[0], ranking.series["Views"]) == (
        "bar",
        ARTICLE_TITLE["en"],
        [40.0, 5.0, 2.0],
    )


def test_arabic_report_translates_labels_and_prefers_arabic_titles(engine):
    _seed(engine)
    with Session(engine) as session, session.begin():
        session.add(ContentItem(id=DELETED, type="video", title={"en": "English only"}, slug="english"))
    doc = _build(engine, "content", "ar", top=2)

    assert doc.title == "تقرير أداء المحتوى"
    assert doc.language == "ar"
    assert [name for name, _ in doc.kpis][0] == "المشاهدات"
    assert [row[0] for row in doc.tables[0].rows] == [ARTICLE_TITLE["ar"], ARABIC_ONLY_TITLE]
    assert _build(engine, "content", "ar").tables[0].rows[2][0] == "English only"


def test_user_report_counts_distinct_users_and_session_time_per_session(engine):
    _seed(engine)
    doc = _build(engine, "user")

    assert dict(doc.kpis) == {
        "Active users": "2",
        "Sessions": "4",
        "Avg session time (s)": "400",  # 1600 s / 4 sessions
        "Page views": "10",
        "Searches": "4",
        "Downloads": "3",
    }
    rows = _table(doc, "Top users by session time")
    assert [row["Username"] for row in rows] == ["alice", str(GONE)]
    assert rows[0]["Active days"] == 2
    assert rows[0]["Avg session time (s)"] == 500.0
    assert rows[0]["Last activity (UTC)"] == "2026-11-02 08:00"
    assert doc.charts[0].series == {"Active users": [1.0, 2.0, 0.0], "Sessions": [2.0, 2.0, 0.0]}


def test_search_report_rates_are_ratios_of_sums(engine):
    _seed(engine)
    doc = _build(engine, "search")

    # 35 searches, 12 clicks, 6 zero-result searches; position weighted by clicks:
    # (1.5*4 + 3.0*6 + 2.0*2) / 12.
    assert dict(doc.kpis) == {
        "Searches": "35",
        "Zero-result rate": "17.1%",
        "Click-through rate": "34.3%",
        "Avg clicked position": "2.3",
    }
    popular = _table(doc, "Popular queries")
    assert [(row["Query"], row["Language"]) for row in popular] == [
        ("قرآن", "ar"),
        ("recipes", "en"),
        ("zzxq", "en"),
    ]
    assert popular[0]["Searches"] == 25
    assert popular[0]["Click-through rate"] == 0.4
    assert popular[0]["Avg results"] == 14.4  # (20*10 + 10*10 + 12*5) / 25
    assert popular[0]["Avg clicked position"] == 2.4  # (1.5*4 + 3.0*6) / 10
    zero = _table(doc, "Zero-result queries")
    assert [(row["Query"], row["Zero-result searches"], row["Zero-result rate"]) for row in zero] == [
        ("recipes", 4, 0.5),
        ("zzxq", 2, 1.0),
    ]
    assert doc.charts[0].series["Searches"] == [20.0, 13.0, 2.0]


def test_system_report_reads_percentiles_from_summed_histograms(engine):
    _seed(engine)
    doc = _build(engine, "system")

    # Summed histograms: 180 requests at <= 10 ms, 10 at <= 150, 19 at <= 200, 10 at <= 500, 1 at <= 1000.
    # p95 is the bucket holding rank 209 of 220 (180 + 10 + 19); p50 the one holding rank 110.
    assert dict(doc.kpis) == {
        "Requests": "220",
        "4xx error rate": "1.8%",
        "5xx error rate": "1.4%",
        "p50 latency (ms)": "10",
        "p95 latency (ms)": "200",
    }
    routes = _table(doc, "Requests by route")
    assert routes[0] == {
        "Route": "GET /api/v1/content",
        "Requests": 200,
        "4xx error rate": 0.02,
        "5xx error rate": 0.005,
        "Avg latency (ms)": 15.0,
        "p50 latency (ms)": 10,
        "p95 latency (ms)": 150,
        "Max latency (ms)": 450.0,
    }
    assert routes[1]["p95 latency (ms)"] == 200
    assert doc.charts[0].series == {"Requests": [100.0, 120.0, 0.0]}  # 23:59 UTC stays on its day


def test_custom_report_combines_content_and_search(engine):
    _seed(engine)
    doc = _build(engine, "custom")

    assert [title for title, _ in doc.kpis][:2] == ["Views", "Unique viewers (daily, summed)"]
    assert "Zero-result rate" in dict(doc.kpis)
    assert [table.title for table in doc.tables] == ["Top content", "Popular queries", "Zero-result queries"]
    assert len(doc.charts) == 3


@pytest.mark.parametrize(
    ("report_type", "language", "start", "end", "top", "message"),
    [
        ("revenue", "en", START, END, 20, "unknown report type"),
        ("content", "fr", START, END, 20, "unknown report language"),
        ("content", "en", END, START, 20, "empty report period"),
        ("content", "en", START, START, 20, "empty report period"),
        ("content", "en", START, END, 0, "top must be"),
    ],
)
def test_invalid_requests_are_refused(engine, report_type, language, start, end, top, message):
    with engine.connect() as conn, pytest.raises(ValueError, match=message):
        build_document(conn, report_type, start, end, language, top=top)


def test_reports_on_both_backends(migrated_url):
    """The same rows give the same figures on SQLite and PostgreSQL (UUID keys, JSON histograms,
    date filters, CASE-weighted sums)."""
    engine = sync_engine(migrated_url)
    try:
        _seed(engine)
        assert dict(_build(engine, "content").kpis)["Completion rate"] == "66.7%"
        assert _build(engine, "content").tables[0].rows[0][0] == ARTICLE_TITLE["en"]
        assert dict(_build(engine, "user").kpis)["Avg session time (s)"] == "400"
        assert _build(engine, "user").tables[0].rows[0][0] == "alice"
        assert dict(_build(engine, "search").kpis)["Avg clicked position"] == "2.3"
        assert dict(_build(engine, "system").kpis)["p95 latency (ms)"] == "200"
        assert _build(engine, "custom", "ar").tables[1].rows[0][:2] == ["قرآن", "ar"]
    finally:
        engine.dispose()


# --- rendering ---------------------------------------------------------------------------------------


def _csv_sections(data: bytes) -> list[list[list[str]]]:
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data[3:].decode("utf-8"))))
    sections: list[list[list[str]]] = [[]]
    for row in rows:
        if row:
            sections[-1].append(row)
        else:
            sections.append([])
    return sections


def test_csv_has_bom_and_a_section_per_table(engine):
    _seed(engine)
    doc = _build(engine, "search", "ar")
    heading, kpis, popular, zero = _csv_sections(render(doc, "csv"))

    assert heading == [["تقرير تحليلات البحث"], ["الفترة: من 2026-11-01 إلى 2026-11-03 (UTC)"]]
    assert kpis[:3] == [["المؤشرات الرئيسية"], ["المؤشر", "القيمة"], ["عمليات البحث", "35"]]
    assert popular[0] == ["عبارات البحث الأكثر شيوعًا"]
    assert popular[1] == doc.tables[0].columns
    assert popular[2][:4] == ["قرآن", "ar", "25", "14.4"]
    assert zero[2] == ["recipes", "en", "8", "4", "0.5"]


def test_xlsx_summary_charts_tables_and_formats(engine):
    _seed(engine)
    doc = _build(engine, "content")
    workbook = openpyxl.load_workbook(io.BytesIO(render(doc, "xlsx")))

    assert workbook.sheetnames == ["Summary", "Top content", "Chart data"]
    summary = workbook["Summary"]
    assert summary["A1"].value == "Content performance report"
    assert [c.value for c in summary[4]] == ["Metric", "Value"] and summary["A4"].font.b
    assert [summary.cell(5, 1).value, summary.cell(5, 2).value] == ["Views", "47"]
    assert len(summary._charts) == 2
    assert not summary.sheet_view.rightToLeft
    table = workbook["Top content"]
    assert [c.value for c in table[1]] == doc.tables[0].columns
    assert all(c.font.b for c in table[1])
    assert [c.value for c in table[2]][:5] == [ARTICLE_TITLE["en"], 40, 10, 175, 0.8]
    assert table["E2"].number_format == "0.0%"
    assert table["B2"].number_format == "#,##0"
    assert table.column_dimensions["A"].width > table.column_dimensions["B"].width


def test_xlsx_arabic_sheets_are_right_to_left_with_valid_names(engine):
    _seed(engine)
    workbook = openpyxl.load_workbook(io.BytesIO(render(_build(engine, "search", "ar"), "xlsx")))

    assert workbook.sheetnames == [
        "Summary",
        "عبارات البحث الأكثر شيوعًا",
        "عبارات بحث بلا نتائج",
        "بيانات الرسوم",
    ]
    assert all(sheet.sheet_view.rightToLeft for sheet in workbook.worksheets)
    assert workbook["Summary"]["A1"].value == "تقرير تحليلات البحث"
    assert len(workbook["Summary"]._charts) == 1


def test_sheet_names_are_valid_unique_and_short():
    taken: set[str] = set()

    assert sheet_name("Queries: [top]/all?", taken) == "Queries   top  all"
    assert sheet_name("x" * 40, taken) == "x" * 31
    assert sheet_name("X" * 40, taken) == "X" * 27 + " (2)"
    assert sheet_name("'quoted'", taken) == "quoted"
    assert all(len(name) <= 31 for name in taken)


def _pdf_glyphs(data: bytes) -> set[int]:
    """The code points of the glyphs the PDF's (Type 3) fonts draw, from their `uniXXXX` names."""
    return {int(code, 16) for code in re.findall(rb"/uni([0-9A-F]{4})", data)}


def _ink(page: pdfium.PdfPage) -> int:
    """Dark pixels on the page rendered at 72 dpi (a blank page has none)."""
    return sum(page.render(scale=1).to_pil().convert("L").histogram()[:200])


def test_pdf_pages_metadata_and_ink(engine):
    _seed(engine)
    doc = _build(engine, "content")
    data = render(doc, "pdf")
    pdf = pdfium.PdfDocument(data)

    assert len(pdf) == 1 + 2 + 1  # title page, two charts, one table page
    assert pdf.get_metadata_dict()["Title"] == "Content performance report"
    width, height = pdf[0].get_size()
    assert (round(width), round(height)) == (842, 595)  # A4 landscape, in points
    assert _ink(pdf[0]) > 2000
    text = pdf[0].get_textpage().get_text_range()
    assert "Content performance report" in text and "66.7%" in text
    assert ARTICLE_TITLE["en"] in pdf[3].get_textpage().get_text_range()
    assert render(doc, "pdf") == data


def test_pdf_tables_are_paginated(engine):
    with Session(engine) as session, session.begin():
        for n in range(65):
            session.add(_metrics(uuid.uuid4(), DAY1, 100 + n, 1, 1, None))
    doc = _build(engine, "content", top=100)
    pdf = pdfium.PdfDocument(render(doc, "pdf"))

    assert len(doc.tables[0].rows) == 65
    assert len(pdf) == 1 + 2 + 3  # 65 rows at 30 a page
    assert "Page 6 of 6" in pdf[5].get_textpage().get_text_range()


def test_pdf_arabic_is_shaped_and_in_reading_order(engine):
    """Every Arabic glyph drawn is a joined presentation form (the shaped title's forms among them):
    unshaped text would draw the base letters U+0621-U+064A. The text layer reads the title in logical
    order, which fails if the text were reordered twice (python-bidi on top of matplotlib's libraqm)."""
    _seed(engine)
    doc = _build(engine, "content", "ar")
    data = render(doc, "pdf")
    pdf = pdfium.PdfDocument(data)

    glyphs = _pdf_glyphs(data)
    shaped_title = {ord(c) for c in arabic_reshaper.reshape(doc.title) if c != " "}
    assert shaped_title <= glyphs
    assert not {code for code in glyphs if 0x0621 <= code <= 0x064A}
    assert pdf.get_metadata_dict()["Title"] == "تقرير أداء المحتوى"
    first_page = pdf[0].get_textpage().get_text_range()
    assert "تقرير أداء المحتوى" in first_page
    assert _ink(pdf[0]) > 2000


def test_display_text_shapes_arabic_and_reorders_only_when_asked():
    title = "تقرير أداء المحتوى 2026"

    assert display_text("Views 2026") == "Views 2026"
    assert display_text(title, reorder=False) == arabic_reshaper.reshape(title)
    assert display_text(title, reorder=True) == get_display(arabic_reshaper.reshape(title))
    assert display_text(title, reorder=True) != display_text(title, reorder=False)
    assert all(not 0x0621 <= ord(c) <= 0x064A for c in display_text(title))
    assert "\u064b" in display_text("يوميًا", reorder=False)  # tanween kept for libraqm to place
    assert "\u064b" not in display_text("يوميًا", reorder=True)


def test_json_keeps_arabic_and_iso_dates(engine):
    _seed(engine)
    data = render(_build(engine, "user", "ar"), "json")
    payload = json.loads(data)

    assert "تقرير تفاعل المستخدمين".encode() in data
    assert (payload["period_start"], payload["period_end"]) == ("2026-11-01", "2026-11-04")
    assert payload["kpis"][0] == {"label": "المستخدمون النشطون", "value": "2"}
    assert payload["tables"][0]["rows"][0][0] == "alice"


def test_unknown_format_is_refused_and_formats_are_complete(engine):
    doc = _build(engine, "content")

    with pytest.raises(ValueError, match="unknown report format 'docx'"):
        render(doc, "docx")
    assert set(CONTENT_TYPES) == set(EXTENSIONS) == set(REPORT_FORMATS)


@pytest.mark.parametrize("report_type", ["content", "user", "search", "system", "custom"])
def test_an_empty_period_renders_zeros_in_every_format(engine, report_type):
    doc = _build(engine, report_type, "ar")

    assert all(not table.rows for table in doc.tables)
    counts = [value for _, value in doc.kpis if value != MISSING]
    assert counts and set(counts) == {"0"}
    sections = _csv_sections(render(doc, "csv"))
    assert sections[1][2][1] == "0"
    workbook = openpyxl.load_workbook(io.BytesIO(render(doc, "xlsx")))
    assert workbook["Summary"].cell(5, 2).value == "0"
    pdf = pdfium.PdfDocument(render(doc, "pdf"))
    assert len(pdf) == 1 + len(doc.charts) + len(doc.tables)
    assert json.loads(render(doc, "json"))["tables"][0]["rows"] == []


def test_spreadsheets_quote_formula_text_but_keep_numbers():
    """Text a spreadsheet would run (`=`, `+`, `-`, `@`, tab, CR first) is quoted in the CSV and a plain
    string in the workbook; numbers, negative ones and text that is a plain number, stay as they are."""
    table = ReportTable(
        "Queries",
        ["query", "change"],
        [["=1+1", -3], ["-2+3", -2.5], ["-5.0%", 0], ["@SUM(A1)", 1], ["\tx", 2], ["\rx", 3], ["a=b", 4]],
        ["text", "float"],
    )
    doc = ReportDocument("T", "S", "en", START, END, [("change", "-1,234")], [], [table])

    rows = list(csv.reader(io.StringIO(render(doc, "csv").decode("utf-8-sig"))))
    assert ["change", "-1,234"] in rows
    body = rows[rows.index(["query", "change"]) + 1 :]
    assert body == [
        ["'=1+1", "-3"],
        ["'-2+3", "-2.5"],
        ["-5.0%", "0"],
        ["'@SUM(A1)", "1"],
        ["'\tx", "2"],
        ["'\rx", "3"],
        ["a=b", "4"],
    ]
    sheet = openpyxl.load_workbook(io.BytesIO(render(doc, "xlsx")))["Queries"]
    assert [(c.value, c.data_type) for c in sheet["A"][1:3]] == [("=1+1", "s"), ("-2+3", "s")]
    assert sheet["A2"].quotePrefix and sheet["A3"].quotePrefix and not sheet["A8"].quotePrefix
    assert [c.value for c in sheet["B"][1:3]] == [-3, -2.5]
    assert {c.data_type for c in sheet["B"][1:]} == {"n"}


def test_display_text_drops_control_characters_no_font_can_draw():
    assert display_text("bell\x07 in a query\x1b") == "bell in a query"
    assert display_text("two\nlines\tand a tab") == "two\nlines\tand a tab"
