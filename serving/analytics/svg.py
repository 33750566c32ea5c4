"""Charts of the dashboard page as inline SVG markup, drawn on the server.

The page works offline and under a strict Content-Security-Policy, so there is no chart library: these
pure functions turn labels and numbers into SVG strings. Every text is escaped, the root carries
`role="img"` and an `aria-label`, and each point or bar has a `<title>` (the browser's tooltip).
Colours and fonts are presentation attributes, never `style=`, which the page's CSP would block.

The chart itself is laid out left to right (`direction="ltr"` on the root, so an RTL page does not
flip its numbers); right-to-left labels (Arabic titles) get `direction="rtl"`, and since SVG anchors
such text at its start on the right, `start` and `end` anchors are swapped for them to keep the same
visual alignment.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Mapping, Sequence
from html import escape

PALETTE = ("#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2")
INK, MUTED, GRID, AXIS = "#0f172a", "#64748b", "#e2e8f0", "#94a3b8"
FONT_SIZE = 11
MAX_X_LABELS = 8
MAX_LABEL_CHARS = 30


def is_rtl(text: str) -> bool:
    """Whether the text's first strong character is right-to-left (Unicode bidi rule P2)."""
    for char in text:
        kind = unicodedata.bidirectional(char)
        if kind in ("R", "AL"):
            return True
        if kind == "L":
            return False
    return False


def _esc(value: object) -> str:
    return escape(str(value), quote=True)


def _fmt(value: float) -> str:
    """A compact axis number: 950, 1.5k, 12k, 2.3M."""
    for size, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            scaled = value / size
            return f"{scaled:.1f}".rstrip("0").rstrip(".") + suffix
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}".rstrip("0").rstrip(".")


def _value(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _shorten(text: str, limit: int = MAX_LABEL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _text(
    x: float, y: float, content: str, *, anchor: str = "start", fill: str = MUTED, size: int = FONT_SIZE
) -> str:
    attrs = f'x="{x:.1f}" y="{y:.1f}" font-size="{size}" fill="{fill}"'
    if is_rtl(content):
        anchor = {"start": "end", "end": "start"}.get(anchor, anchor)
        attrs += ' direction="rtl" unicode-bidi="embed"'
    return f'<text {attrs} text-anchor="{anchor}">{_esc(content)}</text>'


def _ticks(maximum: float, count: int = 4) -> list[float]:
    """Gridline values from 0 to a round number at or above `maximum` (0..1 when there is nothing)."""
    if maximum <= 0:
        return [0.0, 1.0]
    raw = maximum / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    steps = math.ceil(maximum / step - 1e-9)
    return [i * step for i in range(steps + 1)]


def _open(width: int, height: int, title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{_esc(title)}" class="chart" '
        f'font-family="system-ui, sans-serif" direction="ltr"><title>{_esc(title)}</title>'
    )


def _empty(width: int, height: int, title: str, empty_text: str) -> str:
    return (
        _open(width, height, title)
        + f'<rect x="0.5" y="0.5" width="{width - 1}" height="{height - 1}" fill="none" stroke="{GRID}"/>'
        + _text(width / 2, height / 2, empty_text, anchor="middle", size=13)
        + "</svg>"
    )


def _legend(names: Sequence[str], colors: Sequence[str], x: float, y: float) -> list[str]:
    parts = ['<g class="legend">']
    for name, color in zip(names, colors, strict=True):
        parts.append(f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="10" height="10" rx="2" fill="{color}"/>')
        parts.append(_text(x + 14, y, name, fill=INK))
        x += 14 + 7 * len(name) + 18
    parts.append("</g>")
    return parts


def line_chart(
    labels: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    width: int = 640,
    height: int = 260,
    title: str,
    empty_text: str = "No data",
) -> str:
    """One line per series over shared x labels (days, minutes), with horizontal gridlines, y and x
    axis labels (at most `MAX_X_LABELS` of the latter), a legend and a tooltip per point."""
    for name, values in series.items():
        if len(values) != len(labels):
            raise ValueError(f"series {name!r} has {len(values)} values for {len(labels)} labels")
    if not labels or not series:
        return _empty(width, height, title, empty_text)
    left, right, top, bottom = 52, 16, 34, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    ticks = _ticks(max(max(values, default=0) for values in series.values()))
    scale = ticks[-1]
    n = len(labels)

    def x_of(i: int) -> float:
        return left + (plot_w / 2 if n == 1 else i * plot_w / (n - 1))

    def y_of(v: float) -> float:
        return top + plot_h - (v / scale) * plot_h

    parts = [_open(width, height, title)]
    for tick in ticks:
        y = y_of(tick)
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>')
        parts.append(_text(left - 6, y + 4, _fmt(tick), anchor="end"))
    parts.append(
        f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="{AXIS}"/>'
    )
    step = math.ceil(n / MAX_X_LABELS)
    for i in range(0, n, step):
        parts.append(_text(x_of(i), top + plot_h + 18, labels[i], anchor="middle"))
    colors = [PALETTE[i % len(PALETTE)] for i in range(len(series))]
    for (name, values), color in zip(series.items(), colors, strict=True):
        points = " ".join(f"{x_of(i):.1f},{y_of(v):.1f}" for i, v in enumerate(values))
        parts.append(
            f'<g class="series"><polyline fill="none" stroke="{color}" stroke-width="2" points="{points}"/>'
        )
        for i, v in enumerate(values):
            parts.append(
                f'<circle cx="{x_of(i):.1f}" cy="{y_of(v):.1f}" r="3" fill="{color}">'
                f"<title>{_esc(labels[i])}: {_esc(name)} {_esc(_value(v))}</title></circle>"
            )
        parts.append("</g>")
    parts.extend(_legend(list(series), colors, left, 16))
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    width: int = 640,
    title: str,
    series_name: str = "",
    empty_text: str = "No data",
    row_height: int = 26,
) -> str:
    """Horizontal bars, one row per label (long labels shortened, in full in the tooltip), with
    vertical gridlines, the value at the end of each bar and a legend naming the series."""
    if len(values) != len(labels):
        raise ValueError(f"{len(values)} values for {len(labels)} labels")
    top, bottom, right = (34 if series_name else 12), 26, 56
    if not labels:
        return _empty(width, top + bottom + 2 * row_height, title, empty_text)
    label_w = min(220, width * 0.38)
    left = label_w + 12
    plot_w = width - left - right
    height = top + bottom + row_height * len(labels)
    ticks = _ticks(max(values, default=0))
    scale = ticks[-1]
    color = PALETTE[0]
    parts = [_open(width, height, title)]
    for tick in ticks:
        x = left + tick / scale * plot_w
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{height - bottom}" stroke="{GRID}"/>')
        parts.append(_text(x, height - bottom + 16, _fmt(tick), anchor="middle"))
    parts.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{height - bottom}" stroke="{AXIS}"/>')
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = top + i * row_height
        bar_w = max(value / scale * plot_w, 0)
        parts.append(_text(label_w, y + row_height / 2 + 4, _shorten(label), anchor="end", fill=INK))
        parts.append(
            f'<rect x="{left}" y="{y + 4:.1f}" width="{bar_w:.1f}" height="{row_height - 8}" rx="2" '
            f'fill="{color}"><title>{_esc(label)}: {_esc(_value(value))}</title></rect>'
        )
        parts.append(_text(left + bar_w + 6, y + row_height / 2 + 4, _value(value), fill=INK))
    if series_name:
        parts.extend(_legend([series_name], [color], left, 16))
    parts.append("</svg>")
    return "".join(parts)
