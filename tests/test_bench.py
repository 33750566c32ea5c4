"""The benchmarks stay runnable: each prints its figures as JSON lines (tiny settings; the figures
themselves are not checked: benchmarks are not tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("script", "args", "figures"),
    [
        ("api_read.py", ["--rounds", "1", "--seconds", "0.5", "--items", "20"], {"api_read.content_get"}),
        ("thumbnail.py", ["--fps", "0.2", "--size", "320x180"], {"thumbnail.one_hour"}),
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
    assert figures <= {line["bench"] for line in lines}
    for line in lines:
        assert line["value"] > 0 and line["unit"] in {"ms", "s", "per_s", "MB", "x", "count"}
        if "baseline" in line:
            assert line["ratio"] == pytest.approx(line["value"] / line["baseline"], rel=0.01)
