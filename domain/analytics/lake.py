"""The local append-only buffer in front of the event lake, and the Parquet files it becomes.

Accepted events are appended to a buffer *segment*, `<buffer dir>/<uuid7>.jsonl` (one line per
event, see `domain.analytics.events.buffer_line`), and fsynced before the request is answered. A process holds an exclusive `flock` on each
segment it owns; the flusher seals the active segment (later appends start a new one), writes its
rows as Parquet (one file per event hour, named after the segment: `<hour prefix>/<segment id>.parquet`)
and deletes the segment. A segment left behind by a process that died is not locked by anyone: the
next process adopts and flushes it. The Parquet keys depend only on the segment and its rows, so a
segment flushed twice (a crash between the upload and the delete) overwrites the same objects with
the same rows: every acknowledged event reaches the lake exactly once.

A line torn by a crash in the middle of a write was never acknowledged (the fsync had not returned);
reading a segment skips lines that do not decode.
"""

from __future__ import annotations

import fcntl
import io
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import msgspec

from domain.analytics.events import BufferLine, lake_table, tables_by_hour
from domain.ids import new_id

log = logging.getLogger(__name__)
SEGMENT_SUFFIX = ".jsonl"
PARQUET_COMPRESSION = "zstd"

_decode_lines = msgspec.json.Decoder(BufferLine).decode_lines
_decode_line = msgspec.json.Decoder(BufferLine).decode


@dataclass(eq=False)
class Segment:
    path: Path
    file: IO[bytes] = field(repr=False)
    rows: int = 0

    @property
    def segment_id(self) -> str:
        return self.path.name.removesuffix(SEGMENT_SUFFIX)


def _lock(path: Path, *, create: bool) -> IO[bytes] | None:
    """Open `path` for appending holding its exclusive lock; None if another process holds it or
    (adopting, `create=False`) if it is gone: deleted by its owner once its rows were in the lake."""
    flags = os.O_WRONLY | os.O_APPEND | (os.O_CREAT | os.O_EXCL if create else 0)
    try:
        file = os.fdopen(os.open(path, flags, 0o600), "ab", buffering=0)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(file.fileno()).st_nlink == 0:
            raise BlockingIOError
    except BlockingIOError:
        file.close()
        return None
    return file


class EventBuffer:
    """The segments of one process in `directory` (thread-safe: appends and seals are serialized)."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._active: Segment | None = None
        self._sealed: list[Segment] = []

    @property
    def pending_rows(self) -> int:
        """Rows in the active segment (not yet sealed)."""
        active = self._active
        return active.rows if active else 0

    def append(self, data: bytes, rows: int) -> None:
        """Append `rows` encoded lines (`data`, each ending in a newline) and fsync them. If the
        write fails the segment is cut back to where it was, so no partial line stays in it."""
        with self._lock:
            if self._active is None:
                path = self.directory / f"{new_id()}{SEGMENT_SUFFIX}"
                file = _lock(path, create=True)
                if file is None:
                    raise RuntimeError(f"buffer segment {path} is locked by another process")
                self._active = Segment(path, file)
            segment = self._active
            fd = segment.file.fileno()
            start = os.lseek(fd, 0, os.SEEK_END)
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fdatasync(fd)
            except BaseException:
                os.ftruncate(fd, start)
                raise
            segment.rows += rows

    def seal(self) -> None:
        """Close the active segment to appends (the next append starts a new one)."""
        with self._lock:
            if self._active is not None and self._active.rows:
                self._sealed.append(self._active)
                self._active = None

    def sealed(self) -> list[Segment]:
        with self._lock:
            return list(self._sealed)

    def adopt_orphans(self) -> list[Segment]:
        """Take over segments that no live process holds (left by a crash); they join `sealed`."""
        adopted = []
        with self._lock:
            ours = {s.path for s in self._sealed} | ({self._active.path} if self._active else set())
            for path in sorted(self.directory.glob(f"*{SEGMENT_SUFFIX}")):
                if path in ours:
                    continue
                file = _lock(path, create=False)
                if file is None:
                    continue
                segment = Segment(path, file, rows=-1)  # unknown until read
                self._sealed.append(segment)
                adopted.append(segment)
        return adopted

    def release(self, segment: Segment) -> None:
        """Forget a sealed segment whose rows are in the lake: delete it, then drop its lock."""
        with self._lock:
            self._sealed.remove(segment)
        segment.path.unlink(missing_ok=True)
        segment.file.close()

    def close(self) -> None:
        """Drop every lock (files stay on disk for the next process to flush)."""
        with self._lock:
            for segment in [*self._sealed, *([self._active] if self._active else [])]:
                segment.file.close()
            self._sealed, self._active = [], None


def read_lines(path: Path) -> list[BufferLine]:
    """The lines of a segment, skipping any that does not decode (a torn, unacknowledged write)."""
    return read_buffer_lines(path.read_bytes(), path)


def read_buffer_lines(data: bytes, source: Path | str = "<bytes>") -> list[BufferLine]:
    """Buffer lines from their bytes (see `read_lines`)."""
    try:
        return _decode_lines(data)
    except msgspec.DecodeError:
        pass
    good = []
    for line in data.split(b"\n"):
        if not line:
            continue
        try:
            good.append(_decode_line(line))
        except msgspec.DecodeError:
            log.warning("skipped an undecodable line in %s (a write cut short by a crash)", source)
    return good


def parquet_files(segment_id: str, lines: list[BufferLine]) -> dict[str, bytes]:
    """The lake objects of a segment: `{<hour prefix>/<segment id>.parquet: bytes}`, one per event
    hour, zstd-compressed, rows in order and each event id once (the first line wins). pyarrow is
    imported here, on the first flush, not when the API imports this module."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = lake_table(lines)
    if pc.count_distinct(table["event_id"]).as_py() != table.num_rows:
        ids = table["event_id"].to_pylist()
        seen: set[str] = set()
        keep = [not (i in seen or seen.add(i)) for i in ids]
        table = table.filter(pa.array(keep))
    files = {}
    for prefix, group in tables_by_hour(table).items():
        sink = io.BytesIO()
        pq.write_table(group, sink, compression=PARQUET_COMPRESSION)
        files[f"{prefix}/{segment_id}.parquet"] = sink.getvalue()
    return files
