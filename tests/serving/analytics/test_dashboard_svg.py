"""The dashboard's server-side SVG charts: well-formed XML, escaped labels, accessible, RTL-aware, and
sensible with no data."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from serving.analytics.svg import bar_chart, is_rtl, line_chart

NS = {"s": "http://www.w3.org/2000/svg"}
NASTY = 'Tom & "Jerry" <script>alert(1)</script>'


def parse(markup: str) -> ET.Element:
    root = ET.fromstring(markup)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return root


def texts(root: ET.Element) -> list[ET.Element]:
    return root.findall(".//s:text", NS)


def test_line_chart_draws_every_point_with_a_tooltip_axes_and_a_legend() -> None:
    labels = ["05-01", "05-02", "05-03"]
    markup = line_chart(labels, {"Views": [10, 250, 40], "Active users": [1, 2, 3]}, title="Daily")
    root = parse(markup)
    assert root.get("role") == "img" and root.get("aria-label") == "Daily"
    assert root.find("s:title", NS).text == "Daily"
    assert len(root.findall(".//s:polyline", NS)) == 2
    circles = root.findall(".//s:circle", NS)
    assert len(circles) == 6
    assert circles[1].find("s:title", NS).text == "05-02: Views 250"
    shown = [t.text for t in texts(root)]
    assert {"05-01", "05-03", "Views", "Active users", "0", "300"} <= set(shown)  # axis up to a round 300
    # The highest point sits below the top gridline, inside the plot.
    ys = [float(c.get("cy")) for c in circles[:3]]
    assert min(ys) == ys[1] and all(0 < y < float(root.get("height")) for y in ys)


def test_labels_and_names_are_escaped() -> None:
    line = parse(line_chart([NASTY], {NASTY: [1]}, title=NASTY))
    bar = parse(bar_chart([NASTY], [3], title=NASTY, series_name=NASTY))
    for root in (line, bar):
        assert root.get("aria-label") == NASTY  # round-trips: escaped in the markup, intact once parsed
        assert not root.findall(".//script") and not root.findall(".//s:script", NS)
        assert any(t.text == NASTY for t in texts(root))
    assert "<script>" not in line_chart([NASTY], {NASTY: [1]}, title=NASTY)


def test_bar_chart_scales_bars_and_shortens_long_labels() -> None:
    long = "A very long title that goes on and on about calligraphy"
    root = parse(bar_chart(["Short", long], [100, 25], title="Top", series_name="Views"))
    bars = [r for r in root.findall(".//s:rect", NS) if r.find("s:title", NS) is not None]
    assert [b.find("s:title", NS).text for b in bars] == ["Short: 100", f"{long}: 25"]
    widths = [float(b.get("width")) for b in bars]
    assert widths[0] == pytest.approx(4 * widths[1], rel=0.01)
    shown = [t.text for t in texts(root)]
    assert long not in shown and any(s.endswith("…") and long.startswith(s[:-1]) for s in shown)
    assert "Views" in shown  # the legend


def test_right_to_left_labels_keep_their_visual_alignment() -> None:
    root = parse(bar_chart(["أمسية شعرية", "Poetry night"], [2, 1], title="الأكثر مشاهدة"))
    arabic = next(t for t in texts(root) if t.text == "أمسية شعرية")
    latin = next(t for t in texts(root) if t.text == "Poetry night")
    assert root.get("direction") == "ltr"  # the chart's layout does not follow an RTL page
    assert arabic.get("direction") == "rtl" and latin.get("direction") is None
    # Both are right-aligned next to the bars: `end` for LTR is `start` for RTL text.
    assert latin.get("text-anchor") == "end" and arabic.get("text-anchor") == "start"
    assert arabic.get("x") == latin.get("x")
    assert is_rtl("أمسية 2024") and is_rtl("2024 أمسية") and not is_rtl("Poetry أمسية") and not is_rtl("123")


@pytest.mark.parametrize(
    "markup",
    [
        line_chart([], {}, title="Nothing", empty_text="لا توجد بيانات"),
        line_chart([], {"Views": []}, title="Nothing", empty_text="لا توجد بيانات"),
        bar_chart([], [], title="Nothing", empty_text="لا توجد بيانات"),
    ],
)
def test_empty_data_draws_a_placeholder(markup: str) -> None:
    root = parse(markup)
    assert [t.text for t in texts(root)] == ["لا توجد بيانات"]
    assert not root.findall(".//s:circle", NS) and float(root.get("height")) > 0


def test_all_zero_and_single_point_series_stay_on_the_canvas() -> None:
    root = parse(line_chart(["12:00"], {"Views": [0]}, width=300, height=200, title="Live"))
    (circle,) = root.findall(".//s:circle", NS)
    assert 0 < float(circle.get("cx")) < 300 and 0 < float(circle.get("cy")) < 200
    zeros = parse(bar_chart(["a", "b"], [0, 0], title="Zero"))
    assert all(
        float(r.get("width")) == 0
        for r in zeros.findall(".//s:rect", NS)
        if r.find("s:title", NS) is not None
    )


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="2 values for 3 labels"):
        line_chart(["a", "b", "c"], {"Views": [1, 2]}, title="x")
    with pytest.raises(ValueError):
        bar_chart(["a"], [1, 2], title="x")
