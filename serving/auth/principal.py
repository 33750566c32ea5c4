"""Who is calling: the principal built from a verified token, cached in the shared store.

The cache (Litestar store: memory embedded, Redis in prod) holds each user's active roles and
permissions for at most `PRINCIPAL_TTL`, and never past the earliest expiry among their role
grants, so an expired role stops working on time; a role change deletes the entry at once. Session
state is cached the same way, and a revoked session is written as revoked at once.
"""

from __future__ import annotations

import uuid
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


@dataclass(frozen=True)
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


def load_principal_row(session: Session, user_id: uuid.UUID) -> tuple[_Cached, datetime | None] | None:
    user = session.get(User, user_id)
    if user is None:
        return None
    roles, permissions, earliest_expiry = rbac.effective_permissions(session, user_id)
    return _Cached(user.username, roles, permissions, user.is_active), earliest_expiry


class PrincipalCache:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def get(self, user_id: uuid.UUID, loader) -> _Cached | None:
        key = f"principal:{user_id}"
        raw = await self.store.get(key)
        if raw is not None:
            return msgspec.json.decode(raw, type=_Cached)
        loaded = await loader(user_id)
        if loaded is None:
            return None
        cached, earliest_expiry = loaded
        ttl = PRINCIPAL_TTL
        if earliest_expiry is not None:
            ttl = max(1, min(ttl, int((earliest_expiry - utcnow()).total_seconds())))
        await self.store.set(key, msgspec.json.encode(cached), expires_in=ttl)
        return cached

    async def invalidate(self, user_id: uuid.UUID) -> None:
        await self.store.delete(f"principal:{user_id}")

    async def session_active(self, session_id: uuid.UUID, loader) -> bool:
        key = f"session:{session_id}"
        raw = await self.store.get(key)
        if raw is not None:
            return raw == b"1"
        active = await loader(session_id)
        await self.store.set(key, b"1" if active else b"0", expires_in=SESSION_TTL)
        return active

    async def mark_revoked(self, session_ids: list[uuid.UUID]) -> None:
        for session_id in session_ids:
            await self.store.set(f"session:{session_id}", b"0", expires_in=SESSION_TTL * 4)


def session_is_active(session: Session, session_id: uuid.UUID) -> bool:
    return session_rules.is_active(session, session_id)
