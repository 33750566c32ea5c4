"""Posters for a video: several candidate frames, each read by seeking the input (so the time
does not grow with the video's length), the one with the most detail wins (black or flat frames
lose), and it is written at several widths as WebP and JPEG in one ffmpeg call. The upload is
read with its sniffed demuxer and the file protocol only (`inspect.input_args`)."""

from __future__ import annotations

import statistics
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from domain.media import storyboard
from domain.media.inspect.sniffing import input_args
from domain.media.variants import Files, variant_row
from domain.schema import MediaVariant

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
    raw = _ffmpeg(
        [
            "-ss",
            f"{time_s:.3f}",
            *input_args(source),
            "-frames:v",
            "1",
            "-vf",
            f"scale={_PROBE_W}:{_PROBE_H},format=gray",
            "-f",
            "rawvideo",
            "-",
        ]
    )
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
        outputs += [
            "-map",
            f"[j{i}]",
            "-frames:v",
            "1",
            "-q:v",
            "3",
            str(jpg),
            "-map",
            f"[w{i}]",
            "-frames:v",
            "1",
            "-c:v",
            "libwebp",
            "-quality",
            "80",
            str(webp),
        ]
        posters += [Poster(jpg, width, height, "jpg"), Poster(webp, width, height, "webp")]
    _ffmpeg(["-y", "-ss", f"{time_s:.3f}", *input_args(source), "-filter_complex", ";".join(graph), *outputs])
    return posters


@dataclass(frozen=True)
class ThumbnailSet:
    """The thumbnail files of one run, stored, and the variant rows that will name them."""

    rows: list[MediaVariant]
    posters: int
    chosen: Candidate | None  # the frame the posters show (video only)
    board: storyboard.Storyboard | None  # video only


def make_thumbnails(files: Files, media_id: uuid.UUID, local: Path, kind: str, meta: dict) -> ThumbnailSet:
    """Posters (and for video, the frame they show and a storyboard for scrubbing) of the original at
    `local`, written beside it and stored under `media/<id>/thumbnails/`. The rows are returned, not
    written: the caller swaps them in with the old set in one transaction."""
    video = meta["video"]
    width = video.get("display_width") or video["width"]
    height = video.get("display_height") or video["height"]
    tmp = local.parent
    chosen = pick_frame(local, meta.get("duration_s") or 0.0) if kind == "video" else None
    posters = render_posters(
        local, chosen.time_s if chosen else 0.0, tmp / "out", source_width=width, source_height=height
    )
    rows = []
    for poster in posters:
        key = f"media/{media_id}/thumbnails/{poster.path.name}"
        with poster.path.open("rb") as f:
            files.put_file(key, f, content_type=f"image/{'jpeg' if poster.format == 'jpg' else 'webp'}")
        rows.append(
            variant_row(
                media_id,
                key,
                poster.path,
                "poster",
                poster.format,
                f"{poster.width}w",
                width=poster.width,
                height=poster.height,
            )
        )
    board = None
    if kind == "video":
        duration = meta.get("duration_s") or 0.0
        board = storyboard.render_storyboard(
            local, duration, tmp / "storyboard", source_width=width, source_height=height
        )
        sprite_size = (board.columns * board.tile_width, board.rows * board.tile_height)
        # The VTT names the sprite by a relative URL: both keys must stay in the same folder.
        for path, fmt, content_type, (w, h) in (
            (board.sprite, "jpg", "image/jpeg", sprite_size),
            (board.vtt, "vtt", "text/vtt", (None, None)),
        ):
            key = f"media/{media_id}/thumbnails/{path.name}"
            with path.open("rb") as f:
                files.put_file(key, f, content_type=content_type)
            rows.append(
                variant_row(
                    media_id,
                    key,
                    path,
                    "storyboard",
                    fmt,
                    f"{board.tile_width}x{board.tile_height}",
                    width=w,
                    height=h,
                    duration_s=duration,
                )
            )
    return ThumbnailSet(rows, len(posters), chosen, board)
