"""Containers that state their own length and end early: an MP4 whose index comes first reads fine
in ffprobe even when the data after it is cut, and so can Matroska/WebM and RIFF files."""

from __future__ import annotations

from pathlib import Path

from domain.media.inspect.source import Reader, Source, as_source, boxes


def truncation(path: str | Path | Source, format: str, size: int) -> str | None:
    """Why a container that states its own length ends early, or None. ffprobe reads an MP4 whose
    index (moov) comes first even when the data after it is cut; this catches that case, and the
    same for Matroska/WebM segments and RIFF (WAV, AVI, WebP) files."""
    with as_source(path).open() as f:
        r = Reader(f)
        if format in ("mp4", "mov", "3gp"):
            for kind, _, end in boxes(r, 0, size):
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


def _ebml_truncation(r: Reader, size: int) -> str | None:
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
