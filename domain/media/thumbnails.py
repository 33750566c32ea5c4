"""Posters for a video: several candidate frames, each read by seeking the input (so the time
does not grow with the video's length), the one with the most detail wins (black or flat frames
lose), and it is written at several widths as WebP and JPEG in one ffmpeg call. The upload is
read with its sniffed demuxer and the file protocol only (`inspect.input_args`)."""

from __future__ import annotations

import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path

from domain.media.inspect.sniffing import input_args

POSTER_WIDTHS = (320, 640, 1280)
CANDIDATES = 5
_PROBE_W, _PROBE_H = 32, 18


@dataclass(frozen=True)
class Candidate:
    time_s: float
    mean: float
    spread: float

    @property
    def score(self) -> float:
        """Detail (luma spread), zero for near-black or blown-out frames."""
        return self.spread if 16 < self.mean < 240 else 0.0


@dataclass(frozen=True)
class Poster:
    path: Path
    width: int
    height: int
    format: str  # webp | jpg


def candidate_times(duration_s: float, n: int = CANDIDATES) -> list[float]:
    """Spread over 10%-90% of the video (titles and end cards are often blank)."""
    if duration_s <= 0:
        return [0.0]
    if n == 1:
        return [duration_s * 0.5]
    return [round(duration_s * (0.1 + 0.8 * i / (n - 1)), 3) for i in range(n)]


def _ffmpeg(args: list[str], timeout: float = 60) -> bytes:
    done = subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", *args], capture_output=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg failed: {done.stderr.decode(errors='replace').strip()[-500:]}")
    return done.stdout


def measure(source: Path, time_s: float) -> Candidate:
    raw = _ffmpeg(["-ss", f"{time_s:.3f}", *input_args(source), "-frames:v", "1", "-vf",
                   f"scale={_PROBE_W}:{_PROBE_H},format=gray", "-f", "rawvideo", "-"])  # fmt: skip
    if not raw:
        return Candidate(time_s, 0.0, 0.0)
    values = list(raw)
    return Candidate(time_s, statistics.fmean(values), statistics.pstdev(values))


def pick_frame(source: Path, duration_s: float) -> Candidate:
    candidates = [measure(source, t) for t in candidate_times(duration_s)]
    return max(candidates, key=lambda c: (c.score, -abs(c.time_s - duration_s / 3)))


def render_posters(
    source: Path, time_s: float, out_dir: Path, *, source_width: int, source_height: int
) -> list[Poster]:
    """Every poster width up to the source's own (never upscaled), WebP and JPEG, from one decode."""
    widths = [w for w in POSTER_WIDTHS if w <= source_width] or [source_width - source_width % 2]
    out_dir.mkdir(parents=True, exist_ok=True)
    splits = "".join(f"[s{i}]" for i in range(len(widths)))
    graph = [f"[0:v]split={len(widths)}{splits}"]
    outputs: list[str] = []
    posters: list[Poster] = []
    for i, width in enumerate(widths):
        height = max(2, round(source_height * width / source_width / 2) * 2)
        graph.append(f"[s{i}]scale={width}:{height},split=2[j{i}][w{i}]")
        jpg, webp = out_dir / f"poster-{width}.jpg", out_dir / f"poster-{width}.webp"
        outputs += ["-map", f"[j{i}]", "-frames:v", "1", "-q:v", "3", str(jpg),
                    "-map", f"[w{i}]", "-frames:v", "1", "-c:v", "libwebp", "-quality", "80", str(webp)]  # fmt: skip
        posters += [Poster(jpg, width, height, "jpg"), Poster(webp, width, height, "webp")]
    _ffmpeg(["-y", "-ss", f"{time_s:.3f}", *input_args(source), "-filter_complex", ";".join(graph), *outputs])
    return posters
