"""The report document: what a report says (title, period, KPIs, charts, tables), independent of the
format it is rendered to, and how its values read as text.

A table cell holds the raw value (a rate as a fraction, a duration in seconds) and each table names its
columns' formats, so every renderer can present them its own way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

Language = Literal["ar", "en"]
LANGUAGES: tuple[str, ...] = ("ar", "en")

# How a table column is presented: text as is; counts with separators; rates (fractions) in percent;
# seconds and milliseconds as decimals.
ColumnFormat = Literal["text", "int", "float", "percent", "seconds", "ms"]
MISSING = "–"


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


def horizontal_bars(chart: ReportChart) -> bool:
    """Rankings with long labels (content titles) read better as horizontal bars; days stay vertical."""
    return any(len(text) > 12 for text in chart.labels)


def format_count(value: float | None) -> str:
    return f"{int(value or 0):,}"


def format_decimal(value: float | None) -> str:
    if value is None:
        return MISSING
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def format_percent(value: float | None) -> str:
    return MISSING if value is None else f"{value * 100:.1f}%"


def format_cell(value: Any, fmt: str) -> str:
    """A table cell as text (CSV keeps raw values; PDF shows these)."""
    if value is None:
        return MISSING
    if fmt == "int":
        return f"{int(value):,}"
    if fmt == "percent":
        return format_percent(float(value))
    if fmt in ("float", "seconds", "ms"):
        return f"{float(value):,.1f}"
    return str(value)
