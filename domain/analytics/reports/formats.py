"""The formats a report renders to, with their content types and file extensions, and `render`, which
picks the renderer. Each renderer imports its heavy library (openpyxl, matplotlib) only when called, so
the API process can import this module for `CONTENT_TYPES` and `EXTENSIONS` cheaply."""

from __future__ import annotations

from collections.abc import Callable

from domain.analytics.reports.csv import render_csv
from domain.analytics.reports.document import ReportDocument
from domain.analytics.reports.json import render_json
from domain.analytics.reports.pdf import render_pdf
from domain.analytics.reports.xlsx import render_xlsx

CONTENT_TYPES: dict[str, str] = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
    "json": "application/json",
}
EXTENSIONS: dict[str, str] = {"csv": ".csv", "xlsx": ".xlsx", "pdf": ".pdf", "json": ".json"}


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
