"""The benchmarks stay runnable: each prints its figures as JSON lines (tiny settings; the figures
themselves are not checked: benchmarks are not tests). What is checked is the shape of the lines: a
figure named for a scale reports in `n` the scale it ran at (here the small one asked for), and a
figure compared with a baseline has it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


# Figures named for a scale -> the `n` the arguments below ask for.
SCALES = {
    "thumbnail.one_hour": 3600,  # seconds of video, fixed; --fps thins the frames only
    "media_sensor.tick_10k": 500,
    "media_sensor.partitions_after_year": 40,
    "notifications.broadcast_100k": 2000,
    "analytics.rollup_10m": 20000,
    "analytics.report_monthly": 2,
}
# Figures that always carry their baseline (measured in the same run).
BASELINES = {
    "thumbnail.one_hour",  # the same grabs and posters by bare ffmpeg
    "transcode.ladder",
    "api_read.content_get",
    "auth.read",
    "upload.rate",
    "api_start.ready_s",  # a bare Litestar app with the same route, started the same way
    "api_start.rss",
    "api_start.import_s",
    "analytics.dashboard_p95",
    "analytics.dashboard_p95_uncached",
    "analytics.report_monthly",
    "import.map_item",  # the same field picks by a hand-written function
}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("script", "args", "figures"),
    [
        ("api_read.py", ["--rounds", "1", "--seconds", "0.5", "--items", "20"], {"api_read.content_get"}),
        ("api_start.py", ["--rounds", "1"], {"api_start.ready_s", "api_start.rss", "api_start.import_s"}),
        ("thumbnail.py", ["--fps", "0.2", "--size", "320x180", "--rounds", "1"], {"thumbnail.one_hour"}),
        (
            "upload.py",
            ["--size-mb", "20", "--chunk-mb", "8", "--rounds", "1"],
            {"upload.rss", "upload.rate", "upload.resume_identical"},
        ),
        (
            "media_sensor.py",
            ["--uploads", "500", "--days", "40", "--per-day", "50"],
            {"media_sensor.tick_10k", "media_sensor.partitions_after_year"},
        ),
        (
            "transcode.py",
            ["--seconds", "3", "--size", "640x360", "--rounds", "1"],
            {"transcode.ladder", "transcode.realtime"},
        ),
        (
            "notifications.py",
            ["--messages", "20", "--renders", "200", "--recipients", "2000", "--emails", "100"],
            {
                "notifications.websocket_p99",
                "notifications.template_render",
                "notifications.template_render_cached",
                "notifications.broadcast_100k",
                "notifications.email_rate",
            },
        ),
        (
            "analytics.py",
            ["--batches", "10", "--rounds", "1", "--events", "20000", "--baseline-events", "0", "--days", "2"]
            + ["--items", "50", "--users", "50", "--queries", "20", "--requests", "20"]
            + ["--report-items", "20"],
            {
                "analytics.ingest_rate",
                "analytics.flush_rate",
                "analytics.rollup_10m",
                "analytics.dashboard_p95",
                "analytics.dashboard_p95_uncached",
                "analytics.report_monthly",
            },
        ),
        ("import_map.py", ["--items", "200", "--rounds", "1"], {"import.map_item"}),
        (
            "auth.py",
            ["--rounds", "1", "--seconds", "0.5", "--logins", "3"],
            {"auth.read", "auth.login_p50", "auth.login_p99"},
        ),
    ],
)
def test_benchmark_prints_its_figures(script: str, args: list[str], figures: set[str]) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    by_name = {line["bench"]: line for line in lines}
    assert figures <= set(by_name)
    assert len(by_name) == len(lines), "a figure printed twice"
    for line in lines:
        assert line["value"] > 0 and line["unit"] in {"ms", "s", "per_s", "MB", "x", "count"}
        if "baseline" in line:
            assert line["baseline"] > 0
            assert line["ratio"] == pytest.approx(line["value"] / line["baseline"], rel=0.01)
        if line["bench"] in SCALES:
            assert line.get("n") == SCALES[line["bench"]], line
    for name in figures & BASELINES:
        assert "baseline" in by_name[name], by_name[name]
    if "notifications.template_render" in figures:
        headline, cached = (
            by_name["notifications.template_render"],
            by_name["notifications.template_render_cached"],
        )
        assert headline["unit"] == cached["unit"] == "ms"
        assert headline["goal"] == 1.0  # the target stays stated; the figure is whatever was measured
