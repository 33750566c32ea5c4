"""Who is calling: the principal built from a verified token, cached in the shared store.

The cache (Litestar store: memory embedded, Redis in prod) holds each user's active roles and
permissions for at most `PRINCIPAL_TTL`, and never past the earliest expiry among their role
grants, so an expired role stops working on time; a role change deletes the entry at once. That
expiry travels with the entry and is compared with the cache's `clock` (the wall clock; a test
sets its own) on every read, as is the time at which grants are loaded. Session state is cached
the same way, and a revoked session is written as revoked at once (and announced to its open
WebSockets through `on_revoked`).

In front of the shared store, each process keeps what it read for `LOCAL_TTL` seconds (a dict
lookup instead of a store round trip on every request). Changes made in this process clear it at
once; changes made by another API process reach this one within `LOCAL_TTL`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

import msgspec
from litestar.stores.base import Store
from sqlalchemy.orm import Session

from domain.auth import rbac
from domain.auth import sessions as session_rules
from domain.schema import User, utcnow

PRINCIPAL_TTL = 60
SESSION_TTL = 30
LOCAL_TTL = 2.0
LOCAL_MAX = 50_000


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: uuid.UUID
    username: str
    roles: tuple[str, ...]
    permissions: frozenset[str]
    session_id: uuid.UUID | None = None
    via: str = "password"  # password | sso
    claims: dict = field(default_factory=dict, compare=False)

    def can(self, permission: str) -> bool:
        return permission in self.permissions


class _Cached(msgspec.Struct):
    username: str
    roles: list[str]
    permissions: list[str]
    active: bool
    until: datetime | None = None  # the earliest expiry among the grants: stale from then on


@dataclass(frozen=True, slots=True)
class Grants:
    """What a user may do, prepared once per cache fill (shared by every request of the user)."""

    username: str
    roles: tuple[str, ...]
    permissions: frozenset[str]
    active: bool
    until: datetime | None = None

    @classmethod
    def of(cls, cached: _Cached) -> Grants:
        return cls(
            cached.username, tuple(cached.roles), frozenset(cached.permissions), cached.active, cached.until
        )

    def current(self, now: datetime) -> bool:
        return self.until is None or now < self.until


Loader = Callable[[uuid.UUID, datetime], Awaitable[tuple[_Cached, datetime | None] | None]]


def load_principal_row(
    session: Session, user_id: uuid.UUID, now: datetime | None = None
) -> tuple[_Cached, datetime | None] | None:
    """The user's grants active at `now` (default: the wall clock) and their earliest expiry."""
    user = session.get(User, user_id)
    if user is None:
        return None
    roles, permissions, earliest_expiry = rbac.effective_permissions(session, user_id, now)
    return _Cached(user.username, roles, permissions, user.is_active, earliest_expiry), earliest_expiry


class PrincipalCache:
    def __init__(
        self,
        store: Store,
        clock: Callable[[], datetime] = utcnow,
        on_revoked: Callable[[list[uuid.UUID]], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock  # "now" for role expiry
        # Told about every revocation once it is in the store: the app pushes it to the sessions'
        # open WebSockets (serving.auth.sockets.session_end_publisher).
        self.on_revoked = on_revoked
        self._local: dict[str, tuple[float, object]] = {}

    def _peek(self, key: str) -> object | None:
        hit = self._local.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        return None

    def _keep(self, key: str, value: object, ttl: float) -> None:
        if len(self._local) >= LOCAL_MAX:
            self._local.clear()
        self._local[key] = (time.monotonic() + min(ttl, LOCAL_TTL), value)

    async def get(self, user_id: uuid.UUID, loader: Loader) -> Grants | None:
        """The user's grants, cached; `loader(user_id, now)` reads those active at `now` on a miss.
        A cached entry whose earliest role expiry has come is a miss, whatever its TTL says."""
        key = f"principal:{user_id}"
        now = self.clock()
        local = self._peek(key)
        if isinstance(local, Grants) and local.current(now):
            return local
        raw = await self.store.get(key)
        ttl = await self.store.expires_in(key) if raw is not None else None
        if raw is not None:
            grants = Grants.of(msgspec.json.decode(raw, type=_Cached))
            if grants.current(now):
                self._keep(key, grants, ttl if ttl is not None and ttl > 0 else LOCAL_TTL)
                return grants
        loaded = await loader(user_id, now)
        if loaded is None:
            return None
        cached, earliest_expiry = loaded
        ttl = PRINCIPAL_TTL
        if earliest_expiry is not None:
            ttl = max(1, min(ttl, int((earliest_expiry - now).total_seconds())))
        await self.store.set(key, msgspec.json.encode(cached), expires_in=ttl)
        grants = Grants.of(cached)
        self._keep(key, grants, ttl)
        return grants

    async def invalidate(self, user_id: uuid.UUID) -> None:
        key = f"principal:{user_id}"
        self._local.pop(key, None)
        await self.store.delete(key)

    async def session_active(self, session_id: uuid.UUID, loader) -> bool:
        key = f"session:{session_id}"
        local = self._peek(key)
        if local is not None:
            return local == b"1"
        raw = await self.store.get(key)
        if raw is None:
            raw = b"1" if await loader(session_id) else b"0"
            await self.store.set(key, raw, expires_in=SESSION_TTL)
        self._keep(key, raw, SESSION_TTL)
        return raw == b"1"

    async def mark_revoked(self, session_ids: list[uuid.UUID]) -> None:
        for session_id in session_ids:
            key = f"session:{session_id}"
            self._keep(key, b"0", SESSION_TTL)
            await self.store.set(key, b"0", expires_in=SESSION_TTL * 4)
        if self.on_revoked is not None and session_ids:
            await self.on_revoked(list(session_ids))


def session_is_active(session: Session, session_id: uuid.UUID) -> bool:
    return session_rules.is_active(session, session_id)
