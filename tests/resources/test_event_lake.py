"""The event lake writer: the fsynced local buffer, Parquet by event hour in the object store (a
local directory and S3 through moto's server), and crash recovery that writes every acknowledged
event exactly once."""

from __future__ import annotations

import asyncio
import io
import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pyarrow.parquet as pq
import pytest

from domain.analytics import events
from domain.analytics.lake import EventBuffer, parquet_files, read_lines
from resources.event_lake import EventLake, flush_segment
from resources.object_store import LocalObjectStore, ObjectStore, S3ObjectStore

USER = str(uuid.uuid4())
START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return LocalObjectStore(root=str(tmp_path / "objects"))
    request.getfixturevalue("aws_credentials")
    endpoint = request.getfixturevalue("s3_endpoint")
    return S3ObjectStore(bucket=f"lake-{uuid.uuid4().hex[:12]}", endpoint_url=endpoint, create_bucket=True)


def batch(count: int, *, hours: int = 1) -> tuple[bytes, list[str]]:
    """`count` view events spread over `hours` hours from START: (buffer lines, event ids)."""
    ids, lines = [], []
    for n in range(count):
        event_id = str(uuid.uuid4())
        at = START + timedelta(hours=n % hours, seconds=n)
        raw = json.dumps(
            {
                "type": "view",
                "event_id": event_id,
                "occurred_at": at.isoformat(),
                "content_id": str(uuid.uuid4()),
            }
        ).encode()
        ids.append(event_id)
        lines.append(events.buffer_line(raw, USER, events.epoch_ms(datetime.now(UTC))))
    return b"".join(lines), ids


def lake_rows(store: ObjectStore) -> list[dict]:
    rows = []
    for key in store.list(events.LAKE_PREFIX + "/"):
        table = pq.read_table(io.BytesIO(store.get_bytes(key)))
        assert table.schema == events.lake_schema()
        for row in table.to_pylist():
            assert key.startswith(events.hour_prefix(row["occurred_at"]) + "/"), key
            rows.append(row)
    return rows


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.jsonl"))


async def test_appended_events_reach_the_lake_partitioned_by_hour(store: ObjectStore, tmp_path: Path) -> None:
    lake = EventLake(tmp_path / "buffer", store, flush_seconds=60)
    await lake.start()
    sent = []
    for _ in range(3):
        data, ids = batch(40, hours=3)
        await lake.append(data, len(ids))
        sent += ids
    # On disk before anything is flushed: one active segment with every line.
    assert sum(len(read_lines(path)) for path in segments(tmp_path / "buffer")) == 120
    await lake.stop()
    rows = lake_rows(store)
    assert sorted(r["event_id"] for r in rows) == sorted(sent)
    assert {r["user_id"] for r in rows} == {USER}
    keys = list(store.list(events.LAKE_PREFIX + "/"))
    assert len(keys) == 3 and all(k.endswith(".parquet") for k in keys)
    assert {k.rsplit("/", 1)[0] for k in keys} == {
        events.hour_prefix(START + timedelta(hours=h)) for h in range(3)
    }
    assert segments(tmp_path / "buffer") == []
    assert lake.stats.rows == 120 and lake.stats.failures == 0


async def test_the_flusher_runs_by_row_count_and_by_time(tmp_path: Path) -> None:
    store = LocalObjectStore(root=str(tmp_path / "objects"))
    lake = EventLake(tmp_path / "buffer", store, flush_seconds=0.3, flush_rows=50)
    await lake.start()
    try:
        data, ids = batch(60)
        await lake.append(data, len(ids))  # over flush_rows: flushed at once, not after flush_seconds
        for _ in range(50):
            if lake.stats.rows == 60:
                break
            await asyncio.sleep(0.05)
        assert lake.stats.rows == 60
        data, more = batch(5)
        await lake.append(data, len(more))  # under flush_rows: flushed on the timer
        for _ in range(50):
            if lake.stats.rows == 65:
                break
            await asyncio.sleep(0.05)
        assert lake.stats.rows == 65
    finally:
        await lake.stop()
    assert sorted(r["event_id"] for r in lake_rows(store)) == sorted(ids + more)


async def test_concurrent_appends_share_fsyncs_and_lose_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalObjectStore(root=str(tmp_path / "objects"))
    lake = EventLake(tmp_path / "buffer", store, flush_seconds=60)
    await lake.start()
    synced: list[int] = []  # the lines in the buffer at each fsync of it, counted after the real call

    def counting(real):
        def sync(fd: int) -> None:
            real(fd)
            synced.append(sum(len(read_lines(path)) for path in segments(tmp_path / "buffer")))

        return sync

    monkeypatch.setattr(os, "fdatasync", counting(os.fdatasync))
    monkeypatch.setattr(os, "fsync", counting(os.fsync))
    batches = [batch(10) for _ in range(30)]
    await asyncio.gather(*(lake.append(data, len(ids)) for data, ids in batches))
    monkeypatch.undo()
    # 30 appends, all acknowledged, on fewer fsyncs than that: each fsync made several durable.
    assert 1 <= len(synced) < len(batches) and synced[-1] == 300, synced
    await lake.stop()
    assert sorted(r["event_id"] for r in lake_rows(store)) == sorted(i for _, ids in batches for i in ids)


async def test_a_crashed_process_leaves_nothing_acknowledged_behind(
    store: ObjectStore, tmp_path: Path
) -> None:
    buffer_dir = tmp_path / "buffer"
    crashed = EventLake(buffer_dir, store, flush_seconds=60)
    await crashed.start()
    acknowledged = []
    for _ in range(2):
        data, ids = batch(25, hours=2)
        await crashed.append(data, len(ids))
        acknowledged += ids
    crashed.buffer.seal()  # a sealed segment that was never flushed ...
    data, ids = batch(25, hours=2)
    await crashed.append(data, len(ids))  # ... and an active one
    acknowledged += ids
    # The process dies: no flush; its locks go with it. A torn, unacknowledged line at the end:
    crashed._flusher.cancel()
    crashed.buffer.close()
    with segments(buffer_dir)[-1].open("ab") as torn:
        torn.write(b'{"u":"x","r":1,"e":{"type":"vi')
    assert lake_rows(store) == []

    restarted = EventLake(buffer_dir, store, flush_seconds=60)
    await restarted.start()  # recovery first
    rows = lake_rows(store)
    assert sorted(r["event_id"] for r in rows) == sorted(acknowledged)  # each exactly once
    assert segments(buffer_dir) == []
    await restarted.stop()
    assert len(lake_rows(store)) == len(acknowledged)


async def test_a_segment_flushed_twice_is_in_the_lake_once(store: ObjectStore, tmp_path: Path) -> None:
    """A crash between the upload and the delete of a segment: its recovery overwrites the same keys."""
    buffer = EventBuffer(tmp_path / "buffer")
    data, ids = batch(30, hours=2)
    buffer.append(data + data[: len(data) // 30], len(ids) + 1)  # the first event twice
    buffer.seal()
    (segment,) = buffer.sealed()
    assert flush_segment(store, segment) == (31, 2)
    buffer.close()  # dies before deleting the segment

    again = EventLake(tmp_path / "buffer", store)
    stats = again.recover()
    assert stats.segments == 1 and stats.files == 2
    assert sorted(r["event_id"] for r in lake_rows(store)) == sorted(ids)
    again.buffer.close()


async def test_a_live_process_keeps_its_segments(tmp_path: Path) -> None:
    store = LocalObjectStore(root=str(tmp_path / "objects"))
    live = EventLake(tmp_path / "buffer", store, flush_seconds=60)
    await live.start()
    data, ids = batch(5)
    await live.append(data, len(ids))
    other = EventLake(tmp_path / "buffer", store)  # another API process on the same directory
    assert other.recover().segments == 0 and lake_rows(store) == []
    await live.stop()
    assert sorted(r["event_id"] for r in lake_rows(store)) == sorted(ids)


async def test_a_failed_flush_keeps_the_segment_for_the_next_try(tmp_path: Path) -> None:
    blocked = tmp_path / "objects"
    blocked.write_text("a file where the store's directory should be")
    lake = EventLake(tmp_path / "buffer", LocalObjectStore(root=str(blocked)), flush_seconds=60)
    data, ids = batch(5)
    lake.buffer.append(data, len(ids))
    assert lake.flush().failures == 1
    assert len(segments(tmp_path / "buffer")) == 1
    blocked.unlink()
    assert lake.flush().rows == 5
    assert sorted(r["event_id"] for r in lake_rows(lake.store)) == sorted(ids)
    lake.buffer.close()


def test_parquet_files_are_zstd_and_named_after_the_segment() -> None:
    data, _ = batch(4, hours=2)
    decoded = msgspec.json.decode(
        b"[" + data.strip().replace(b"\n", b",") + b"]", type=list[events.BufferLine]
    )
    files = parquet_files("seg-1", decoded)
    assert sorted(files) == sorted(
        f"{events.hour_prefix(START + timedelta(hours=h))}/seg-1.parquet" for h in range(2)
    )
    for blob in files.values():
        meta = pq.ParquetFile(io.BytesIO(blob)).metadata
        assert meta.row_group(0).column(0).compression == "ZSTD"
