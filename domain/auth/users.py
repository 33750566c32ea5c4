"""Accounts: creation by an admin, self-registration with email verification, password reset,
profiles, and the one-time links those flows send. Password hashing is the caller's (it runs off
the event loop under a concurrency cap); these functions take hashes."""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from domain.auth import audit, rbac
from domain.auth.events import USER_REGISTERED, USER_VERIFIED
from domain.auth.keys import LINK_TOKEN, Keyring, sha256_hex
from domain.errors import Conflict, InvalidValue, NotFound
from domain.outbox import record_event
from domain.schema import OneTimeToken, User, utcnow

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
LINK_LIFETIME = {"verify_email": timedelta(hours=24), "reset_password": timedelta(hours=1)}


@dataclass
class NewUser:
    username: str
    email: str
    password_hash: str | None
    first_name: str = ""
    last_name: str = ""
    roles: list[str] = field(default_factory=lambda: [rbac.DEFAULT_ROLE])
    is_active: bool = True
    is_verified: bool = True
    preferences: dict[str, Any] = field(default_factory=dict)


def normalize_username(username: str) -> str:
    value = username.strip().lower()
    if not USERNAME.match(value):
        raise InvalidValue(
            "username must be 3-64 characters: letters, digits, dot, dash or underscore", field="username"
        )
    return value


def normalize_email(email: str) -> str:
    value = email.strip().lower()
    if len(value) > 254 or not EMAIL.match(value):
        raise InvalidValue("email is not a valid address", field="email")
    return value


def find_by_login(session: Session, login: str) -> User | None:
    value = login.strip().lower()
    column = User.email if "@" in value else User.username
    return session.scalar(sa.select(User).where(column == value))


def create_user(
    session: Session, new: NewUser, *, created_by: uuid.UUID | None, origin: audit.Origin
) -> User:
    username, email = normalize_username(new.username), normalize_email(new.email)
    taken = session.scalar(sa.select(User.id).where(sa.or_(User.username == username, User.email == email)))
    if taken is not None:
        raise Conflict("an account with this username or email already exists", field="email")
    roles = rbac.roles_by_name(session, new.roles)
    now = utcnow()
    user = User(
        username=username,
        email=email,
        password_hash=new.password_hash,
        first_name=new.first_name.strip()[:100],
        last_name=new.last_name.strip()[:100],
        is_active=new.is_active,
        is_verified=new.is_verified,
        preferences=new.preferences,
        created_at=now,
        updated_at=now,
    )
    session.add(user)
    session.flush()
    for name in roles:
        rbac.grant_role(session, user.id, name, assigned_by=created_by)
    audit.record(
        session,
        audit.USER_CREATED,
        user_id=created_by,
        origin=origin,
        resource="user",
        resource_id=str(user.id),
        metadata={"roles": sorted(roles)},
    )
    return user


def register(session: Session, new: NewUser, *, origin: audit.Origin) -> User | None:
    """Self-registration: an inactive, unverified account with the default role. Returns None when
    the username or email is taken (the caller answers the same either way: no account enumeration)."""
    username, email = normalize_username(new.username), normalize_email(new.email)
    if session.scalar(sa.select(User.id).where(sa.or_(User.username == username, User.email == email))):
        return None
    new.is_active, new.is_verified, new.roles = False, False, [rbac.DEFAULT_ROLE]
    user = create_user(session, new, created_by=None, origin=origin)
    audit.record(
        session,
        audit.USER_REGISTERED,
        user_id=user.id,
        origin=origin,
        resource="user",
        resource_id=str(user.id),
    )
    record_event(
        session,
        USER_REGISTERED,
        "user",
        user.id,
        {"id": str(user.id), "username": user.username, "email": user.email, "verified": False},
    )
    return user


def _link_message(purpose: str, raw: str) -> str:
    return f"{purpose}:{raw}"


def issue_link_token(
    session: Session, user: User, purpose: str, keys: Keyring, now: datetime | None = None
) -> str:
    """A single-use, expiring token for an emailed link: `<random>.<kid>.<hmac>` under the keyring's
    link key (`kid` names the key, so a link outlives a staged secret rotation); only its hash is stored."""
    now = now or utcnow()
    raw = secrets.token_urlsafe(32)
    key = keys.current(LINK_TOKEN)
    token = f"{raw}.{key.kid}.{key.mac(_link_message(purpose, raw))}"
    session.add(
        OneTimeToken(
            token_hash=sha256_hex(token),
            user_id=user.id,
            purpose=purpose,
            created_at=now,
            expires_at=now + LINK_LIFETIME[purpose],
        )
    )
    session.flush()
    return token


def _signed(token: str, purpose: str, keys: Keyring) -> bool:
    parts = token.split(".")
    if len(parts) == 2 and parts[0]:  # made before the keyring; its row expires within a day anyway
        return keys.legacy_link_ok(purpose, *parts)
    if len(parts) != 3 or not parts[0]:
        return False
    raw, kid, signature = parts
    key = keys.find(LINK_TOKEN, kid)
    return key is not None and secrets.compare_digest(
        signature.encode(), key.mac(_link_message(purpose, raw)).encode()
    )


def _usable_link(
    session: Session, token: str, purpose: str, keys: Keyring, now: datetime, *, lock: bool
) -> tuple[OneTimeToken, User]:
    if not _signed(token, purpose, keys):
        raise InvalidValue("the link is invalid", field="token")
    row = session.get(OneTimeToken, sha256_hex(token), with_for_update=lock)
    if row is None or row.purpose != purpose:
        raise InvalidValue("the link is invalid", field="token")
    if row.used_at is not None:
        raise InvalidValue("the link was already used", field="token")
    if row.expires_at <= now:
        raise InvalidValue("the link has expired; ask for a new one", field="token")
    user = session.get(User, row.user_id)
    if user is None:
        raise InvalidValue("the link is invalid", field="token")
    return row, user


def check_link_token(
    session: Session, token: str, purpose: str, keys: Keyring, now: datetime | None = None
) -> User:
    """The user of a usable link token, without spending it (the page a link opens, before the
    person confirms). Raises `InvalidValue` as `consume_link_token` does."""
    return _usable_link(session, token, purpose, keys, now or utcnow(), lock=False)[1]


def consume_link_token(
    session: Session, token: str, purpose: str, keys: Keyring, now: datetime | None = None
) -> User:
    now = now or utcnow()
    row, user = _usable_link(session, token, purpose, keys, now, lock=True)
    row.used_at = now
    return user


def void_link_tokens(session: Session, user_id: uuid.UUID, purpose: str, now: datetime | None = None) -> int:
    """Spend every outstanding link of one purpose of a user (a password change voids the reset links
    already mailed); how many there were."""
    now = now or utcnow()
    return session.execute(
        sa.update(OneTimeToken)
        .where(
            OneTimeToken.user_id == user_id,
            OneTimeToken.purpose == purpose,
            OneTimeToken.used_at.is_(None),
        )
        .values(used_at=now)
    ).rowcount


def verify_email(session: Session, token: str, keys: Keyring, *, origin: audit.Origin) -> User:
    user = consume_link_token(session, token, "verify_email", keys)
    user.is_verified = True
    user.is_active = True
    user.updated_at = utcnow()
    audit.record(
        session,
        audit.EMAIL_VERIFIED,
        user_id=user.id,
        origin=origin,
        resource="user",
        resource_id=str(user.id),
    )
    # The account is live now: the notification rules welcome it (once, in its language).
    record_event(session, USER_VERIFIED, "user", user.id, {"id": str(user.id), "username": user.username})
    return user


def set_password(
    session: Session, user: User, password_hash: str, *, origin: audit.Origin, reason: str
) -> None:
    """Store a new password hash; every reset link still outstanding stops working (one mailed
    before the change must not undo it)."""
    user.password_hash = password_hash
    user.updated_at = utcnow()
    void_link_tokens(session, user.id, "reset_password", user.updated_at)
    audit.record(
        session,
        audit.PASSWORD_CHANGED,
        user_id=user.id,
        origin=origin,
        resource="user",
        resource_id=str(user.id),
        metadata={"reason": reason},
    )


def get_user(session: Session, user_id: uuid.UUID) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} does not exist")
    return user


PROFILE_EDITABLE = ("first_name", "last_name", "preferences")


def update_profile(session: Session, user: User, changes: dict[str, Any]) -> User:
    """Only `first_name`, `last_name`, `preferences`: activation, verification and roles are never
    set through a profile (mass assignment)."""
    forbidden = sorted(set(changes) - set(PROFILE_EDITABLE))
    if forbidden:
        raise InvalidValue(
            f"field {forbidden[0]!r} cannot be changed through the profile", field=forbidden[0]
        )
    for name in ("first_name", "last_name"):
        if name in changes:
            setattr(user, name, str(changes[name]).strip()[:100])
    if "preferences" in changes:
        if not isinstance(changes["preferences"], dict):
            raise InvalidValue("preferences must be an object", field="preferences")
        user.preferences = changes["preferences"]
    user.updated_at = utcnow()
    session.flush()
    return user


def provision_external_user(
    session: Session, identity: Any, *, origin: audit.Origin
) -> tuple[uuid.UUID, str, bool]:
    """The local account of an SSO identity (created on first sight). Its roles come from the
    provider's token on every request, so none are granted here. Returns (id, username, is_active)."""
    external_id = f"{identity.issuer}|{identity.subject}"[:300]
    user = session.scalar(sa.select(User).where(User.external_id == external_id))
    if user is not None:
        return user.id, user.username, user.is_active
    base = (
        re.sub(r"[^a-z0-9._-]", "-", (identity.username or identity.subject).lower())[:56].strip("-._")
        or "sso-user"
    )
    base = base if len(base) >= 3 else f"sso-{base}"
    username, n = base, 1
    while session.scalar(sa.select(User.id).where(User.username == username)):
        n += 1
        username = f"{base}-{n}"
    email = (identity.email or "").strip().lower()
    if not email or session.scalar(sa.select(User.id).where(User.email == email)):
        email = f"{uuid.uuid4().hex}@sso.invalid"
    now = utcnow()
    user = User(
        username=username,
        email=email,
        password_hash=None,
        is_active=True,
        is_verified=True,
        external_id=external_id,
        created_at=now,
        updated_at=now,
        meta={"sso_issuer": identity.issuer},
    )
    session.add(user)
    session.flush()
    audit.record(
        session,
        audit.SSO_LOGIN,
        user_id=user.id,
        origin=origin,
        resource="user",
        resource_id=str(user.id),
        metadata={"issuer": identity.issuer, "first_login": True},
    )
    return user.id, user.username, True
