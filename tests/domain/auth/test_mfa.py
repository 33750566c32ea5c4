"""The TOTP second factor on an account (`domain.auth.mfa`): setup pending until a code confirms it,
codes accepted once, single-use recovery codes, the audit trail, and secrets kept under the current
platform key."""

from __future__ import annotations

import time
import uuid

import pyotp
import pytest
import sqlalchemy as sa

from domain.auth import audit, mfa, totp, users
from domain.auth.keys import TOTP, Keyring
from domain.errors import Conflict, InvalidValue
from domain.schema import RecoveryCode, User, UserActivity
from resources.database import OperationalDatabase as DB

A = "platform-secret-a-" + "a" * 32
B = "platform-secret-b-" + "b" * 32
ORIGIN = audit.Origin(ip="203.0.113.9", user_agent="pytest")


def _user(db: DB) -> uuid.UUID:
    with db.session() as session:
        user = users.create_user(
            session,
            users.NewUser(f"mfa-{uuid.uuid4().hex[:8]}", f"{uuid.uuid4().hex[:8]}@example.test", None),
            created_by=None,
            origin=ORIGIN,
        )
        return user.id


def _actions(db: DB, user_id: uuid.UUID) -> list[str]:
    with db.session() as session:
        return list(
            session.scalars(
                sa.select(UserActivity.action)
                .where(UserActivity.user_id == user_id, UserActivity.action.like("mfa.%"))
                .order_by(UserActivity.timestamp, UserActivity.id)
            )
        )


def _wrong_code(secret: str) -> str:
    """Six digits that are no code of `secret` near now (the window a check accepts, and a step more)."""
    generator, now = pyotp.TOTP(secret), time.time()
    near = {generator.at(now + k * totp.TOTP_INTERVAL) for k in range(-2, 3)}
    return next(
        code for code in ("000000", "111111", "222222", "333333", "444444", "555555") if code not in near
    )


def _enrolled(db: DB, keys: Keyring) -> tuple[uuid.UUID, str, list[str]]:
    """A user with MFA on: (id, TOTP secret, recovery codes)."""
    user_id = _user(db)
    with db.session() as session:
        secret, _ = mfa.begin_setup(session, session.get(User, user_id), keys)
    with db.session() as session:
        user = session.get(User, user_id)
        codes = mfa.confirm_setup(session, user, pyotp.TOTP(secret).now(), keys, origin=ORIGIN)
    return user_id, secret, codes


def test_setup_stores_the_secret_encrypted_and_stays_off_until_a_code_confirms_it(db: DB) -> None:
    keys = Keyring(A)
    user_id = _user(db)
    with db.session() as session:
        user = session.get(User, user_id)
        secret, uri = mfa.begin_setup(session, user, keys)
    assert uri.startswith("otpauth://totp/") and f"secret={secret}" in uri and "issuer=thmnayah" in uri
    with db.session() as session:
        user = session.get(User, user_id)
        assert not user.mfa_enabled
        assert secret not in user.totp_secret_encrypted
        assert keys.decrypt(TOTP, user.totp_secret_encrypted) == secret
        with pytest.raises(InvalidValue) as refused:
            mfa.confirm_setup(session, user, _wrong_code(secret), keys, origin=ORIGIN)
        assert refused.value.field == "code"
        assert not user.mfa_enabled
    assert _actions(db, user_id) == []


def test_confirming_turns_mfa_on_with_ten_recovery_codes_kept_only_as_hashes(db: DB) -> None:
    user_id, _, codes = _enrolled(db, Keyring(A))
    assert len(codes) == len(set(codes)) == 10
    with db.session() as session:
        user = session.get(User, user_id)
        assert user.mfa_enabled and user.totp_last_step is not None
        stored = set(
            session.scalars(sa.select(RecoveryCode.code_hash).where(RecoveryCode.user_id == user_id))
        )
        assert stored == {totp.hash_recovery_code(code) for code in codes}
        assert not stored & set(codes)
        with pytest.raises(Conflict):  # a second setup while MFA is on
            mfa.begin_setup(session, user, Keyring(A))
    assert _actions(db, user_id) == [audit.MFA_ENABLED]


def test_confirming_without_a_started_setup_names_the_code_field(db: DB) -> None:
    user_id = _user(db)
    with db.session() as session, pytest.raises(InvalidValue) as refused:
        mfa.confirm_setup(session, session.get(User, user_id), "123456", Keyring(A), origin=ORIGIN)
    assert refused.value.field == "code"


def test_a_code_is_accepted_once_and_a_later_code_still_works(db: DB) -> None:
    keys = Keyring(A)
    user_id, secret, _ = _enrolled(db, keys)
    generator = pyotp.TOTP(secret)
    # The code that confirmed the setup is spent already; the next step's code is not.
    with db.session() as session:
        user = session.get(User, user_id)
        assert not mfa.check_second_factor(session, user, keys, code=generator.now(), origin=ORIGIN)
        later = generator.at(time.time() + totp.TOTP_INTERVAL)
        assert mfa.check_second_factor(session, user, keys, code=later, origin=ORIGIN)
    with db.session() as session:  # the same code replayed
        user = session.get(User, user_id)
        assert not mfa.check_second_factor(session, user, keys, code=later, origin=ORIGIN)
    assert _actions(db, user_id) == [
        audit.MFA_ENABLED,
        audit.MFA_FAILED,
        audit.MFA_SUCCEEDED,
        audit.MFA_FAILED,
    ]


def test_a_recovery_code_works_once_in_any_spelling(db: DB) -> None:
    keys = Keyring(A)
    user_id, _, codes = _enrolled(db, keys)
    spelled = codes[0].upper().replace("-", " ")
    with db.session() as session:
        user = session.get(User, user_id)
        assert mfa.check_second_factor(session, user, keys, recovery_code=spelled, origin=ORIGIN)
    with db.session() as session:
        user = session.get(User, user_id)
        assert not mfa.check_second_factor(session, user, keys, recovery_code=codes[0], origin=ORIGIN)
        assert not mfa.check_second_factor(session, user, keys, recovery_code="not-a-code", origin=ORIGIN)
        used = session.scalars(
            sa.select(RecoveryCode).where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_not(None))
        ).all()
        assert [row.code_hash for row in used] == [totp.hash_recovery_code(codes[0])]
    assert _actions(db, user_id) == [
        audit.MFA_ENABLED,
        audit.MFA_RECOVERY_USED,
        audit.MFA_SUCCEEDED,
        audit.MFA_FAILED,
        audit.MFA_FAILED,
    ]


def test_a_secret_under_the_previous_platform_key_is_reencrypted_when_used(db: DB) -> None:
    user_id, secret, _ = _enrolled(db, Keyring(A))
    staged = Keyring(B, [A])
    with db.session() as session:
        user = session.get(User, user_id)
        assert not staged.is_current(TOTP, user.totp_secret_encrypted)
        code = pyotp.TOTP(secret).at(time.time() + totp.TOTP_INTERVAL)
        assert mfa.check_second_factor(session, user, staged, code=code, origin=ORIGIN)
    with db.session() as session:
        stored = session.get(User, user_id).totp_secret_encrypted
    assert staged.is_current(TOTP, stored) and Keyring(B).decrypt(TOTP, stored) == secret
