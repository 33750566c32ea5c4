"""Excel rendering of a report: a summary sheet with native charts, and one sheet per table."""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from typing import Any

from domain.analytics.reports.csv import FORMULA_TRIGGERS
from domain.analytics.reports.document import ReportDocument, format_cell, horizontal_bars
from domain.analytics.reports.labels import label

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
            if chart.kind == "bar" and horizontal_bars(chart):
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
