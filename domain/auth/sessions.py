"""Login sessions and their refresh tokens.

A session is one login on one device (24 h for web clients, 7 days for mobile ones, bound to the
device id the client sent at login). Refresh tokens are opaque random strings stored only as
SHA-256 hashes and rotated on every use. The token a refresh replaced stays acceptable for a short
grace window (two tabs refreshing at once): the late request gets a new access token and no new
refresh token. Any other use of a rotated token is reuse: the whole session (the token family) is
revoked.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from domain.auth import audit
from domain.auth.keys import sha256_hex
from domain.errors import DomainError
from domain.schema import UsedRefreshToken, User, UserSession, utcnow

SESSION_LIFETIME = {"web": timedelta(hours=24), "mobile": timedelta(days=7)}
REFRESH_GRACE = timedelta(seconds=10)


class InvalidToken(DomainError):
    status = 401
    title = "Unauthorized"


@dataclass(frozen=True)
class Refreshed:
    session: UserSession
    user: User
    refresh_token: str | None  # None inside the grace window: keep the token the other request got


@dataclass(frozen=True)
class Rejected:
    """A refused refresh whose side effects (revoking a reused family, the audit record) must be
    committed before the caller answers 401."""

    reason: str
    revoked_session: uuid.UUID | None = None


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def open_session(
    session: Session,
    user: User,
    *,
    client_type: str,
    device_id: str,
    origin: audit.Origin,
    now: datetime | None = None,
) -> tuple[UserSession, str]:
    if client_type not in SESSION_LIFETIME:
        raise DomainError("client_type must be web or mobile", field="client_type")
    now = now or utcnow()
    token = new_refresh_token()
    row = UserSession(
        user_id=user.id,
        client_type=client_type,
        device_id=device_id[:128],
        refresh_token=sha256_hex(token),
        ip_address=origin.ip[:64],
        user_agent=origin.user_agent[:500],
        created_at=now,
        last_used_at=now,
        expires_at=now + SESSION_LIFETIME[client_type],
        is_active=True,
    )
    session.add(row)
    user.last_login = now
    session.flush()
    return row, token


def note_access_token(row: UserSession, jti: str) -> None:
    row.access_token = sha256_hex(jti)


def revoke(session: Session, row: UserSession, reason: str) -> None:
    row.is_active = False
    row.revoked_reason = reason
    row.refresh_token = None
    row.previous_refresh_token = None


def revoke_all(
    session: Session, user_id: uuid.UUID, reason: str, *, except_id: uuid.UUID | None = None
) -> list[uuid.UUID]:
    rows = session.scalars(
        sa.select(UserSession).where(UserSession.user_id == user_id, UserSession.is_active.is_(True))
    ).all()
    revoked = []
    for row in rows:
        if row.session_id != except_id:
            revoke(session, row, reason)
            revoked.append(row.session_id)
    session.flush()
    return revoked


def refresh(
    session: Session,
    token: str,
    *,
    device_id: str,
    origin: audit.Origin,
    now: datetime | None = None,
) -> Refreshed | Rejected:
    now = now or utcnow()
    digest = sha256_hex(token)
    row = session.scalar(sa.select(UserSession).where(UserSession.refresh_token == digest).with_for_update())
    if row is None:
        late = session.scalar(sa.select(UserSession).where(UserSession.previous_refresh_token == digest))
        if late is not None and late.is_active and late.rotated_at and now - late.rotated_at <= REFRESH_GRACE:
            refused = _check_usable(session, late, device_id, origin, now)
            if refused:
                return refused
            late.last_used_at = now
            return Refreshed(late, session.get(User, late.user_id), None)
        used = session.get(UsedRefreshToken, digest)
        if used is not None:
            family = session.get(UserSession, used.session_id)
            if family is not None and family.is_active:
                revoke(session, family, "refresh_token_reuse")
            audit.record(
                session,
                audit.TOKEN_REUSE_DETECTED,
                user_id=family.user_id if family else None,
                origin=origin,
                resource="session",
                resource_id=str(used.session_id),
            )
            return Rejected(
                "this refresh token was already used; the session has been revoked, log in again",
                revoked_session=used.session_id,
            )
        raise InvalidToken("unknown or expired refresh token")
    refused = _check_usable(session, row, device_id, origin, now)
    if refused:
        return refused
    new_token = new_refresh_token()
    session.add(UsedRefreshToken(token_hash=digest, session_id=row.session_id, used_at=now))
    row.previous_refresh_token = digest
    row.refresh_token = sha256_hex(new_token)
    row.rotated_at = now
    row.last_used_at = now
    session.flush()
    return Refreshed(row, session.get(User, row.user_id), new_token)


def _check_usable(
    session: Session, row: UserSession, device_id: str, origin: audit.Origin, now: datetime
) -> None:
    if not row.is_active or row.expires_at <= now:
        raise InvalidToken("the session has ended; log in again")
    if row.device_id and device_id != row.device_id:
        audit.record(
            session,
            audit.TOKEN_REJECTED,
            user_id=row.user_id,
            origin=origin,
            resource="session",
            resource_id=str(row.session_id),
            metadata={"reason": "device mismatch"},
        )
        return Rejected("this refresh token belongs to another device")
    user = session.get(User, row.user_id)
    if user is None or not user.is_active:
        raise InvalidToken("the account is disabled")
    return None


def list_active(session: Session, user_id: uuid.UUID, now: datetime | None = None) -> list[UserSession]:
    now = now or utcnow()
    return list(
        session.scalars(
            sa.select(UserSession)
            .where(
                UserSession.user_id == user_id, UserSession.is_active.is_(True), UserSession.expires_at > now
            )
            .order_by(UserSession.created_at.desc())
        )
    )


def is_active(session: Session, session_id: uuid.UUID, now: datetime | None = None) -> bool:
    now = now or utcnow()
    row = session.get(UserSession, session_id)
    return bool(row and row.is_active and row.expires_at > now)


def purge_expired(
    session: Session, now: datetime | None = None, *, keep: timedelta = timedelta(days=30)
) -> dict[str, int]:
    """Delete sessions (and their spent refresh tokens) that ended more than `keep` ago, and emailed
    link tokens past their expiry by a day; returns how many rows of each went."""
    from domain.schema import OneTimeToken

    now = now or utcnow()
    cutoff = now - keep
    ended = sa.select(UserSession.session_id).where(
        sa.or_(
            UserSession.expires_at < cutoff,
            sa.and_(UserSession.is_active.is_(False), UserSession.last_used_at < cutoff),
        )
    )
    spent = session.execute(
        sa.delete(UsedRefreshToken).where(UsedRefreshToken.session_id.in_(ended))
    ).rowcount
    sessions_gone = session.execute(
        sa.delete(UserSession).where(
            sa.or_(
                UserSession.expires_at < cutoff,
                sa.and_(UserSession.is_active.is_(False), UserSession.last_used_at < cutoff),
            )
        )
    ).rowcount
    links = session.execute(
        sa.delete(OneTimeToken).where(OneTimeToken.expires_at < now - timedelta(days=1))
    ).rowcount
    return {"sessions": sessions_gone, "refresh_tokens": spent, "link_tokens": links}
