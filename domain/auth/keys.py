"""The platform secret and the keys derived from it: one key per purpose, each with a key id, so a new
secret can be rolled out while values made under the old one are still honoured.

The secret is given in prod (`THMNAYAH_SECRET_KEY`) and generated once into the data directory when
embedded. Nothing signs or encrypts with it directly: a `Keyring` derives a separate 32-byte key for
each purpose with HKDF-SHA256 (access tokens, MFA challenges, emailed links, signed media URLs, the
dashboard's CSRF token, TOTP secrets, webhook signing secrets), so a value made for one purpose never
passes for another. Each derived key has a key id (`kid`: 8 hex characters of an HMAC under the key;
it reveals nothing of the key) that travels with what the key signs; a verifier picks the key by that
id among the current secret's keys and those of the previous secrets
(`THMNAYAH_SECRET_KEY_PREVIOUS`), and refuses an id it does not know like a bad signature. Values
encrypted at rest are Fernet tokens, decrypted with a MultiFernet of every secret's key (current
first) and always encrypted under the current one; `rotate` re-encrypts a stored value under the
current key (`thmnayah rotate-keys` does it for every stored value).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from domain.settings import Settings

# Signing purposes: values carry the kid of the key that signed them.
ACCESS_TOKEN = "access-token"  # our JWT access tokens (HS256, `kid` in the header)
MFA_CHALLENGE = "mfa-challenge"  # the short-lived JWT between the password and the second factor
LINK_TOKEN = "link-token"  # emailed verification and password-reset links
MEDIA_URL = "media-url"  # signed, expiring media file URLs
DASHBOARD_CSRF = "dashboard-csrf"  # the dashboard sign-in form's CSRF token
# Encryption purposes: Fernet tokens stored in the database.
TOTP = "totp"  # users.totp_secret_encrypted
WEBHOOK_SECRET = "webhook-secret"  # notification_contacts.secret_encrypted (and pending deliveries' copies)

SIGNING = (ACCESS_TOKEN, MFA_CHALLENGE, LINK_TOKEN, MEDIA_URL, DASHBOARD_CSRF)
ENCRYPTION = (TOTP, WEBHOOK_SECRET)
INFO_PREFIX = b"thmnayah key v1 "
# The two encryption purposes had their own HKDF info before the keyring existed; they keep it, so the
# TOTP and webhook secrets stored before it still decrypt (their infos already separate them).
LEGACY_INFO = {TOTP: b"thmnayah-totp", WEBHOOK_SECRET: b"thmnayah notification webhook secret v1"}
KID_LENGTH = 8


class SecretDecryptionError(ValueError):
    """A stored secret cannot be decrypted: tampered with, or encrypted under a secret no longer known."""


def info(purpose: str) -> bytes:
    """The HKDF info of a purpose's key (`INFO_PREFIX` + purpose; the encryption purposes keep theirs)."""
    if purpose not in SIGNING and purpose not in ENCRYPTION:
        raise ValueError(f"unknown key purpose {purpose!r}")
    return LEGACY_INFO.get(purpose, INFO_PREFIX + purpose.encode())


@dataclass(frozen=True)
class Key:
    """One derived key: its purpose, its id, and its 32 bytes (never in a repr)."""

    purpose: str
    kid: str
    material: bytes = field(repr=False)

    def mac(self, message: str, length: int = 32) -> str:
        """HMAC-SHA256 of `message`, hex, cut to `length` characters."""
        return hmac.new(self.material, message.encode(), hashlib.sha256).hexdigest()[:length]


def derive(secret: str, purpose: str) -> Key:
    """The key of `purpose` under one platform secret."""
    if not secret:
        raise ValueError("the platform secret key is empty")
    material = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info(purpose)).derive(
        secret.encode()
    )
    kid = hmac.new(material, b"thmnayah key id", hashlib.sha256).hexdigest()[:KID_LENGTH]
    return Key(purpose, kid, material)


class Keyring:
    """The keys of every purpose under the current secret and the previous ones (one per process).

    `current(purpose)` signs and encrypts; `find(purpose, kid)` verifies among all secrets' keys."""

    def __init__(self, current: str, previous: Iterable[str] = ()) -> None:
        if not current:
            raise ValueError("the platform secret key is empty")
        # The current secret first; a previous one repeated (or equal to the current) counts once.
        ordered = list(dict.fromkeys([current, *(p for p in previous if p)]))
        self._keys = {p: tuple(derive(s, p) for s in ordered) for p in (*SIGNING, *ENCRYPTION)}
        # Built oldest first, so in the (2**-32) case of two ids alike the newer secret's key wins.
        self._by_kid = {p: {k.kid: k for k in reversed(keys)} for p, keys in self._keys.items()}
        self._fernets = {
            p: MultiFernet([Fernet(base64.urlsafe_b64encode(k.material)) for k in self._keys[p]])
            for p in ENCRYPTION
        }
        self._current_fernets = {
            p: Fernet(base64.urlsafe_b64encode(self._keys[p][0].material)) for p in ENCRYPTION
        }
        # Only for emailed links made before the keyring (`<raw>.<sig>` under the raw secret); see
        # `legacy_link_ok`. Remove once every such link has expired (a day after the upgrade).
        self._legacy = tuple(s.encode() for s in ordered)

    def __repr__(self) -> str:
        return f"Keyring(secrets={len(self._legacy)})"

    def current(self, purpose: str) -> Key:
        return self._keys[purpose][0]

    def keys(self, purpose: str) -> tuple[Key, ...]:
        """Every key of `purpose`, the current one first."""
        return self._keys[purpose]

    def find(self, purpose: str, kid: object) -> Key | None:
        """The key of `purpose` with id `kid`, under the current or a previous secret; None if unknown."""
        return self._by_kid[purpose].get(kid) if isinstance(kid, str) else None

    def sign(self, purpose: str, message: str, length: int = 32) -> str:
        """`<kid><mac>`: the current key's id and the HMAC of `message`, `length` hex characters."""
        key = self.current(purpose)
        return key.kid + key.mac(message, length)

    def verify(self, purpose: str, message: str, signed: str, length: int = 32) -> bool:
        """`signed` is `sign(purpose, message, length)` under the current or a previous secret."""
        key = self.find(purpose, signed[:KID_LENGTH])
        return (
            key is not None
            and len(signed) == KID_LENGTH + length
            and hmac.compare_digest(signed[KID_LENGTH:].encode(), key.mac(message, length).encode())
        )

    def encrypt(self, purpose: str, plaintext: str) -> str:
        """A Fernet token of `plaintext` under the current key of an encryption purpose."""
        return self._fernets[purpose].encrypt(plaintext.encode()).decode("ascii")

    def decrypt(self, purpose: str, token: str) -> str:
        """The plaintext of a Fernet token made under the current or a previous secret."""
        try:
            return self._fernets[purpose].decrypt(token.encode("ascii")).decode()
        except (InvalidToken, UnicodeError) as exc:
            raise SecretDecryptionError(
                "the stored secret cannot be decrypted (tampered with, or encrypted under a platform "
                "secret that is neither THMNAYAH_SECRET_KEY nor in THMNAYAH_SECRET_KEY_PREVIOUS)"
            ) from exc

    def is_current(self, purpose: str, token: str) -> bool:
        """Whether a Fernet token was made under the current key (else it needs `rotate`)."""
        try:
            self._current_fernets[purpose].decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeError):
            return False
        return True

    def rotate(self, purpose: str, token: str) -> str:
        """The same plaintext encrypted under the current key (`SecretDecryptionError` if unreadable)."""
        try:
            return self._fernets[purpose].rotate(token.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeError) as exc:
            raise SecretDecryptionError("the stored secret cannot be decrypted, so not re-encrypted") from exc

    def legacy_link_ok(self, purpose: str, raw: str, signature: str) -> bool:
        """An emailed link of the form made before the keyring: `<raw>.<hmac>` under a raw secret."""
        return any(
            hmac.compare_digest(
                signature.encode(),
                hmac.new(s, f"{purpose}:{raw}".encode(), hashlib.sha256).hexdigest()[:32].encode(),
            )
            for s in self._legacy
        )


def platform_secret(settings: Settings) -> str:
    if settings.secret_key:
        return settings.secret_key
    path = settings.data_dir / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def platform_keyring(settings: Settings) -> Keyring:
    """The process's keyring: the platform secret, then `THMNAYAH_SECRET_KEY_PREVIOUS` in its order."""
    return Keyring(platform_secret(settings), settings.previous_secret_keys)


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()
