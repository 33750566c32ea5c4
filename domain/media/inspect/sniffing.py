"""What a file is by its first 64 KB of magic bytes (`sniff`, `check_head`), whatever its name says,
and how ffmpeg opens it: with the demuxer of the sniffed format over one protocol (`input_args`),
never by guessing (a guessed playlist demuxer opens the URLs and files the playlist names)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from domain.media.inspect.image_headers import read_image_header
from domain.media.inspect.limits import MediaLimits, UnsupportedMedia, allow_kind
from domain.media.inspect.source import Source, as_source

HEAD_BYTES = 64 * 1024


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
        allow_kind(sniffed.kind, limits)
    return sniffed


# ffmpeg's demuxer for each format `sniff` names.
DEMUXERS = {
    "mp4": "mov",
    "mov": "mov",
    "3gp": "mov",
    "heif": "mov",
    "avif": "mov",
    "webm": "matroska",
    "matroska": "matroska",
    "avi": "avi",
    "mpegts": "mpegts",
    "m2ts": "mpegts",
    "mp3": "mp3",
    "aac": "aac",
    "wav": "wav",
    "flac": "flac",
    "ogg": "ogg",
    "jpeg": "jpeg_pipe",
    "png": "png_pipe",
    "gif": "gif",
    "webp": "webp_pipe",
    "tiff": "tiff_pipe",
}


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
    source = as_source(path)
    with source.open() as f:
        head = f.read(HEAD_BYTES)
    protocols = "file" if source.url.startswith("file:") else REMOTE_PROTOCOLS
    return ["-protocol_whitelist", protocols, "-f", demuxer(head), "-i", source.url]
