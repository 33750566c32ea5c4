"""CSV rendering of a report, safe to open in a spreadsheet (no cell runs as a formula)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from typing import Any

from domain.analytics.reports.document import ReportDocument
from domain.analytics.reports.labels import label

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
