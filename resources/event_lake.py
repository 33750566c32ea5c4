"""The writer of the event lake: accepted events go to the local buffer (`domain.analytics.lake`),
fsynced before the request is answered, and a flusher turns the buffer into Parquet objects in the
object store every `flush_seconds` or `flush_rows` rows, whichever comes first.

Appends of concurrent requests are group-committed: while one write + fsync runs in a worker thread,
the next requests queue up, and all of them share the following write + fsync. `start()` first
adopts and flushes the segments a dead process left (crash recovery); `stop()` flushes what is left.
A flush that fails (object store unreachable) keeps its segments on disk and is retried next tick.

pyarrow (and, through its first conversion of Python values, pandas: about 80 MB together) is loaded
when the first event arrives, not when the API starts, so a worker that never takes tracked events
never holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import anyio

from domain.analytics.lake import EventBuffer, Segment, parquet_files, read_lines
from resources.object_store import ObjectStore

log = logging.getLogger(__name__)
FLUSH_SECONDS = 5.0
FLUSH_ROWS = 10_000
PARQUET_CONTENT_TYPE = "application/vnd.apache.parquet"


@dataclass
class FlushStats:
    segments: int = 0
    rows: int = 0
    files: int = 0
    seconds: float = 0.0
    failures: int = 0


def flush_segment(store: ObjectStore, segment: Segment) -> tuple[int, int]:
    """Write one sealed segment's rows to the lake; returns (rows, files). The segment stays on disk."""
    lines = read_lines(segment.path)
    files = parquet_files(segment.segment_id, lines)
    for key, data in files.items():
        store.put_bytes(key, data, PARQUET_CONTENT_TYPE)
    return len(lines), len(files)


def _load_arrow_conversions() -> None:
    """Make pyarrow's first conversion of Python values now, in a worker thread as soon as the first
    event is accepted: it imports pandas then (seconds), which would otherwise happen inside the
    first flush and hold that flush up."""
    import pyarrow as pa

    pa.array([], type=pa.string())


class EventLake:
    def __init__(
        self,
        buffer_dir: Path | str,
        store: ObjectStore,
        *,
        flush_seconds: float = FLUSH_SECONDS,
        flush_rows: int = FLUSH_ROWS,
    ) -> None:
        self.buffer = EventBuffer(buffer_dir)
        self.store = store
        self.flush_seconds = flush_seconds
        self.flush_rows = flush_rows
        self.stats = FlushStats()
        self._pending: list[tuple[bytes, int, asyncio.Future[None]]] = []
        self._committer: asyncio.Task[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._warmup: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._flushing = threading.Lock()

    # --- appending ----------------------------------------------------------------------------------

    async def append(self, data: bytes, rows: int) -> None:
        """Return once `rows` encoded lines are on disk (fsynced) in the buffer."""
        if self._warmup is None:
            self._warmup = asyncio.create_task(anyio.to_thread.run_sync(_load_arrow_conversions))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((data, rows, future))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit())
        await asyncio.shield(future)  # a cancelled request does not cancel the shared write

    async def _commit(self) -> None:
        while self._pending:
            group, self._pending = self._pending, []
            data = b"".join(item[0] for item in group)
            rows = sum(item[1] for item in group)
            try:
                await anyio.to_thread.run_sync(self.buffer.append, data, rows)
            except BaseException as exc:  # noqa: BLE001 (handed to every waiting request)
                for _, _, future in group:
                    if not future.done():
                        future.set_exception(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
                if not isinstance(exc, Exception):
                    raise
                continue
            for _, _, future in group:
                if not future.done():
                    future.set_result(None)
            if self._wake is not None and self.buffer.pending_rows >= self.flush_rows:
                self._wake.set()

    # --- flushing -----------------------------------------------------------------------------------

    def flush(self) -> FlushStats:
        """Seal the active segment and write every sealed segment to the lake (blocking)."""
        with self._flushing:
            return self._flush()

    def _flush(self) -> FlushStats:
        self.buffer.seal()
        done = FlushStats()
        started = time.perf_counter()
        for segment in self.buffer.sealed():
            try:
                rows, files = flush_segment(self.store, segment)
            except Exception:  # most likely the store is unreachable: retry them all next tick
                log.exception("flushing buffer segment %s failed; it is kept and retried", segment.path)
                done.failures += 1
                break
            self.buffer.release(segment)
            done.segments += 1
            done.rows += rows
            done.files += files
        done.seconds = time.perf_counter() - started
        for name in ("segments", "rows", "files", "seconds", "failures"):
            setattr(self.stats, name, getattr(self.stats, name) + getattr(done, name))
        return done

    def recover(self) -> FlushStats:
        """Adopt the segments a dead process left and write them to the lake (blocking)."""
        adopted = self.buffer.adopt_orphans()
        if adopted:
            log.info("recovering %d buffer segment(s) left by a stopped process", len(adopted))
        return self.flush()

    async def _flush_loop(self) -> None:
        assert self._wake is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_seconds)
            self._wake.clear()
            await anyio.to_thread.run_sync(self.flush)

    async def start(self) -> None:
        """Recover leftovers, then flush in the background until `stop()`."""
        await anyio.to_thread.run_sync(self.recover)
        self._wake = asyncio.Event()
        self._flusher = asyncio.create_task(self._flush_loop(), name="event-lake-flusher")

    async def stop(self) -> None:
        """Stop the flusher, let appends in flight finish, flush what is left, drop the locks."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        for task in (self._warmup, self._committer):
            if task is not None:
                with contextlib.suppress(Exception):
                    await task
        await anyio.to_thread.run_sync(self.flush)
        self.buffer.close()
