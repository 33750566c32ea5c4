"""Services of the analytics API: the event-id memory of tracking, and the reporting period."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from litestar.stores.base import StorageObject, Store
from litestar.stores.memory import MemoryStore

from domain.errors import InvalidValue

if TYPE_CHECKING:
    from litestar.stores.redis import RedisStore

SEEN_TTL = timedelta(hours=48)
SEEN_PREFIX = "analytics:seen:"
_MARK = b"1"
DEFAULT_DAYS = 7
MAX_DAYS = 800  # a little over two years of daily rows (the retention the spec asks for)


def period(start_date: date | None, end_date: date | None, today: date | None = None) -> tuple[date, date]:
    """The [start, end) days of a request's `start_date`..`end_date` (both inclusive, UTC). Defaults:
    the last 7 days up to today; one bound given, the other is 7 days from it."""
    today = today or datetime.now(UTC).date()
    try:
        return _period(start_date, end_date, today)
    except OverflowError:
        raise InvalidValue("the dates are out of range", field="start_date") from None


def _period(start_date: date | None, end_date: date | None, today: date) -> tuple[date, date]:
    if end_date is None:
        end_date = today if start_date is None else start_date + timedelta(days=DEFAULT_DAYS - 1)
    if start_date is None:
        start_date = end_date - timedelta(days=DEFAULT_DAYS - 1)
    if start_date > end_date:
        raise InvalidValue(f"start_date {start_date} is after end_date {end_date}", field="start_date")
    if (end_date - start_date).days + 1 > MAX_DAYS:
        raise InvalidValue(f"the period is longer than {MAX_DAYS} days", field="end_date")
    return start_date, end_date + timedelta(days=1)


class SeenEvents:
    """The event ids accepted within `SEEN_TTL`, one key each in a Litestar store, read and written
    a request's worth at a time: one MGET and one pipelined SET on Redis, one lock hold on the memory
    store (any other store: a call per id)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def seen(self, ids: list[str]) -> set[str]:
        keys = [SEEN_PREFIX + i for i in ids]
        store = self.store
        if isinstance(store, MemoryStore):
            now = datetime.now(UTC)
            table = store._store
            async with store._lock:
                hits = list(map(table.get, keys))
            if hits.count(None) == len(hits):
                return set()
            return {
                i
                for i, hit in zip(ids, hits, strict=True)
                if hit is not None and (hit.expires_at is None or hit.expires_at > now)
            }
        if (redis := _redis_store(store)) is not None:
            values = await redis._redis.mget([redis._make_key(key) for key in keys])
            return {i for i, value in zip(ids, values, strict=True) if value is not None}
        return {i for i, key in zip(ids, keys, strict=True) if await store.exists(key)}

    async def remember(self, ids: list[str]) -> None:
        store = self.store
        if isinstance(store, MemoryStore):
            entry = StorageObject(expires_at=datetime.now(UTC) + SEEN_TTL, data=_MARK)
            table = store._store
            entries = dict.fromkeys(map(SEEN_PREFIX.__add__, ids), entry)
            async with store._lock:
                table.update(entries)
            return
        if (redis := _redis_store(store)) is not None:
            seconds = int(SEEN_TTL.total_seconds())
            async with redis._redis.pipeline(transaction=False) as pipe:
                for i in ids:
                    pipe.set(redis._make_key(SEEN_PREFIX + i), _MARK, ex=seconds)
                await pipe.execute()
            return
        for i in ids:
            await store.set(SEEN_PREFIX + i, _MARK, expires_in=SEEN_TTL)


def _redis_store(store: Store) -> RedisStore | None:
    """`store` if it is a Redis store. A Redis store exists only once its module is loaded, so the
    embedded deployment never imports the Redis client for this check."""
    module = sys.modules.get("litestar.stores.redis")
    return store if module is not None and isinstance(store, module.RedisStore) else None
