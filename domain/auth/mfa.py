"""TOTP second factor on an account: setup (pending until the first code confirms it), login
checks that never accept a code twice, and single-use recovery codes."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from domain.auth import audit, totp
from domain.auth.keys import TOTP, Keyring
from domain.errors import Conflict, InvalidValue
from domain.schema import RecoveryCode, User, utcnow


def _totp_secret(user: User, keys: Keyring) -> str:
    """The user's TOTP secret, decrypted; one still encrypted under a previous platform secret is
    re-encrypted under the current one on the way (the caller's transaction stores it)."""
    secret = keys.decrypt(TOTP, user.totp_secret_encrypted)
    if not keys.is_current(TOTP, user.totp_secret_encrypted):
        user.totp_secret_encrypted = keys.encrypt(TOTP, secret)
    return secret


def begin_setup(session: Session, user: User, keys: Keyring) -> tuple[str, str]:
    """A new secret for the user (not active until confirmed); returns (secret, provisioning URI)."""
    if user.mfa_enabled:
        raise Conflict("MFA is already enabled for this account", field="mfa")
    secret = totp.new_totp_secret()
    user.totp_secret_encrypted = keys.encrypt(TOTP, secret)
    user.totp_last_step = None
    user.updated_at = utcnow()
    return secret, totp.provisioning_uri(secret, user.email or user.username)


def confirm_setup(
    session: Session, user: User, code: str, keys: Keyring, *, origin: audit.Origin
) -> list[str]:
    """Turn MFA on once a code from the authenticator checks out; returns fresh recovery codes
    (shown once; only their hashes are kept)."""
    if user.mfa_enabled:
        raise Conflict("MFA is already enabled for this account", field="mfa")
    if not user.totp_secret_encrypted:
        raise InvalidValue("start with POST .../mfa/enable", field="code")
    secret = _totp_secret(user, keys)
    step = totp.verify_totp(secret, code, last_step=user.totp_last_step)
    if step is None:
        raise InvalidValue("the code does not match; check the authenticator's clock", field="code")
    user.totp_last_step = step
    user.mfa_enabled = True
    session.execute(sa.delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = totp.new_recovery_codes()
    session.add_all(RecoveryCode(user_id=user.id, code_hash=totp.hash_recovery_code(c)) for c in codes)
    audit.record(
        session, audit.MFA_ENABLED, user_id=user.id, origin=origin, resource="user", resource_id=str(user.id)
    )
    return codes


def check_second_factor(
    session: Session,
    user: User,
    keys: Keyring,
    *,
    code: str | None = None,
    recovery_code: str | None = None,
    origin: audit.Origin,
) -> bool:
    """True when the TOTP code (newer than any accepted before) or an unused recovery code matches."""
    ok = False
    if code and user.totp_secret_encrypted:
        secret = _totp_secret(user, keys)
        step = totp.verify_totp(secret, code, last_step=user.totp_last_step)
        if step is not None:
            user.totp_last_step = step
            ok = True
    elif recovery_code:
        row = session.scalar(
            sa.select(RecoveryCode)
            .where(
                RecoveryCode.user_id == user.id,
                RecoveryCode.code_hash == totp.hash_recovery_code(recovery_code),
                RecoveryCode.used_at.is_(None),
            )
            .with_for_update()
        )
        if row is not None:
            row.used_at = utcnow()
            ok = True
            audit.record(
                session,
                audit.MFA_RECOVERY_USED,
                user_id=user.id,
                origin=origin,
                resource="user",
                resource_id=str(user.id),
            )
    audit.record(
        session,
        audit.MFA_SUCCEEDED if ok else audit.MFA_FAILED,
        user_id=user.id,
        origin=origin,
        resource="user",
        resource_id=str(user.id),
    )
    return ok
