"""ffmpeg in the tests: making sample media (`ffmpeg`), and how many frames each ffmpeg run decoded,
from ffmpeg's own report: what tells seeking a video from decoding it, whatever the machine's speed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest


def ffmpeg(*args: str, timeout: float = 300) -> None:
    """Run ffmpeg quietly (errors only, never reading stdin, overwriting outputs); a failure raises."""
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", *args], check=True, timeout=timeout)


def lavfi(*sources: str) -> list[str]:
    """ffmpeg inputs from lavfi sources (generated test video or audio, e.g. `testsrc2=s=320x240:d=2`)."""
    return [arg for source in sources for arg in ("-f", "lavfi", "-i", source)]


X264_FAST = ("-c:v", "libx264", "-preset", "ultrafast")  # H.264 made quickly: test media, not quality


# ffmpeg's final statistics, written to the report at the verbose level, one line per input stream.
_DECODED = re.compile(
    r"Input stream #\d+:\d+ \(video\): \d+ packets read \(\d+ bytes\); (\d+) frames decoded"
)


class DecodedFrames:
    def __init__(self, reports: Path) -> None:
        self.reports = reports

    def per_run(self) -> list[list[int]]:
        """For each ffmpeg run so far (in no particular order), the frames decoded from each of its
        video inputs."""
        runs = [_DECODED.findall(path.read_text(errors="replace")) for path in sorted(self.reports.iterdir())]
        assert runs and all(runs), "an ffmpeg run left no report of what it decoded"
        return [[int(n) for n in run] for run in runs]


def count_decoded_frames(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> DecodedFrames:
    """Put an `ffmpeg` first on PATH that runs the real one with a report of its own (FFREPORT, at
    the verbose level, whatever `-v` says): the code under test runs ffmpeg as it always does."""
    real = shutil.which("ffmpeg")
    assert real is not None, "ffmpeg is not installed"
    reports, bin_dir = tmp_path / "ffmpeg-reports", tmp_path / "ffmpeg-bin"
    reports.mkdir()
    bin_dir.mkdir()
    wrapper = bin_dir / "ffmpeg"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'report=$(mktemp "{reports}/run-XXXXXX") || exit 1\n'
        f'FFREPORT="file=$report:level=40" exec "{real}" "$@"\n'
    )
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return DecodedFrames(reports)
