"""What ffprobe reads in a file (container, streams, chapters, rotation, a variable frame rate),
without decoding anything, as plain dataclasses. The file is opened with its sniffed demuxer."""

from __future__ import annotations

import json
import re
import statistics
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from domain.media.inspect.limits import InvalidMedia
from domain.media.inspect.sniffing import input_args
from domain.media.inspect.source import Source, as_source

# Packets (not frames: nothing is decoded) read to judge whether the frame rate is variable.
VFR_PACKETS = 200


@dataclass
class VideoStream:
    codec: str
    width: int  # as stored
    height: int
    fps: float  # avg_frame_rate (r_frame_rate when the average is unknown), 0.0 if neither is known
    rotation: int  # clockwise degrees a player turns the picture for display: 0, 90, 180 or 270
    pix_fmt: str
    is_vfr: bool
    frame_count: int | None = None  # when the container states it (MP4, GIF); never counted
    display_width: int = field(init=False)  # after rotation
    display_height: int = field(init=False)
    short_side: int = field(init=False)  # the side that names the rendition ("720p"), rotation-free

    def __post_init__(self) -> None:
        turned = self.rotation % 180 == 90
        self.display_width = self.height if turned else self.width
        self.display_height = self.width if turned else self.height
        self.short_side = min(self.width, self.height)


@dataclass
class AudioStream:
    codec: str
    channels: int
    sample_rate: int
    bit_rate: int | None


@dataclass
class Chapter:
    start: float
    end: float
    title: str


@dataclass
class Probe:
    container: str  # ffprobe's format_name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    duration_s: float | None
    size_bytes: int
    bit_rate: int | None
    video: VideoStream | None  # the first video stream that is not cover art
    audio: AudioStream | None  # the first audio stream
    chapters: list[Chapter] = field(default_factory=list)

    @property
    def is_animated(self) -> bool:
        """More than one picture in the video stream (meaningful for GIF/WebP/APNG images)."""
        return bool(self.video and (self.video.frame_count or 0) > 1)


def probe(path: str | Path | Source, *, timeout: float = 60) -> Probe:
    """What ffprobe reads in the file: container, streams, chapters. Nothing is decoded; the first
    `VFR_PACKETS` packets' timestamps are read to tell a variable frame rate. Raises InvalidMedia
    with ffprobe's own reason (e.g. "moov atom not found" for a cut MP4), UnsupportedMedia when the
    file is no format we accept. The file is read with its sniffed demuxer over one protocol
    (`input_args`): a local file opens no URL, an object in S3 no local file, a playlist nothing."""
    source = as_source(path)
    *options, _, target = input_args(source)
    command = [
        "ffprobe",
        "-v",
        "error",
        *options,
        "-print_format",
        "json",
        "-show_format",
        "-show_streams",
        "-show_chapters",
        "-show_entries",
        "packet=stream_index,pts",
        "-read_intervals",
        f"%+#{VFR_PACKETS}",
        target,
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise InvalidMedia(
            f"the file cannot be read as media: ffprobe took over {timeout:g} s", field="file"
        ) from exc
    if done.returncode != 0:
        raise InvalidMedia(
            f"the file cannot be read as media: {_ffprobe_reason(done.stderr, target)}", field="file"
        )
    try:
        info = json.loads(done.stdout or "{}")
    except json.JSONDecodeError as exc:
        raise InvalidMedia(
            "the file cannot be read as media: ffprobe gave no readable report", field="file"
        ) from exc
    fmt = info.get("format") or {}
    video: VideoStream | None = None
    audio: AudioStream | None = None
    for stream in info.get("streams") or []:
        if stream.get("codec_type") == "video" and video is None:
            if (stream.get("disposition") or {}).get("attached_pic"):
                continue  # an MP3's or M4A's cover art is not a video
            pts = [
                p["pts"]
                for p in info.get("packets") or []
                if p.get("stream_index") == stream.get("index") and isinstance(p.get("pts"), int)
            ]
            video = _video(stream, pts)
        elif stream.get("codec_type") == "audio" and audio is None:
            audio = AudioStream(
                codec=stream.get("codec_name") or "",
                channels=_int(stream.get("channels")) or 0,
                sample_rate=_int(stream.get("sample_rate")) or 0,
                bit_rate=_int(stream.get("bit_rate")),
            )
    chapters = [
        Chapter(
            _float(c.get("start_time")) or 0.0,
            _float(c.get("end_time")) or 0.0,
            (c.get("tags") or {}).get("title", ""),
        )
        for c in info.get("chapters") or []
    ]
    return Probe(
        container=fmt.get("format_name") or "",
        duration_s=_float(fmt.get("duration")),
        size_bytes=_int(fmt.get("size")) or 0,
        bit_rate=_int(fmt.get("bit_rate")),
        video=video,
        audio=audio,
        chapters=chapters,
    )


def _ffprobe_reason(stderr: str, target: str) -> str:
    """ffprobe's error lines without the `[mov,mp4 @ 0x...]` and file-name prefixes, deduplicated."""
    reasons: list[str] = []
    for line in stderr.splitlines():
        line = re.sub(r"^\[[^\]]* @ 0x[0-9a-f]+\] ", "", line.strip())
        line = line.removeprefix(f"{target}: ").strip()
        if line and line not in reasons:
            reasons.append(line)
    return "; ".join(reasons)[:300] or "ffprobe could not read it"


def _video(stream: dict[str, Any], pts: list[int]) -> VideoStream:
    avg, real = _rate(stream.get("avg_frame_rate")), _rate(stream.get("r_frame_rate"))
    return VideoStream(
        codec=stream.get("codec_name") or "",
        width=_int(stream.get("width")) or 0,
        height=_int(stream.get("height")) or 0,
        fps=round(avg or real, 3),
        rotation=_rotation(stream),
        pix_fmt=stream.get("pix_fmt") or "",
        is_vfr=_is_vfr(pts, avg, real),
        frame_count=_int(stream.get("nb_frames")),
    )


def _is_vfr(pts: list[int], avg: float, real: float) -> bool:
    """Variable frame rate: the gaps between consecutive frames' timestamps differ (beyond the
    rounding of the time base). Without enough packets, fall back on avg vs. r_frame_rate."""
    stamps = sorted(set(pts))  # presentation order: B-frames arrive out of order
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    if len(gaps) >= 4:
        typical = statistics.median(gaps)
        return any(abs(gap - typical) > max(0.1 * typical, 2) for gap in gaps)
    return bool(avg and real and abs(avg - real) > 0.01 * real)


def _rotation(stream: dict[str, Any]) -> int:
    """Clockwise degrees. ffprobe's display-matrix `rotation` is counter-clockwise (a phone's
    portrait clip shows -90); the legacy `rotate` tag is already clockwise."""
    for side in stream.get("side_data_list") or []:
        if "rotation" in side:
            degrees = _float(side["rotation"])
            return round(-degrees / 90) * 90 % 360 if degrees is not None else 0
    degrees = _float((stream.get("tags") or {}).get("rotate"))
    return round(degrees / 90) * 90 % 360 if degrees is not None else 0


def _rate(text: str | None) -> float:
    num, _, den = (text or "").partition("/")
    try:
        return float(num) / float(den) if den and float(den) else 0.0
    except ValueError:
        return 0.0


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
