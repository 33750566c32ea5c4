"""Second factor: TOTP (RFC 6238) codes and recovery codes, as pure functions (no I/O, no keys).

* A code is accepted at most once: `verify_totp` returns the time step it matched, the caller
  stores it, and passes it back as `last_step` next time; a step at or before it is refused, so a
  code seen over a shoulder or replayed from a log cannot be used again, even within its window.
* TOTP secrets are stored encrypted (by `domain.auth.mfa`, through `domain.auth.keys.Keyring`) with
  Fernet (AES-128-CBC + HMAC-SHA256) under the keyring's `keys.TOTP` key, derived from the platform
  secret with HKDF-SHA256, so a copy of the database alone does not reveal them. While a rotation is
  staged they still decrypt under a previous secret (`THMNAYAH_SECRET_KEY_PREVIOUS`);
  `thmnayah rotate-keys` re-encrypts them under the current one.
* Recovery codes carry 80 random bits each, so they are stored as a plain SHA-256 of the
  normalized code: with that much entropy a slow password hash adds nothing (there is no
  dictionary to walk), and a fast hash lets the code be looked up by equality.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
import unicodedata

import pyotp

TOTP_INTERVAL = 30
TOTP_DIGITS = 6
_CODE = re.compile(rf"[0-9]{{{TOTP_DIGITS}}}")
_SPACES = re.compile(r"\s+")

# Crockford-style base32, lowercase: no i, l, o, u, so a code read aloud or copied by hand is
# unambiguous; normalization maps the look-alikes back (o -> 0, i/l -> 1).
RECOVERY_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
RECOVERY_GROUPS = 4
RECOVERY_GROUP_LENGTH = 4  # 4 groups x 4 chars x 5 bits = 80 bits per code
_LOOKALIKES = str.maketrans({"o": "0", "i": "1", "l": "1"})
_RECOVERY_SEPARATORS = re.compile(r"[\s\-]+")


def _ascii_digits(text: str) -> str:
    return "".join(str(unicodedata.decimal(ch)) if ch.isdecimal() else ch for ch in text)


def new_totp_secret() -> str:
    """A fresh random base32 secret (160 bits), as authenticator apps expect."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, account_name: str, issuer: str = "thmnayah") -> str:
    """The `otpauth://totp/...` URI an authenticator app scans (as a QR code) to enrol."""
    return pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_INTERVAL).provisioning_uri(
        name=account_name, issuer_name=issuer
    )


def verify_totp(
    secret: str,
    code: str,
    *,
    last_step: int | None,
    now: float | None = None,
    valid_window: int = 1,
) -> int | None:
    """The time step `code` is valid for, or None.

    A step counts if it lies within `valid_window` steps of now (clock drift) and is strictly after
    `last_step`, the step of the last code this user had accepted (None: none yet). Spaces in the
    code are ignored ("123 456") and Arabic-Indic digits ("١٢٣٤٥٦", typed on an Arabic keyboard)
    read as their ASCII digits; anything but exactly six decimal digits is refused.
    """
    code = _ascii_digits(_SPACES.sub("", code or ""))
    if not _CODE.fullmatch(code):
        return None
    totp = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_INTERVAL)
    current = int((time.time() if now is None else now) // TOTP_INTERVAL)
    for step in range(current - valid_window, current + valid_window + 1):
        if step < 0 or (last_step is not None and step <= last_step):
            continue
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def new_recovery_codes(n: int = 10) -> list[str]:
    """`n` distinct one-time codes like `7k2m-qx9d-h04t-wa3e` (80 random bits each)."""
    codes: set[str] = set()
    while len(codes) < n:
        groups = (
            "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_GROUP_LENGTH))
            for _ in range(RECOVERY_GROUPS)
        )
        codes.add("-".join(groups))
    return sorted(codes)


def normalize_recovery_code(code: str) -> str:
    """Lowercase, without dashes or spaces, look-alike letters mapped to their digits."""
    return _RECOVERY_SEPARATORS.sub("", code).lower().translate(_LOOKALIKES)


def hash_recovery_code(code: str) -> str:
    """SHA-256 hex of the normalized code (a fast hash suffices: the code has 80 random bits)."""
    return hashlib.sha256(normalize_recovery_code(code).encode()).hexdigest()
