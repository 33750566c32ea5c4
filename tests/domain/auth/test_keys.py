"""The keyring: one key per purpose derived from the platform secret, key ids, and a staged rotation
(the previous secrets verify and decrypt, only the current one signs and encrypts)."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from domain.auth import audit, mfa, users
from domain.auth.keys import (
    ACCESS_TOKEN,
    DASHBOARD_CSRF,
    ENCRYPTION,
    KID_LENGTH,
    LINK_TOKEN,
    MEDIA_URL,
    SIGNING,
    TOTP,
    WEBHOOK_SECRET,
    Keyring,
    SecretDecryptionError,
    platform_keyring,
    sha256_hex,
)
from domain.auth.rotation import reencrypt_stored_secrets
from domain.errors import InvalidValue
from domain.media import urls
from domain.notifications import contacts, service
from domain.schema import DeliveryLog, NotificationContact, OneTimeToken, User, utcnow
from domain.settings import Settings
from resources.database import OperationalDatabase as DB

A = "platform-secret-a-" + "a" * 32
B = "platform-secret-b-" + "b" * 32
C = "platform-secret-c-" + "c" * 32
HOOK_SECRET = "whsec-0123456789abcdef"


def test_every_purpose_has_its_own_key_and_key_id() -> None:
    keys = Keyring(A)
    purposes = (*SIGNING, *ENCRYPTION)
    materials = {keys.current(p).material for p in purposes}
    kids = {keys.current(p).kid for p in purposes}
    assert len(materials) == len(kids) == len(purposes)
    assert all(len(k) == KID_LENGTH and int(k, 16) >= 0 for k in kids)
    assert A.encode() not in materials  # the secret itself is never a key
    # Deterministic: every process with the same secret derives the same keys and ids.
    assert [Keyring(A).current(p) for p in purposes] == [keys.current(p) for p in purposes]
    assert "material" not in repr(keys.current(TOTP)) and A not in repr(keys)


def test_a_signature_made_for_one_purpose_is_refused_for_every_other() -> None:
    keys = Keyring(A)
    message = f"variant:{uuid.uuid4()}:2000000000"
    for made, checked in itertools.permutations(SIGNING, 2):
        assert keys.verify(made, message, keys.sign(made, message))
        assert not keys.verify(checked, message, keys.sign(made, message)), (made, checked)
        # Even with the id of the checking purpose's key, another purpose's MAC does not pass.
        forged = keys.current(checked).kid + keys.current(made).mac(message)
        assert not keys.verify(checked, message, forged), (made, checked)


def test_a_link_key_signature_cannot_pass_as_a_media_url() -> None:
    keys = Keyring(A)
    media_id, expires = uuid.uuid4(), 2_000_000_000
    media_sig = urls.files_signature(keys, media_id, expires, private=True)
    assert urls.check_files(keys, media_id, expires, media_sig, now=1_000) is None
    # The link key's MAC over the very message a media URL signs, with either key id.
    message = f"media-files-private:{media_id}:{expires}"
    link_key = keys.current(LINK_TOKEN)
    for kid in (link_key.kid, keys.current(MEDIA_URL).kid):
        as_media = kid + link_key.mac(message, urls.MAC_LENGTH)
        assert "signature" in urls.check_files(keys, media_id, expires, as_media, now=1_000)
    # The other way round (the media key's MAC as a link's signature): the link test below.


def test_encrypted_values_of_one_purpose_do_not_decrypt_as_another() -> None:
    keys = Keyring(A)
    token = keys.encrypt(TOTP, "JBSWY3DPEHPK3PXP")
    assert keys.decrypt(TOTP, token) == "JBSWY3DPEHPK3PXP"
    with pytest.raises(SecretDecryptionError):
        keys.decrypt(WEBHOOK_SECRET, token)


def test_a_staged_rotation_verifies_old_signatures_and_signs_with_the_new_key() -> None:
    old, staged, done = Keyring(A), Keyring(B, [A]), Keyring(B)
    message = "dashboard-login-csrf:nonce"
    signed_old = old.sign(DASHBOARD_CSRF, message)
    assert signed_old[:KID_LENGTH] == old.current(DASHBOARD_CSRF).kid
    assert staged.verify(DASHBOARD_CSRF, message, signed_old)
    signed_new = staged.sign(DASHBOARD_CSRF, message)
    assert signed_new[:KID_LENGTH] == done.current(DASHBOARD_CSRF).kid != old.current(DASHBOARD_CSRF).kid
    assert done.verify(DASHBOARD_CSRF, message, signed_new)
    assert not done.verify(DASHBOARD_CSRF, message, signed_old)  # A is gone: its kid is unknown
    assert staged.find(ACCESS_TOKEN, old.current(ACCESS_TOKEN).kid) == old.current(ACCESS_TOKEN)
    assert done.find(ACCESS_TOKEN, old.current(ACCESS_TOKEN).kid) is None
    for malformed in ("", "short", signed_old[:-1], signed_old + "0", "é" * 40, signed_old.upper()):
        assert not staged.verify(DASHBOARD_CSRF, message, malformed), malformed

    secret_under_a = old.encrypt(TOTP, "JBSWY3DPEHPK3PXP")
    assert staged.decrypt(TOTP, secret_under_a) == "JBSWY3DPEHPK3PXP"
    assert not staged.is_current(TOTP, secret_under_a)
    assert done.decrypt(TOTP, staged.encrypt(TOTP, "new")) == "new"  # new values use B
    rotated = staged.rotate(TOTP, secret_under_a)
    assert staged.is_current(TOTP, rotated) and done.decrypt(TOTP, rotated) == "JBSWY3DPEHPK3PXP"
    with pytest.raises(SecretDecryptionError):
        done.decrypt(TOTP, secret_under_a)


def test_previous_secrets_come_from_their_setting(tmp_path: Path) -> None:
    env = {
        "THMNAYAH_DATA_DIR": str(tmp_path),
        "THMNAYAH_SECRET_KEY": B,
        "THMNAYAH_SECRET_KEY_PREVIOUS": f" {A} , ,{C},{B}",
    }
    settings = Settings.from_env(env)
    assert settings.previous_secret_keys == (A, C, B)
    keys = platform_keyring(settings)
    assert keys.current(LINK_TOKEN) == Keyring(B).current(LINK_TOKEN)
    assert [k.kid for k in keys.keys(LINK_TOKEN)] == [Keyring(s).current(LINK_TOKEN).kid for s in (B, A, C)]
    assert Settings.from_env({"THMNAYAH_DATA_DIR": str(tmp_path)}).previous_secret_keys == ()
    with pytest.raises(ValueError):
        Keyring("")


def test_a_link_token_names_its_key_and_outlives_a_staged_rotation(db: DB) -> None:
    with db.session() as session:
        user = users.create_user(
            session,
            users.NewUser("linked", "linked@example.test", None),
            created_by=None,
            origin=audit.Origin(),
        )
        token = users.issue_link_token(session, user, "reset_password", Keyring(A))
        legacy_raw = "l" * 43
        legacy = f"{legacy_raw}.{_legacy_sign(A, 'reset_password', legacy_raw)}"
        _store_link(session, user, legacy)
        # A row for a token signed with the media key (as if a signature of another purpose had been
        # stored): its signature still has to be the link key's.
        media_key = Keyring(A).current(MEDIA_URL)
        cross = f"{'m' * 43}.{media_key.kid}.{media_key.mac('reset_password:' + 'm' * 43)}"
        _store_link(session, user, cross)
    raw, kid, _ = token.split(".")
    assert kid == Keyring(A).current(LINK_TOKEN).kid
    with db.session() as session:
        assert users.check_link_token(session, token, "reset_password", Keyring(B, [A])).username == "linked"
        # A link mailed before the keyring (`<raw>.<hmac under the raw secret>`) is still honoured.
        assert users.check_link_token(session, legacy, "reset_password", Keyring(A)).username == "linked"
        for refused, keys in ((token, Keyring(B)), (cross, Keyring(A)), (legacy, Keyring(B))):
            with pytest.raises(InvalidValue):
                users.check_link_token(session, refused, "reset_password", keys)
        with pytest.raises(InvalidValue):  # the same token for the other kind of link
            users.check_link_token(session, token, "verify_email", Keyring(A))


def _legacy_sign(secret: str, purpose: str, raw: str) -> str:
    """The link signature before the keyring: HMAC-SHA256 under the raw platform secret."""
    return hmac.new(secret.encode(), f"{purpose}:{raw}".encode(), hashlib.sha256).hexdigest()[:32]


def _store_link(session: Session, user: User, token: str) -> None:
    now = utcnow()
    session.add(
        OneTimeToken(
            token_hash=sha256_hex(token),
            user_id=user.id,
            purpose="reset_password",
            created_at=now,
            expires_at=now + users.LINK_LIFETIME["reset_password"],
        )
    )
    session.flush()


def test_rotate_keys_reencrypts_every_stored_secret_under_the_current_one(db: DB) -> None:
    old = Keyring(A)
    with db.session() as session:
        user = users.create_user(
            session,
            users.NewUser("enrolled", "enrolled@example.test", None),
            created_by=None,
            origin=audit.Origin(),
        )
        totp_secret, _ = mfa.begin_setup(session, user, old)
        contacts.register(
            session,
            user.id,
            contacts.NewContact("webhook", "https://hooks.example.test/in", HOOK_SECRET),
            keys=old,
        )
        stranger = users.create_user(
            session,
            users.NewUser("stranger", "stranger@example.test", None),
            created_by=None,
            origin=audit.Origin(),
        )
        mfa.begin_setup(session, stranger, Keyring(C))  # under a secret the ring will not hold
        user_id, stranger_id = user.id, stranger.id
    with db.session() as session:
        service.send(
            session,
            service.Draft(category="test", channels=("webhook",), subject="Hi", content={"en": "Hi"}),
            [user_id],
        )
    with db.session() as session:
        [queued] = session.scalars(sa.select(DeliveryLog).where(DeliveryLog.channel == "webhook")).all()
        assert old.decrypt(WEBHOOK_SECRET, queued.delivery_metadata["secret_encrypted"]) == HOOK_SECRET
        before = session.scalar(sa.select(User.totp_secret_encrypted).where(User.id == stranger_id))

    staged, done = Keyring(B, [A]), Keyring(B)
    with db.session() as session:
        tallies = reencrypt_stored_secrets(session, staged)
    assert {k: (t.rotated, t.current, t.unreadable) for k, t in tallies.items()} == {
        "users.totp_secret_encrypted": (1, 0, 1),
        "notification_contacts.secret_encrypted": (1, 0, 0),
        "delivery_logs.delivery_metadata.secret_encrypted": (1, 0, 0),
    }
    with db.session() as session:
        user = session.get(User, user_id)
        assert done.decrypt(TOTP, user.totp_secret_encrypted) == totp_secret
        contact = session.scalar(sa.select(NotificationContact).where(NotificationContact.user_id == user_id))
        assert contacts.decrypt(contact.secret_encrypted, done) == HOOK_SECRET
        [queued] = session.scalars(sa.select(DeliveryLog).where(DeliveryLog.channel == "webhook")).all()
        assert contacts.decrypt(queued.delivery_metadata["secret_encrypted"], done) == HOOK_SECRET
        assert queued.delivery_metadata.keys() >= {"secret_encrypted"}
        # What no key of the ring reads is left exactly as it was.
        assert session.get(User, stranger_id).totp_secret_encrypted == before
    with db.session() as session:  # a second run finds nothing left to do
        again = reencrypt_stored_secrets(session, staged)
    assert [(t.rotated, t.current) for t in again.values()] == [(0, 1), (0, 1), (0, 1)]
