"""Where the inspected bytes come from: a local file or a `Source` (an object in the store), read a
few bytes at a time at chosen offsets (`Reader`), and the ISO-BMFF box walk that both the image
headers (HEIF) and the truncation check need."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO


@dataclass(frozen=True)
class Source:
    """Media that is not a local file, e.g. an object in the store: its size, how to open it for a
    few small reads at chosen offsets (sniffing, headers, the container's own length), and a URL
    ffprobe reads it from (ffprobe seeks with range requests: nothing is downloaded whole)."""

    size: int
    open: Callable[[], BinaryIO]
    url: str


def as_source(path: str | Path | Source) -> Source:
    """A local path as a `Source`; a `Source` as it is."""
    if isinstance(path, Source):
        return path
    path = Path(path)
    # `file:` so no name is ever taken for a protocol
    return Source(size=path.stat().st_size, open=lambda: path.open("rb"), url=f"file:{path.resolve()}")


class Reader:
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


def boxes(r: Reader, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
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
