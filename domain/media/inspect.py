"""Checking an upload by its content, never its name: magic bytes first, image dimensions from the
header alone (a 30000x30000 image is refused before anything decodes it), then ffprobe for what
the file really holds."""

from __future__ import annotations

import json
import re
import struct
import subprocess
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from domain.errors import DomainError

HEAD_BYTES = 64 * 1024


class UnsupportedMedia(DomainError):
    status = 415
    title = "Unsupported media type"


class MediaTooLarge(DomainError):
    status = 413
    title = "Content too large"


class InvalidMedia(DomainError):
    status = 422
    title = "Invalid media"


@dataclass(frozen=True)
class MediaLimits:
    max_bytes: int = 5 * 1024**3
    max_duration_s: float = 12 * 3600
    max_video_pixels: int = 7680 * 4320  # 8K UHD
    max_image_pixels: int = 100_000_000  # 100 MP
    min_dimension: int = 16


@dataclass(frozen=True)
class Sniffed:
    kind: str | None  # video | audio | image | None
    mime: str | None
    format: str


def sniff(head: bytes) -> Sniffed:
    """What the first bytes say the file is."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"heic", b"heix", b"mif1", b"msf1", b"avif"):
            return Sniffed("image", "image/heic" if brand != b"avif" else "image/avif", "heif")
        if brand in (b"M4A ", b"M4B "):
            return Sniffed("audio", "audio/mp4", "mp4")
        if brand == b"qt  ":
            return Sniffed("video", "video/quicktime", "mov")
        return Sniffed("video", "video/mp4", "mp4")
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        webm = b"webm" in head[:64]
        return Sniffed("video", "video/webm" if webm else "video/x-matroska", "webm" if webm else "matroska")
    if head.startswith(b"RIFF") and len(head) >= 12:
        sub = head[8:12]
        if sub == b"AVI ":
            return Sniffed("video", "video/x-msvideo", "avi")
        if sub == b"WAVE":
            return Sniffed("audio", "audio/wav", "wav")
        if sub == b"WEBP":
            return Sniffed("image", "image/webp", "webp")
    if len(head) >= 377 and head[0] == 0x47 and head[188] == 0x47 and head[376] == 0x47:
        return Sniffed("video", "video/mp2t", "mpegts")
    if head.startswith(b"ID3") or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE6 == 0xE2):
        return Sniffed("audio", "audio/mpeg", "mp3")
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:
        return Sniffed("audio", "audio/aac", "aac")
    if head.startswith(b"fLaC"):
        return Sniffed("audio", "audio/flac", "flac")
    if head.startswith(b"OggS"):
        video = b"theora" in head[:256]
        return Sniffed("video" if video else "audio", "video/ogg" if video else "audio/ogg", "ogg")
    if head.startswith(b"\xff\xd8\xff"):
        return Sniffed("image", "image/jpeg", "jpeg")
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed("image", "image/png", "png")
    if head.startswith((b"GIF87a", b"GIF89a")):
        return Sniffed("image", "image/gif", "gif")
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return Sniffed("image", "image/tiff", "tiff")
    return Sniffed(None, None, "unknown")


def image_dimensions(head: bytes) -> tuple[int, int] | None:
    """(width, height) read from the header only, without decoding any pixel."""
    try:
        if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
            return struct.unpack(">II", head[16:24])
        if head.startswith((b"GIF87a", b"GIF89a")):
            return struct.unpack("<HH", head[6:10])
        if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
            chunk = head[12:16]
            if chunk == b"VP8X":
                w = int.from_bytes(head[24:27], "little") + 1
                h = int.from_bytes(head[27:30], "little") + 1
                return w, h
            if chunk == b"VP8L":
                bits = int.from_bytes(head[21:25], "little")
                return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
            if chunk == b"VP8 ":
                w, h = struct.unpack("<HH", head[26:30])
                return w & 0x3FFF, h & 0x3FFF
        if head.startswith(b"\xff\xd8"):
            i = 2
            while i + 9 < len(head):
                if head[i] != 0xFF:
                    i += 1
                    continue
                marker = head[i + 1]
                if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                    i += 2
                    continue
                length = struct.unpack(">H", head[i + 2 : i + 4])[0]
                if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                    h, w = struct.unpack(">HH", head[i + 5 : i + 9])
                    return w, h
                i += 2 + length
    except struct.error:
        return None
    return None


@dataclass
class VideoStream:
    codec: str
    width: int
    height: int
    fps: float
    rotation: int
    pix_fmt: str
    is_vfr: bool

    @property
    def display_width(self) -> int:
        return self.height if self.rotation % 180 else self.width

    @property
    def display_height(self) -> int:
        return self.width if self.rotation % 180 else self.height

    @property
    def short_side(self) -> int:
        return min(self.width, self.height)


@dataclass
class AudioStream:
    codec: str
    channels: int
    sample_rate: int
    bit_rate: int | None


@dataclass
class Probe:
    container: str
    duration_s: float | None
    size_bytes: int
    bit_rate: int | None
    video: VideoStream | None
    audio: AudioStream | None
    chapters: list[dict[str, Any]] = field(default_factory=list)
    frames: int | None = None

    @property
    def is_animated(self) -> bool:
        return bool(self.frames and self.frames > 1)


def _rate(text: str | None) -> float:
    if not text or "/" not in text:
        return 0.0
    num, den = text.split("/", 1)
    try:
        return float(num) / float(den) if float(den) else 0.0
    except ValueError:
        return 0.0


def _rotation(stream: dict[str, Any]) -> int:
    for side in stream.get("side_data_list", []) or []:
        if "rotation" in side:
            return int(round(float(side["rotation"]))) % 360
    rotate = (stream.get("tags") or {}).get("rotate")
    return int(rotate) % 360 if rotate and str(rotate).lstrip("-").isdigit() else 0


def probe(path: str | Path, *, timeout: float = 60) -> Probe:
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", "-show_chapters",
         str(path)],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["ffprobe could not read it"])[-1]
        reason = re.sub(r"^.*?: ", "", reason) if str(path) in reason else reason
        raise InvalidMedia(f"the file cannot be read as media: {reason}", field="file")
    info = json.loads(done.stdout or "{}")
    fmt = info.get("format", {})
    video = audio = None
    frames = None
    for stream in info.get("streams", []):
        if (
            stream.get("codec_type") == "video"
            and video is None
            and not (stream.get("disposition") or {}).get("attached_pic")
        ):
            avg, real = _rate(stream.get("avg_frame_rate")), _rate(stream.get("r_frame_rate"))
            video = VideoStream(
                codec=stream.get("codec_name", ""), width=int(stream.get("width") or 0),
                height=int(stream.get("height") or 0), fps=round(avg or real, 3), rotation=_rotation(stream),
                pix_fmt=stream.get("pix_fmt", ""), is_vfr=bool(avg and real and abs(avg - real) > 0.01),
            )  # fmt: skip
            if stream.get("nb_frames", "").isdigit():
                frames = int(stream["nb_frames"])
        elif stream.get("codec_type") == "audio" and audio is None:
            audio = AudioStream(
                codec=stream.get("codec_name", ""), channels=int(stream.get("channels") or 0),
                sample_rate=int(stream.get("sample_rate") or 0),
                bit_rate=int(stream["bit_rate"]) if str(stream.get("bit_rate", "")).isdigit() else None,
            )  # fmt: skip
    duration = fmt.get("duration")
    return Probe(
        container=fmt.get("format_name", ""),
        duration_s=float(duration) if duration not in (None, "N/A") else None,
        size_bytes=int(fmt.get("size") or 0),
        bit_rate=int(fmt["bit_rate"]) if str(fmt.get("bit_rate", "")).isdigit() else None,
        video=video, audio=audio, frames=frames,
        chapters=[{"start": float(c.get("start_time", 0)), "end": float(c.get("end_time", 0)),
                   "title": (c.get("tags") or {}).get("title", "")} for c in info.get("chapters", [])],
    )  # fmt: skip


@dataclass
class Validated:
    kind: str
    mime: str | None
    format: str
    probe: Probe

    def summary(self) -> dict[str, Any]:
        """JSON for `media_assets.metadata`."""
        data = asdict(self.probe)
        if self.probe.video:
            data["video"].update(
                display_width=self.probe.video.display_width,
                display_height=self.probe.video.display_height,
                short_side=self.probe.video.short_side,
            )
        data["is_animated"] = self.probe.is_animated
        data["format"] = self.format
        return data


def validate(path: str | Path, *, limits: MediaLimits = MediaLimits()) -> Validated:
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise InvalidMedia("the file is empty", field="file")
    if size > limits.max_bytes:
        raise MediaTooLarge(
            f"the file is {size} bytes, above the {limits.max_bytes}-byte limit", field="file"
        )
    with path.open("rb") as f:
        head = f.read(HEAD_BYTES)
    sniffed = sniff(head)
    if sniffed.kind is None:
        raise UnsupportedMedia(
            "the content is not a video, audio or image format we accept (whatever its name)", field="file"
        )
    if sniffed.kind == "image":
        dims = image_dimensions(head)
        if dims and dims[0] * dims[1] > limits.max_image_pixels:
            raise InvalidMedia(
                f"the image is {dims[0]}x{dims[1]} ({dims[0] * dims[1] / 1e6:.0f} MP), above the "
                f"{limits.max_image_pixels / 1e6:.0f} MP limit",
                field="file",
            )
    found = probe(path)
    kind = sniffed.kind
    if kind == "video" and found.video is None:
        if found.audio is None:
            raise InvalidMedia("the file holds no video or audio stream", field="file")
        kind = "audio"  # an MP4/WebM with sound only
    if kind == "audio" and found.audio is None:
        raise InvalidMedia("the audio file holds no audio stream", field="file")
    if kind in ("video", "image") and found.video is not None:
        v = found.video
        if min(v.width, v.height) < limits.min_dimension:
            raise InvalidMedia(
                f"the picture is {v.width}x{v.height}; the smallest side must be at least "
                f"{limits.min_dimension} px",
                field="file",
            )
        if kind == "video" and v.width * v.height > limits.max_video_pixels:
            raise InvalidMedia(f"the video is {v.width}x{v.height}, above the 8K limit", field="file")
    if kind in ("video", "audio"):
        if not found.duration_s:
            raise InvalidMedia(
                "the file has no readable duration (truncated or still being written?)", field="file"
            )
        if found.duration_s > limits.max_duration_s:
            raise InvalidMedia(
                f"the media lasts {found.duration_s:.0f} s, above the {limits.max_duration_s:.0f} s limit",
                field="file",
            )
    return Validated(kind=kind, mime=sniffed.mime, format=sniffed.format, probe=found)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def sanitize_filename(name: str) -> str:
    """For display and Content-Disposition only: storage keys are ids, never this."""
    name = unicodedata.normalize("NFC", name or "")
    name = re.split(r"[\\/]", name)[-1]
    name = _CONTROL.sub("", name).strip().lstrip(".")
    name = " ".join(name.split())
    if len(name) > 120:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: 120 - len(ext) - 1] + "." + ext) if dot and len(ext) <= 10 else name[:120]
    return name or "upload"
