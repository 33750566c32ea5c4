"""Checking an upload by its content, never its name.

In order, each step cheaper than the next:
1. the size on disk (and the size the client declared),
2. the magic bytes of the first 64 KB (`sniff`): text, documents, archives and unknown formats stop here,
3. for images, the dimensions stated in the header (`read_image_header`), read by seeking over the
   file's segments without decoding a pixel, so a 30000x30000 image is refused before anything
   decodes it (decompression-bomb guard),
4. ffprobe (`probe`) for what the file really holds: streams, duration, rotation, frame rate,
5. the limits (`MediaLimits`) and a structural check that the container is complete.

Pure Python plus the `ffprobe` binary. Callers map the errors onto problem details by their status.

ffmpeg and ffprobe never guess the format of an uploaded file: `input_args` opens it with the demuxer
of the format `sniff` found (`-f mov`, `-f mp3`, ...) and only the protocol that reaches it
(`-protocol_whitelist file`, or http(s) for an object in S3). Left to guess, ffmpeg takes a file that
starts like an MP3 (an ID3 tag) and goes on as an HLS playlist or an ffconcat list for a playlist
demuxer, which then opens the URLs and files the playlist names: requests into the platform's
network, files of the server.
"""

from __future__ import annotations

import io
import json
import re
import statistics
import struct
import subprocess
import unicodedata
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from domain.errors import DomainError

HEAD_BYTES = 64 * 1024
# Packets (not frames: nothing is decoded) read to judge whether the frame rate is variable.
VFR_PACKETS = 200


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
    max_bytes: int = 5 * 1024**3  # 5 GiB, the upload limit of the spec
    max_duration_s: float = 12 * 3600
    max_video_pixels: int = 7680 * 4320  # 8K UHD, 33.2 MP
    max_image_pixels: int = 100_000_000  # 100 MP
    min_dimension: int = 16  # smallest side of a video or image, in pixels: a 1x1 video is refused
    allowed_kinds: frozenset[str] = frozenset({"video", "audio", "image"})


@dataclass(frozen=True)
class Source:
    """Media that is not a local file, e.g. an object in the store: its size, how to open it for a
    few small reads at chosen offsets (sniffing, headers, the container's own length), and a URL
    ffprobe reads it from (ffprobe seeks with range requests: nothing is downloaded whole)."""

    size: int
    open: Callable[[], BinaryIO]
    url: str


def _source(path: str | Path | Source) -> Source:
    if isinstance(path, Source):
        return path
    path = Path(path)
    # `file:` so no name is ever taken for a protocol
    return Source(size=path.stat().st_size, open=lambda: path.open("rb"), url=f"file:{path.resolve()}")


# --------------------------------------------------------------------------------------------- sniff


@dataclass(frozen=True)
class Sniffed:
    kind: str | None  # video | audio | image | None (not media)
    mime: str | None
    format: str  # mp4, mov, 3gp, webm, matroska, avi, mpegts, mp3, aac, wav, flac, ogg, jpeg, png, ...


# What a refused non-media file is, for the 415 reason.
NOT_MEDIA = {
    "text": "plain text",
    "html": "an HTML page",
    "svg": "an SVG drawing (SVG can carry scripts; upload PNG, JPEG or WebP instead)",
    "pdf": "a PDF document",
    "zip": "a ZIP archive (or an office document)",
    "archive": "a compressed archive",
    "executable": "a program",
    "bmp": "a BMP image (upload PNG, JPEG or WebP instead)",
}

_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis"}
_AUDIO_MP4_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "}
_QUICKTIME_BOXES = {b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}


def sniff(head: bytes) -> Sniffed:
    """What the first bytes (up to 64 KB) say the file is. The name plays no part."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return _sniff_iso_bmff(head)
    if len(head) >= 8 and head[4:8] in _QUICKTIME_BOXES and int.from_bytes(head[:4], "big") >= 8:
        return Sniffed("video", "video/quicktime", "mov")  # QuickTime from before `ftyp`
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        webm = _ebml_doctype(head) == b"webm"
        return Sniffed("video", "video/webm" if webm else "video/x-matroska", "webm" if webm else "matroska")
    if head.startswith(b"RIFF") and len(head) >= 12:
        sub = head[8:12]
        if sub == b"AVI ":
            return Sniffed("video", "video/x-msvideo", "avi")
        if sub == b"WAVE":
            return Sniffed("audio", "audio/wav", "wav")
        if sub == b"WEBP":
            return Sniffed("image", "image/webp", "webp")
    if _packets_in_step(head, 0, 188):
        return Sniffed("video", "video/mp2t", "mpegts")
    if _packets_in_step(head, 4, 192):
        return Sniffed("video", "video/mp2t", "m2ts")
    if head.startswith(b"ID3") and len(head) >= 10:
        return _sniff_after_id3(head)
    if head.startswith(b"fLaC"):
        return Sniffed("audio", "audio/flac", "flac")
    if head.startswith(b"OggS"):
        # Every stream's first page comes before any data page, so the codecs are all in the head.
        video = b"\x80theora" in head[:4096]
        return Sniffed("video" if video else "audio", "video/ogg" if video else "audio/ogg", "ogg")
    if _adts_frames(head):
        return Sniffed("audio", "audio/aac", "aac")
    if _mpeg_audio_frames(head):
        return Sniffed("audio", "audio/mpeg", "mp3")
    if head.startswith(b"\xff\xd8\xff"):
        return Sniffed("image", "image/jpeg", "jpeg")
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed("image", "image/png", "png")
    if head.startswith((b"GIF87a", b"GIF89a")):
        return Sniffed("image", "image/gif", "gif")
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return Sniffed("image", "image/tiff", "tiff")
    return Sniffed(None, None, _not_media(head))


def _sniff_iso_bmff(head: bytes) -> Sniffed:
    size = int.from_bytes(head[:4], "big")
    major = head[8:12]
    brands = {major} | {head[i : i + 4] for i in range(16, min(size, len(head), 256) - 3, 4)}
    if major in _HEIF_BRANDS or (major in (b"mif1", b"msf1") and brands & _HEIF_BRANDS):
        avif = b"avif" in brands or b"avis" in brands
        return Sniffed("image", "image/avif" if avif else "image/heic", "avif" if avif else "heif")
    if major in _AUDIO_MP4_BRANDS:
        return Sniffed("audio", "audio/mp4", "mp4")
    if major == b"qt  ":
        return Sniffed("video", "video/quicktime", "mov")
    if major.startswith((b"3gp", b"3g2")):
        return Sniffed("video", "video/3gpp", "3gp")
    return Sniffed("video", "video/mp4", "mp4")


def _ebml_doctype(head: bytes) -> bytes | None:
    """The DocType element (0x4282) of the EBML header: b"webm" or b"matroska"."""
    at = head.find(b"\x42\x82", 4, 64)
    if at < 0 or at + 3 > len(head):
        return None
    length = head[at + 2] & 0x7F if head[at + 2] & 0x80 else None  # one-byte size, as every muxer writes
    return head[at + 3 : at + 3 + length] if length else None


def _packets_in_step(head: bytes, first: int, step: int) -> bool:
    """MPEG-TS: the 0x47 sync byte at the start of every packet (at least 3 packets in the head)."""
    starts = range(first, min(len(head), first + step * 8), step)
    return len(starts) >= 3 and all(head[i] == 0x47 for i in starts)


def _sniff_after_id3(head: bytes) -> Sniffed:
    """An ID3v2 tag can precede MP3, AAC or FLAC: look past it when it fits in the head."""
    size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
    end = 10 + size + (10 if head[5] & 0x10 else 0)
    rest = head[end:]
    if rest.startswith(b"fLaC"):
        return Sniffed("audio", "audio/flac", "flac")
    if _adts_frames(rest):
        return Sniffed("audio", "audio/aac", "aac")
    return Sniffed("audio", "audio/mpeg", "mp3")  # the tag says audio; ffprobe confirms the stream


_MPEG_BITRATES = {  # kbit/s by (MPEG-1?, layer) and index 1..14
    (True, 1): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MPEG_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mpeg_frame_length(h: bytes) -> int | None:
    """Length of the MPEG audio frame whose 4-byte header is `h`, or None if it is not one."""
    if len(h) < 4 or h[0] != 0xFF or h[1] & 0xE0 != 0xE0:
        return None
    version, layer_bits = (h[1] >> 3) & 3, (h[1] >> 1) & 3
    bitrate_index, rate_index, padding = h[2] >> 4, (h[2] >> 2) & 3, (h[2] >> 1) & 1
    if version == 1 or layer_bits == 0 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    layer = 4 - layer_bits
    mpeg1 = version == 3
    bitrate = _MPEG_BITRATES[(mpeg1, layer)][bitrate_index - 1] * 1000
    rate = _MPEG_RATES[version][rate_index]
    if layer == 1:
        return (12 * bitrate // rate + padding) * 4
    return (144 if layer == 2 or mpeg1 else 72) * bitrate // rate + padding


def _mpeg_audio_frames(head: bytes) -> bool:
    """Two MPEG audio frames in a row (one alone is too easy to match by chance in random bytes)."""
    first = _mpeg_frame_length(head[:4])
    if not first:
        return False
    if len(head) < first + 4:
        return len(head) == first  # a one-frame file
    return _mpeg_frame_length(head[first : first + 4]) is not None


def _adts_frames(head: bytes) -> bool:
    """Two AAC ADTS frames in a row: 12-bit sync, layer 00, and the frame length pointing at the next."""
    if len(head) < 7 or head[0] != 0xFF or head[1] & 0xF6 != 0xF0:
        return False
    length = ((head[3] & 3) << 11) | (head[4] << 3) | (head[5] >> 5)
    if length < 7:
        return False
    if len(head) < length + 2:
        return len(head) == length
    return head[length] == 0xFF and head[length + 1] & 0xF6 == 0xF0


def _not_media(head: bytes) -> str:
    if head.startswith(b"%PDF"):
        return "pdf"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith((b"\x1f\x8b", b"7z\xbc\xaf\x27\x1c", b"Rar!\x1a\x07", b"BZh", b"\xfd7zXZ\x00")):
        return "archive"
    if head.startswith((b"\x7fELF", b"MZ", b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe")):
        return "executable"
    if head.startswith(b"BM") and len(head) >= 26 and head[14] in (12, 40, 52, 56, 108, 124):
        return "bmp"
    text = _as_text(head)
    if text is None:
        return "unknown"
    start = text.lstrip("\ufeff \t\r\n").lower()[:1024]
    if "<svg" in start:
        return "svg"
    if start.startswith(("<!doctype html", "<html")) or "<html" in start:
        return "html"
    return "text"


def _as_text(head: bytes) -> str | None:
    """The head decoded as text, if it is text (UTF-8/16 or mostly printable ASCII)."""
    sample = head[:8192]
    if sample.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return sample[: len(sample) // 2 * 2].decode("utf-16")
        except UnicodeDecodeError:
            return None
    if b"\x00" in sample:
        return None
    for cut in range(4):  # the sample may end inside a multi-byte character
        try:
            text = sample[: len(sample) - cut].decode("utf-8")
            break
        except UnicodeDecodeError:
            continue
    else:
        return None
    printable = sum(ch.isprintable() or ch in "\t\r\n\f" for ch in text)
    return text if printable >= 0.95 * max(len(text), 1) else None


def check_head(head: bytes, limits: MediaLimits | None = None) -> Sniffed:
    """The sniffed format of a file's first bytes (up to `HEAD_BYTES`), or UnsupportedMedia (415)
    when they are not a video, audio or image format we accept (or a kind `limits` does not allow).
    Uploads call it on the first 64 KB before storing anything more."""
    sniffed = sniff(head[:HEAD_BYTES])
    if sniffed.kind is None:
        what = NOT_MEDIA.get(sniffed.format)
        raise UnsupportedMedia(
            f"the file is {what}, not video, audio or an image (whatever its name says)"
            if what
            else "the content is not a video, audio or image format we accept (whatever its name says)",
            field="file",
        )
    if limits is not None:
        _allow(sniffed.kind, limits)
    return sniffed


# ffmpeg's demuxer for each format `sniff` names.
DEMUXERS = {
    "mp4": "mov", "mov": "mov", "3gp": "mov", "heif": "mov", "avif": "mov",
    "webm": "matroska", "matroska": "matroska", "avi": "avi", "mpegts": "mpegts", "m2ts": "mpegts",
    "mp3": "mp3", "aac": "aac", "wav": "wav", "flac": "flac", "ogg": "ogg",
    "jpeg": "jpeg_pipe", "png": "png_pipe", "gif": "gif", "webp": "webp_pipe", "tiff": "tiff_pipe",
}  # fmt: skip
REMOTE_PROTOCOLS = "http,https,tcp,tls"


def demuxer(head: bytes) -> str:
    """The ffmpeg demuxer that reads a file starting with `head` (UnsupportedMedia if none)."""
    sniffed = check_head(head)
    if sniffed.format == "png":
        header = read_image_header(head)
        return "apng" if header is not None and header.animated else "png_pipe"
    return DEMUXERS[sniffed.format]


def input_args(path: str | Path | Source) -> list[str]:
    """The ffmpeg/ffprobe arguments that open an uploaded file: its sniffed demuxer, the one protocol
    it is read with, then `-i` and its URL (`file:` for a local file: no name is taken for a
    protocol). Put them where the input goes; each input of a command needs its own. Raises
    UnsupportedMedia when the file is not a format we accept."""
    source = _source(path)
    with source.open() as f:
        head = f.read(HEAD_BYTES)
    protocols = "file" if source.url.startswith("file:") else REMOTE_PROTOCOLS
    return ["-protocol_whitelist", protocols, "-f", demuxer(head), "-i", source.url]


# ------------------------------------------------------------------------------------- image header


@dataclass(frozen=True)
class ImageHeader:
    width: int
    height: int
    animated: bool = False  # known from the header: animated WebP (VP8X flag), APNG (acTL)


class _Reader:
    """Random access over bytes or a seekable binary file, a few bytes at a time."""

    def __init__(self, source: bytes | bytearray | memoryview | BinaryIO) -> None:
        self._file: BinaryIO = (
            io.BytesIO(bytes(source)) if isinstance(source, bytes | bytearray | memoryview) else source
        )
        self.size = self._file.seek(0, io.SEEK_END)

    def at(self, offset: int, n: int) -> bytes:
        if offset < 0 or n <= 0 or offset >= self.size:
            return b""
        self._file.seek(offset)
        return self._file.read(n)


def read_image_header(source: bytes | BinaryIO) -> ImageHeader | None:
    """Width and height as the image's header states them, without decoding a pixel.

    `source` is the head of the file (bytes) or the open file itself; with the file, the parser
    seeks over segments (a JPEG whose EXIF block is larger than the head, a TIFF whose directory
    sits after the pixel data) and still reads only a few hundred bytes. None when the format is
    not one of PNG, JPEG, GIF, WebP, TIFF, HEIF/AVIF or the header is damaged."""
    r = _Reader(source)
    head = r.at(0, 32)
    try:
        if head.startswith(b"\x89PNG\r\n\x1a\n"):
            return _png(r)
        if head.startswith(b"\xff\xd8"):
            return _jpeg(r)
        if head.startswith((b"GIF87a", b"GIF89a")) and len(head) >= 10:
            return _sized(*struct.unpack("<HH", head[6:10]))
        if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
            return _webp(head)
        if head.startswith((b"II*\x00", b"MM\x00*")):
            return _tiff(r, "<" if head[0] == ord("I") else ">")
        if head[4:8] == b"ftyp":
            return _heif(r)
    except (struct.error, IndexError, ValueError):
        return None
    return None


def image_dimensions(source: bytes | BinaryIO) -> tuple[int, int] | None:
    """(width, height) from the header only; see `read_image_header`."""
    header = read_image_header(source)
    return (header.width, header.height) if header else None


def _sized(width: int, height: int, animated: bool = False) -> ImageHeader | None:
    return ImageHeader(width, height, animated) if width > 0 and height > 0 else None


def _png(r: _Reader) -> ImageHeader | None:
    ihdr = r.at(8, 25)
    if len(ihdr) < 25 or ihdr[:8] != b"\x00\x00\x00\x0dIHDR":
        return None
    if zlib.crc32(ihdr[4:21]) != int.from_bytes(ihdr[21:25], "big"):
        return None  # a damaged (or forged without care) header
    width, height = struct.unpack(">II", ihdr[8:16])
    animated, pos = False, 33
    for _ in range(1000):  # APNG: an acTL chunk before the first IDAT
        chunk = r.at(pos, 12)
        if len(chunk) < 8 or chunk[4:8] in (b"IDAT", b"IEND"):
            break
        length = int.from_bytes(chunk[:4], "big")
        if chunk[4:8] == b"acTL":
            animated = len(chunk) >= 12 and int.from_bytes(chunk[8:12], "big") > 1
            break
        pos += 12 + length
    return _sized(width, height, animated)


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg(r: _Reader) -> ImageHeader | None:
    pos = 2
    for _ in range(10_000):
        marker = r.at(pos, 4)
        if len(marker) < 2 or marker[0] != 0xFF:
            return None
        code = marker[1]
        if code == 0xFF:  # fill byte
            pos += 1
            continue
        if code == 0x01 or 0xD0 <= code <= 0xD8:  # markers without a length
            pos += 2
            continue
        if code in (0xD9, 0xDA) or len(marker) < 4:  # end of image or scan data before any frame header
            return None
        length = int.from_bytes(marker[2:4], "big")
        if length < 2:
            return None
        if code in _SOF:
            sof = r.at(pos + 5, 4)
            return _sized(*reversed(struct.unpack(">HH", sof))) if len(sof) == 4 else None
        pos += 2 + length
    return None


def _webp(head: bytes) -> ImageHeader | None:
    chunk = head[12:16]
    if chunk == b"VP8X" and len(head) >= 30:
        animated = bool(head[20] & 0x02)
        return _sized(
            int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1, animated
        )
    if chunk == b"VP8L" and len(head) >= 25 and head[20] == 0x2F:
        bits = int.from_bytes(head[21:25], "little")
        return _sized((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8 " and len(head) >= 30 and head[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", head[26:30])
        return _sized(width & 0x3FFF, height & 0x3FFF)
    return None


def _tiff(r: _Reader, order: str) -> ImageHeader | None:
    ifd = struct.unpack(order + "I", r.at(4, 4))[0]
    count = min(struct.unpack(order + "H", r.at(ifd, 2))[0], 1000)
    entries = r.at(ifd + 2, 12 * count)
    size: dict[int, int] = {}
    for i in range(0, len(entries) - 11, 12):
        tag, kind = struct.unpack(order + "HH", entries[i : i + 4])
        if tag in (256, 257) and kind in (3, 4):
            size[tag] = struct.unpack(
                order + ("H" if kind == 3 else "I"), entries[i + 8 : i + (10 if kind == 3 else 12)]
            )[0]
    return _sized(size.get(256, 0), size.get(257, 0))


def _boxes(r: _Reader, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """ISO-BMFF boxes between `start` and `end`: (type, payload start, box end)."""
    pos = start
    for _ in range(10_000):
        if pos + 8 > end:
            return
        header = r.at(pos, 16)
        if len(header) < 8:
            return
        size, kind, header_size = int.from_bytes(header[:4], "big"), header[4:8], 8
        if size == 1:
            if len(header) < 16:
                return
            size, header_size = int.from_bytes(header[8:16], "big"), 16
        elif size == 0:
            size = end - pos
        if size < header_size:
            return
        yield kind, pos + header_size, pos + size
        pos += size


def _heif(r: _Reader) -> ImageHeader | None:
    """HEIF/AVIF: the largest `ispe` (image spatial extents) under meta/iprp/ipco. A grid image's
    own extents are its full size, larger than each tile's."""
    best = (0, 0)
    for kind, start, end in _boxes(r, 0, r.size):
        if kind != b"meta":
            continue
        for kind2, start2, end2 in _boxes(r, start + 4, end):  # meta is a full box
            if kind2 != b"iprp":
                continue
            for kind3, start3, end3 in _boxes(r, start2, end2):
                if kind3 != b"ipco":
                    continue
                for kind4, start4, _ in _boxes(r, start3, end3):
                    if kind4 == b"ispe":
                        width, height = struct.unpack(">II", r.at(start4 + 4, 8))
                        best = max(best, (width, height), key=lambda wh: wh[0] * wh[1])
    return _sized(*best)


# --------------------------------------------------------------------------------------------- probe


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
    source = _source(path)
    *options, _, target = input_args(source)
    command = ["ffprobe", "-v", "error", *options, "-print_format", "json", "-show_format", "-show_streams",
               "-show_chapters", "-show_entries", "packet=stream_index,pts", "-read_intervals",
               f"%+#{VFR_PACKETS}", target]  # fmt: skip
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
            pts = [p["pts"] for p in info.get("packets") or [] if p.get("stream_index") == stream.get("index") and isinstance(p.get("pts"), int)]  # fmt: skip
            video = _video(stream, pts)
        elif stream.get("codec_type") == "audio" and audio is None:
            audio = AudioStream(
                codec=stream.get("codec_name") or "",
                channels=_int(stream.get("channels")) or 0,
                sample_rate=_int(stream.get("sample_rate")) or 0,
                bit_rate=_int(stream.get("bit_rate")),
            )
    chapters = [
        Chapter(_float(c.get("start_time")) or 0.0, _float(c.get("end_time")) or 0.0, (c.get("tags") or {}).get("title", ""))
        for c in info.get("chapters") or []
    ]  # fmt: skip
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


# ------------------------------------------------------------------------------------------ validate


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
    path: str | Path | Source, *, declared_size: int | None = None, limits: MediaLimits = MediaLimits()
) -> Validated:
    """Accept or refuse a file (or a `Source`, such as an object in the store) by its content.
    Raises MediaTooLarge (413), UnsupportedMedia (415) or InvalidMedia (422), each with a reason a
    person can act on; FileNotFoundError if missing."""
    source = _source(path)
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
        _allow(sniffed.kind, limits)
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
            kind="image", mime=sniffed.mime or "", format=sniffed.format, probe=found, size_bytes=size,
            width=header.width, height=header.height, duration_s=None,
            is_animated=header.animated or found.is_animated,
        )  # fmt: skip

    kind = "video" if found.video else "audio" if found.audio else None
    if kind is None:
        raise InvalidMedia("the file holds no video or audio stream", field="file")
    _allow(kind, limits)
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


def _allow(kind: str, limits: MediaLimits) -> None:
    if kind not in limits.allowed_kinds:
        accepted = ", ".join(sorted(limits.allowed_kinds)) or "nothing"
        raise UnsupportedMedia(f"the file is {kind}; this upload accepts {accepted}", field="file")


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


def truncation(path: str | Path | Source, format: str, size: int) -> str | None:
    """Why a container that states its own length ends early, or None. ffprobe reads an MP4 whose
    index (moov) comes first even when the data after it is cut; this catches that case, and the
    same for Matroska/WebM segments and RIFF (WAV, AVI, WebP) files."""
    with _source(path).open() as f:
        r = _Reader(f)
        if format in ("mp4", "mov", "3gp"):
            for kind, _, end in _boxes(r, 0, size):
                if end > size:
                    return f"its {kind.decode('latin-1')!r} box needs {end - size} more bytes"
                if end == size:
                    break
            return None
        if format in ("webm", "matroska"):
            return _ebml_truncation(r, size)
        if format in ("wav", "avi", "webp"):
            declared = int.from_bytes(r.at(4, 4), "little") + 8
            if (
                declared < 0xFFFFFFFF and declared > 8 and declared > size
            ):  # 0 / 0xFFFFFFFF: streamed, size unknown
                return f"the RIFF header declares {declared} bytes, the file has {size}"
    return None


def _ebml_truncation(r: _Reader, size: int) -> str | None:
    pos = 0
    for _ in range(4):  # EBML header, then the Segment
        element = r.at(pos, 12)
        id_length = _vint_length(element[0]) if element else 0
        if not id_length or len(element) < id_length + 1:
            return None
        size_length = _vint_length(element[id_length])
        if not size_length or len(element) < id_length + size_length:
            return None
        raw = int.from_bytes(element[id_length : id_length + size_length], "big")
        value = raw & ((1 << (7 * size_length)) - 1)
        if value == (1 << (7 * size_length)) - 1:
            return None  # unknown size: written live
        end = pos + id_length + size_length + value
        if element[:id_length] == b"\x18\x53\x80\x67":
            return f"its segment needs {end - size} more bytes" if end > size else None
        pos = end
    return None


def _vint_length(first: int) -> int:
    for n in range(8):
        if first & (0x80 >> n):
            return n + 1
    return 0


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


# ------------------------------------------------------------------------------------------ filename

_BIDI_CONTROLS = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069]")  # can make "exe.mp4" read "mp4.exe"
_RESERVED = re.compile(r'[<>:"|?*]')
FILENAME_MAX = 120


def sanitize_filename(name: str) -> str:
    """The client's file name made safe to show and to put in Content-Disposition (the serving layer
    still encodes it, RFC 6266 `filename*`). Never used to build a path: storage keys are built from
    ids (`uploads.original_key`). Keeps letters of every script (Arabic included), NFC-normalized."""
    name = unicodedata.normalize("NFC", name or "")
    name = re.split(r"[\\/]", name)[-1]  # directories, POSIX or Windows
    name = " ".join(name.split())  # tabs, newlines and runs of spaces become one space
    name = _BIDI_CONTROLS.sub("", name)
    name = "".join(ch for ch in name if unicodedata.category(ch) != "Cc")
    name = _RESERVED.sub("_", name)
    name = name.strip().lstrip(".").strip().rstrip(". ")
    if len(name) > FILENAME_MAX:
        stem, dot, ext = name.rpartition(".")
        if dot and stem and 1 <= len(ext) <= 16 and ext.isalnum():
            name = stem[: FILENAME_MAX - len(ext) - 1].rstrip(". ") + "." + ext
        else:
            name = name[:FILENAME_MAX].rstrip(". ")
    return name or "upload"
