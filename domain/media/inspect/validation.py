"""Accepting or refusing an upload by its content, each step cheaper than the next: the sizes, the
sniffed head, the image header's dimensions, ffprobe, the limits, and the container's own length."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from domain.media.inspect.ffprobe import Probe, probe
from domain.media.inspect.image_headers import read_image_header
from domain.media.inspect.limits import (
    DEFAULT_LIMITS,
    InvalidMedia,
    MediaLimits,
    MediaTooLarge,
    UnsupportedMedia,
    allow_kind,
)
from domain.media.inspect.sniffing import HEAD_BYTES, check_head
from domain.media.inspect.source import Source, as_source
from domain.media.inspect.truncation import truncation


@dataclass
class Validated:
    kind: str  # video | audio | image, from the streams found (an MP4 with sound only is audio)
    mime: str
    format: str
    probe: Probe
    size_bytes: int
    width: int | None  # as displayed (after rotation); None for audio
    height: int | None
    duration_s: float | None
    is_animated: bool

    def summary(self) -> dict[str, Any]:
        """JSON for `media_assets.metadata`."""
        return {
            **asdict(self.probe),
            "kind": self.kind,
            "mime": self.mime,
            "format": self.format,
            "width": self.width,
            "height": self.height,
            "is_animated": self.is_animated,
        }


_MIME_BY_STREAMS = {  # when the streams contradict the container's usual kind
    ("mp4", "audio"): "audio/mp4",
    ("mov", "audio"): "audio/mp4",
    ("3gp", "audio"): "audio/3gpp",
    ("webm", "audio"): "audio/webm",
    ("matroska", "audio"): "audio/x-matroska",
    ("ogg", "audio"): "audio/ogg",
    ("ogg", "video"): "video/ogg",
    ("mp4", "video"): "video/mp4",
}


def validate(
    path: str | Path | Source, *, declared_size: int | None = None, limits: MediaLimits = DEFAULT_LIMITS
) -> Validated:
    """Accept or refuse a file (or a `Source`, such as an object in the store) by its content.
    Raises MediaTooLarge (413), UnsupportedMedia (415) or InvalidMedia (422), each with a reason a
    person can act on; FileNotFoundError if missing."""
    source = as_source(path)
    size = source.size
    if declared_size is not None and declared_size > limits.max_bytes:
        raise MediaTooLarge(
            f"the upload declares {_bytes(declared_size)}, above the {_bytes(limits.max_bytes)} limit",
            field="file",
        )
    if size > limits.max_bytes:
        raise MediaTooLarge(
            f"the file is {_bytes(size)}, above the {_bytes(limits.max_bytes)} limit", field="file"
        )
    if size == 0:
        raise InvalidMedia("the file is empty (0 bytes)", field="file")
    if declared_size is not None and declared_size != size:
        raise InvalidMedia(
            f"the file is {size} bytes but the upload declared {declared_size} (interrupted upload?)",
            field="file",
        )
    with source.open() as f:
        head = f.read(HEAD_BYTES)
        sniffed = check_head(head)
        header = read_image_header(f) if sniffed.kind == "image" else None
    if sniffed.kind == "image":
        allow_kind(sniffed.kind, limits)
        if header is None:
            raise InvalidMedia(
                f"the {sniffed.format.upper()} header does not state the image size (damaged file?)",
                field="file",
            )
        _check_picture("image", header.width, header.height, limits.max_image_pixels, limits)
    try:
        found = probe(source)
    except InvalidMedia as exc:
        if sniffed.format in ("heif", "avif"):
            raise UnsupportedMedia(
                f"{sniffed.format.upper()} images cannot be read by this server's ffmpeg; upload JPEG, PNG or WebP "
                f"({exc.detail})",
                field="file",
            ) from exc
        raise

    if sniffed.kind == "image":
        if found.video is None:
            raise InvalidMedia("the image holds no picture ffprobe can read", field="file")
        assert header is not None
        stored = (
            found.video.width * found.video.height
        )  # 0 when ffprobe cannot size it (animated WebP in 5.x)
        if stored > limits.max_image_pixels:
            _check_picture("image", found.video.width, found.video.height, limits.max_image_pixels, limits)
        return Validated(
            kind="image",
            mime=sniffed.mime or "",
            format=sniffed.format,
            probe=found,
            size_bytes=size,
            width=header.width,
            height=header.height,
            duration_s=None,
            is_animated=header.animated or found.is_animated,
        )

    kind = "video" if found.video else "audio" if found.audio else None
    if kind is None:
        raise InvalidMedia("the file holds no video or audio stream", field="file")
    allow_kind(kind, limits)
    if kind == "video":
        v = found.video
        assert v is not None
        if not v.codec:
            raise InvalidMedia("the video stream's codec is not one ffprobe knows", field="file")
        _check_picture("video", v.width, v.height, limits.max_video_pixels, limits)
    else:
        a = found.audio
        assert a is not None
        if not a.codec or a.sample_rate <= 0 or a.channels <= 0:
            raise InvalidMedia(
                "the audio stream states no codec, sample rate or channels (damaged file?)", field="file"
            )
    if not found.duration_s or found.duration_s <= 0:
        raise InvalidMedia(
            "the file has no readable duration (truncated or still being written?)", field="file"
        )
    if found.duration_s > limits.max_duration_s:
        raise InvalidMedia(
            f"the media lasts {_clock(found.duration_s)}, above the {_clock(limits.max_duration_s)} limit",
            field="file",
        )
    problem = truncation(source, sniffed.format, size)
    if problem:
        raise InvalidMedia(f"the file is truncated: {problem}", field="file")
    return Validated(
        kind=kind,
        mime=_MIME_BY_STREAMS.get((sniffed.format, kind), sniffed.mime or ""),
        format=sniffed.format,
        probe=found,
        size_bytes=size,
        width=found.video.display_width if found.video else None,
        height=found.video.display_height if found.video else None,
        duration_s=found.duration_s,
        is_animated=False,
    )


def _check_picture(kind: str, width: int, height: int, max_pixels: int, limits: MediaLimits) -> None:
    if width <= 0 or height <= 0:
        raise InvalidMedia(f"the {kind} does not state its size (damaged file?)", field="file")
    if width * height > max_pixels:
        raise InvalidMedia(
            f"the {kind} is {width}x{height} ({_pixels(width * height)}), above the {_pixels(max_pixels)} limit",
            field="file",
        )
    if min(width, height) < limits.min_dimension:
        raise InvalidMedia(
            f"the {kind} is {width}x{height} pixels; each side must be at least {limits.min_dimension} px",
            field="file",
        )


def _bytes(n: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _clock(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _pixels(n: int) -> str:
    return f"{n / 1e6:.1f} MP" if n >= 1_000_000 else f"{n} pixels"
