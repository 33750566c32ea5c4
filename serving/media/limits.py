"""What an upload must pass before its bytes are taken, and while they come in.

- `HeadCheck`: the first 64 KB of a file are held back until they can be sniffed
  (`domain.media.inspect.sniffing.check_head`); a file that is not video, audio or an image is refused (415)
  before anything after its head is written. A tus upload's head may span PATCHes: what earlier
  PATCHes committed is part of it.
- `UploadGate`: per user, uploads in progress at once (429) and bytes per UTC day (413); for the
  host, the free space of the uploads directory's file system (507). Checked before the body is
  read (with the size the request declares), then every `METER_STEP` bytes by a `Meter` while it
  streams.

State lives in the `rate_limit` store (memory when embedded, Redis in production) and the operational
DB (unfinished tus uploads count as uploads in progress). A `Store` has no atomic increment, so two
requests of one user finishing at the same instant may count their bytes once: the concurrency limit
bounds what that lets through. A multipart upload holds a lease, renewed while bytes arrive, so a
slot whose process died frees itself after `LEASE_SECONDS`.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from datetime import timedelta

import anyio
from litestar.stores.base import Store

from domain.media import uploads
from domain.media.inspect import sniffing
from domain.media.inspect.limits import MediaLimits
from domain.media.uploads import UploadLimits
from serving.db import Database

LEASE_SECONDS = 300  # a multipart upload's slot, renewed while its bytes arrive
RENEW_SECONDS = 60
METER_STEP = 16 * 1024**2  # bytes between a meter's checks of the disk, the quota store and the lease
COUNTER_TTL = timedelta(days=2)
LIMITS = MediaLimits()


class HeadCheck:
    """Holds a file's new bytes back until its first `HEAD_BYTES` (or all of it, if shorter) can be
    sniffed; `committed` are the file's first bytes already stored (a tus upload's earlier PATCHes)."""

    def __init__(self, committed: bytes = b"", total: int | None = None) -> None:
        self.need = min(sniffing.HEAD_BYTES, total) if total else sniffing.HEAD_BYTES
        self.head = bytearray(committed[: self.need])
        self.held = bytearray()
        self.done = len(self.head) >= self.need
        if self.done:
            sniffing.check_head(bytes(self.head), LIMITS)

    def feed(self, data: bytes) -> bytes:
        """The bytes that may be written now: nothing while the head is incomplete, then everything
        held and `data`. Raises UnsupportedMedia (415) once the head shows the file is not media."""
        if self.done:
            return data
        self.head += data[: self.need - len(self.head)]
        self.held += data
        if len(self.head) < self.need:
            return b""
        sniffing.check_head(bytes(self.head), LIMITS)
        self.done = True
        released, self.held = bytes(self.held), bytearray()
        return released

    def release(self, *, last: bool) -> bytes:
        """What is still held, at the end of a request's bytes. `last`: the file ends here, so a file
        shorter than the head is checked now (an empty one is left to the full validation)."""
        if last and not self.done and self.head:
            sniffing.check_head(bytes(self.head), LIMITS)
            self.done = True
        released, self.held = bytes(self.held), bytearray()
        return released


class UploadGate:
    """The per-user and per-host limits of uploads (see the module docstring)."""

    def __init__(self, store: Store, db: Database, root: str, limits: UploadLimits) -> None:
        self.store, self.db, self.root, self.limits = store, db, root, limits

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.root).free

    def check_disk(self, adding: int = 0) -> None:
        uploads.check_free_space(self.free_bytes(), adding, self.limits)

    @staticmethod
    def _bytes_key(user_id: uuid.UUID) -> str:
        return f"uploads:bytes:{user_id}:{uploads.day_key()}"

    @staticmethod
    def _leases_key(user_id: uuid.UUID) -> str:
        return f"uploads:active:{user_id}"

    async def used_today(self, user_id: uuid.UUID) -> int:
        raw = await self.store.get(self._bytes_key(user_id))
        return int(raw or 0)

    async def count(self, user_id: uuid.UUID, received: int) -> None:
        if received:
            key = self._bytes_key(user_id)
            total = int(await self.store.get(key) or 0) + received
            await self.store.set(key, str(total), expires_in=COUNTER_TTL)

    async def _leases(self, user_id: uuid.UUID) -> dict[str, float]:
        raw = await self.store.get(self._leases_key(user_id))
        leases = json.loads(raw) if raw else {}
        now = time.time()
        return {lease: until for lease, until in leases.items() if until > now}

    async def _put_leases(self, user_id: uuid.UUID, leases: dict[str, float]) -> None:
        key = self._leases_key(user_id)
        if leases:
            await self.store.set(key, json.dumps(leases), expires_in=LEASE_SECONDS)
        else:
            await self.store.delete(key)

    async def renew(self, user_id: uuid.UUID, lease: str | None) -> None:
        leases = await self._leases(user_id)
        if lease is not None:
            leases[lease] = time.time() + LEASE_SECONDS
        await self._put_leases(user_id, leases)

    async def release(self, user_id: uuid.UUID, lease: str) -> None:
        leases = await self._leases(user_id)
        leases.pop(lease, None)
        await self._put_leases(user_id, leases)

    async def _in_progress(self, user_id: uuid.UUID) -> tuple[int, int]:
        """Uploads the user has in progress, and the bytes their unfinished tus uploads still owe."""
        tus_count, owed = await self.db.read(lambda s: uploads.open_tus_uploads(s, user_id))
        return tus_count + len(await self._leases(user_id)), owed

    async def begin_multipart(self, user_id: uuid.UUID, declared: int | None) -> Meter:
        """Before a multipart body is read: room on disk, a free slot, quota left for `declared`
        (the request's Content-Length, if any). The meter holds the slot until it is closed."""
        self.check_disk(declared or 0)
        in_progress, _ = await self._in_progress(user_id)
        uploads.check_concurrency(in_progress, self.limits)
        used = await self.used_today(user_id)
        uploads.check_daily_quota(used, declared or 0, self.limits)
        lease = uuid.uuid4().hex
        await self.renew(user_id, lease)
        return Meter(self, user_id, used, lease)

    async def begin_tus(self, user_id: uuid.UUID, length: int) -> None:
        """Before a tus upload is created: room on disk, a free slot, and quota left for its whole
        length on top of what the user's unfinished uploads still have to send."""
        self.check_disk()
        in_progress, owed = await self._in_progress(user_id)
        uploads.check_concurrency(in_progress, self.limits)
        used = await self.used_today(user_id)
        uploads.check_daily_quota(used + owed, length, self.limits, field="Upload-Length")

    async def begin_patch(self, user_id: uuid.UUID, declared: int | None) -> Meter:
        """Before a tus chunk is read: room on disk and quota left for it."""
        self.check_disk(declared or 0)
        used = await self.used_today(user_id)
        uploads.check_daily_quota(used, declared or 0, self.limits)
        return Meter(self, user_id, used, None)


class Meter:
    """Counts one request's bytes as they arrive: refuses the byte that passes the daily quota
    (413), and every `METER_STEP` bytes records them, checks the disk (507) and renews the lease."""

    def __init__(self, gate: UploadGate, user_id: uuid.UUID, used: int, lease: str | None) -> None:
        self.gate, self.user_id, self.used, self.lease = gate, user_id, used, lease
        self.received = 0
        self.unrecorded = 0
        self.renewed = time.monotonic()
        self.closed = False

    async def add(self, n: int) -> None:
        self.received += n
        self.unrecorded += n
        uploads.check_daily_quota(self.used, self.received, self.gate.limits)
        if self.unrecorded >= METER_STEP:
            await self.gate.count(self.user_id, self.unrecorded)
            self.unrecorded = 0
            self.gate.check_disk()
            if self.lease is not None and time.monotonic() - self.renewed > RENEW_SECONDS:
                await self.gate.renew(self.user_id, self.lease)
                self.renewed = time.monotonic()

    async def close(self) -> None:
        """Record what is left and free the slot (shielded: runs even when the request is cancelled)."""
        if self.closed:
            return
        self.closed = True
        with anyio.CancelScope(shield=True):
            await self.gate.count(self.user_id, self.unrecorded)
            self.unrecorded = 0
            if self.lease is not None:
                await self.gate.release(self.user_id, self.lease)
