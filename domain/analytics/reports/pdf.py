"""PDF rendering of a report with matplotlib, in Arabic or English.

Arabic text in PDFs: matplotlib >= 3.11 lays text out with libraqm, which shapes Arabic and reorders
it right-to-left itself; reordering it beforehand with python-bidi would reverse it a second time.
`display_text` therefore always shapes (presentation forms, so older matplotlib joins letters too)
but reorders only when matplotlib cannot.
"""

from __future__ import annotations

import io
import math
import re
import textwrap
from functools import cache, lru_cache
from typing import Any

from domain.analytics.reports.document import (
    ReportChart,
    ReportDocument,
    ReportTable,
    format_cell,
    horizontal_bars,
)
from domain.analytics.reports.labels import label

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


_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@lru_cache(maxsize=4096)
def display_text(text: str, *, reorder: bool | None = None) -> str:
    """`text` ready for matplotlib: Arabic letters shaped into their joined presentation forms
    (arabic-reshaper) and, when `reorder` (default: when matplotlib does not reorder right-to-left
    text itself), put in visual order with python-bidi. Harakat (short-vowel marks) are kept only when
    not reordering, that is when libraqm positions them; drawn without it they would overlap. Text
    without Arabic letters is returned as is. Control characters (no font has a glyph for them) are
    dropped; line breaks and tabs stay."""
    text = _CONTROL_CHARS.sub("", text)
    if not has_arabic(text):
        return text
    from bidi import get_display

    if reorder is None:
        reorder = not _matplotlib_reorders_rtl()
    shaped = _reshaper(keep_harakat=not reorder).reshape(text)
    return get_display(shaped) if reorder else shaped


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
    horizontal = chart.kind == "bar" and horizontal_bars(chart)
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
        headers = [
            lines[:1] + [_truncate(" ".join(lines[1:]), fit[i])] if len(lines) > 1 else lines
            for i, lines in enumerate(headers)
        ]
    row_height = 0.78 / (PDF_TABLE_ROWS_PER_PAGE + 2)
    header_height = row_height * (1.7 if any(len(lines) > 1 for lines in headers) else 1)
    top = 0.87

    def cell(y: float, i: int, text: str, **style: Any) -> None:
        at_right = table.format_of(i) != "text" or rtl or has_arabic(text)
        x = edges[i] + widths[i] - 0.004 if at_right else edges[i] + 0.004
        figure.text(
            x,
            y,
            text,
            ha="right" if at_right else "left",
            va="center",
            fontsize=font_size,
            color=_TEXT,
            linespacing=1.1,
            **style,
        )

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
