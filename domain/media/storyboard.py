"""A storyboard for scrubbing: one JPEG sprite of small frames in a grid, and a WebVTT file whose
cues point into it (`storyboard.jpg#xywh=x,y,w,h`, relative, so the two files sit side by side).
Players (Video.js, Vidstack, Shaka, JW, ...) show the tile of the cue under the pointer.

The video is split into at most `MAX_TILES` intervals of at least `MIN_INTERVAL_S`; each tile is
the frame at the middle of its interval, read by seeking the input, so the time does not grow with
the video's length. Several seeks share one ffmpeg process (`BATCH` inputs each with its own `-ss`,
one tiny output per input), which saves most of the cost of starting ffmpeg 100 times while
keeping the memory of open decoders bounded.

How a tile's frame is found depends on the interval:
- short videos (interval under `KEYFRAME_INTERVAL_S`): accurate seeking, the exact frame, at the
  cost of decoding from the keyframe before it (at most one GOP per tile);
- long videos: only the keyframe at or before the middle is decoded (`-skip_frame nokey
  -noaccurate_seek`), one frame per tile whatever the GOP: it is at most one GOP (usually 1-10 s)
  away from the middle of an interval of `KEYFRAME_INTERVAL_S` or more, so it still belongs to it.
Measured on a shared 2-core machine: a 1-hour and a 10-hour 320x180 source (1 fps, GOP 10 s) both
take 1.1-1.3 s; a 10-minute 720p25 one (accurate seeks) 4.3 s where decoding it whole takes 14.6 s.
"""

from __future__ import annotations

import math
import subprocess
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from domain.media.inspect.sniffing import input_args

TILE_WIDTH = 160
COLUMNS = 10
MAX_TILES = 100
MIN_INTERVAL_S = 2.0
KEYFRAME_INTERVAL_S = 10.0
BATCH = 10  # inputs per ffmpeg process: each holds an open demuxer and decoder
SPRITE_QUALITY = 80
SPRITE_NAME, VTT_NAME = "storyboard.jpg", "storyboard.vtt"


@dataclass(frozen=True)
class Storyboard:
    sprite: Path
    vtt: Path
    tile_width: int
    tile_height: int
    columns: int
    rows: int
    interval_s: float
    count: int


@dataclass(frozen=True)
class Cue:
    start_s: float
    end_s: float

    @property
    def middle_s(self) -> float:
        return (self.start_s + self.end_s) / 2


def plan_cues(duration_s: float) -> tuple[float, list[Cue]]:
    """The interval and the cues, covering [0, duration] in order; at least one cue."""
    duration_s = max(duration_s, 0.0)
    interval = max(MIN_INTERVAL_S, duration_s / MAX_TILES)
    count = max(1, min(MAX_TILES, math.ceil(duration_s / interval - 1e-9)))
    starts = [i * interval for i in range(count)]
    ends = [*starts[1:], max(duration_s, starts[-1] + 0.001)]
    return interval, [Cue(round(s, 3), round(e, 3)) for s, e in zip(starts, ends, strict=True)]


def tile_size(source_width: int, source_height: int) -> tuple[int, int]:
    """`TILE_WIDTH` wide (less if the source is narrower: never upscaled), the height following
    the picture's aspect (a portrait video gets tall tiles), even sides, as the posters."""
    width = min(TILE_WIDTH, source_width - source_width % 2) or 2
    return width, max(2, round(source_height * width / source_width / 2) * 2)


def _ffmpeg(args: list[str], timeout: float = 300) -> None:
    done = subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-y", *args], capture_output=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg failed: {done.stderr.decode(errors='replace').strip()[-500:]}")


def _grab(
    source: Path, times: list[float], size: tuple[int, int], work: Path, *, keyframes: bool
) -> list[Image.Image | None]:
    """The frame at each time (None where the seek found none), scaled to `size`, `BATCH` seeks
    per ffmpeg process."""
    width, height = size
    frames: list[Image.Image | None] = []
    seek = ["-skip_frame", "nokey", "-noaccurate_seek"] if keyframes else []
    opened = input_args(source)  # the sniffed demuxer and the file protocol, for every input
    for first in range(0, len(times), BATCH):
        batch = times[first : first + BATCH]
        inputs: list[str] = []
        outputs: list[str] = []
        paths = [work / f"tile-{first + i:03d}.rgb" for i in range(len(batch))]
        for i, (time_s, path) in enumerate(zip(batch, paths, strict=True)):
            path.unlink(missing_ok=True)
            inputs += [*seek, "-threads", "1", "-ss", f"{time_s:.3f}", *opened]
            outputs += [
                "-map",
                f"{i}:v:0",
                "-frames:v",
                "1",
                "-fps_mode",
                "passthrough",
                "-vf",
                f"scale={width}:{height}",
                "-f",
                "rawvideo",
                "-pix_fmt",
                "rgb24",
                str(path),
            ]
        _ffmpeg([*inputs, *outputs])
        for path in paths:
            data = path.read_bytes() if path.exists() else b""
            frames.append(Image.frombytes("RGB", size, data) if len(data) == width * height * 3 else None)
            path.unlink(missing_ok=True)
    return frames


def render_storyboard(
    source: Path, duration_s: float, out_dir: Path, *, source_width: int, source_height: int
) -> Storyboard:
    """`storyboard.jpg` and `storyboard.vtt` in `out_dir` for a video of `duration_s` seconds whose
    picture is shown at `source_width` x `source_height` (after rotation)."""
    interval, cues = plan_cues(duration_s)
    tile_w, tile_h = tile_size(source_width, source_height)
    out_dir.mkdir(parents=True, exist_ok=True)
    times = [cue.middle_s for cue in cues]
    frames = _grab(source, times, (tile_w, tile_h), out_dir, keyframes=interval >= KEYFRAME_INTERVAL_S)
    missing = [i for i, frame in enumerate(frames) if frame is None]
    if missing:  # a seek past the last frame (a duration rounded up): take the keyframe before
        retried = _grab(source, [times[i] for i in missing], (tile_w, tile_h), out_dir, keyframes=True)
        for i, frame in zip(missing, retried, strict=True):
            frames[i] = frame
    if all(frame is None for frame in frames):
        raise RuntimeError(f"ffmpeg found no frame in {source.name} for the storyboard")

    columns = min(COLUMNS, len(cues))
    rows = math.ceil(len(cues) / columns)
    sprite = Image.new("RGB", (columns * tile_w, rows * tile_h))
    lines = ["WEBVTT", ""]
    previous: Image.Image = next(frame for frame in frames if frame is not None)
    for i, (cue, frame) in enumerate(zip(cues, frames, strict=True)):
        if frame is not None:  # still nothing there: repeat the tile before
            previous = frame
        x, y = (i % columns) * tile_w, (i // columns) * tile_h
        sprite.paste(previous, (x, y))
        lines += [
            f"{_clock(cue.start_s)} --> {_clock(cue.end_s)}",
            f"{SPRITE_NAME}#xywh={x},{y},{tile_w},{tile_h}",
            "",
        ]
    sprite_path, vtt_path = out_dir / SPRITE_NAME, out_dir / VTT_NAME
    sprite.save(sprite_path, "JPEG", quality=SPRITE_QUALITY, optimize=True)
    vtt_path.write_text("\n".join(lines), encoding="utf-8")
    return Storyboard(sprite_path, vtt_path, tile_w, tile_h, columns, rows, interval, len(cues))


def _clock(seconds: float) -> str:
    """WebVTT timestamp: hh:mm:ss.ttt (hours may pass 99)."""
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"
