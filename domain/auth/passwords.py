"""Password hashing and the password policy.

Hashing is argon2id (argon2-cffi) with OWASP's Password Storage Cheat Sheet parameters: of the
equivalent argon2id configurations it lists, m=19 MiB, t=2, p=1 is the one we use. It costs about
40 ms and 19 MiB per hash on the API machines, so `password_hash_concurrency` hashes at once stay
cheap in memory while an offline guess costs the same. Raise the constants when machines get
faster: `verify_password` then hands back a new hash for every stored one with older parameters
(`check_needs_rehash`), and the caller saves it on login.

Imported accounts may carry bcrypt hashes (`$2a$`, `$2b$`, `$2y$`); they verify with the `bcrypt`
package and are replaced by an argon2id hash on the first successful login.

Passwords are NFKC-normalized before hashing (NIST SP 800-63B 3.1.1.2), so the same password typed
on keyboards that produce different code points (Arabic presentation forms, full-width Latin)
matches. Bcrypt hashes were made elsewhere from the raw text, so they are verified against it.

The policy follows NIST SP 800-63B and OWASP ASVS 5.0: length limits and a blocklist, no
composition rules.
"""

from __future__ import annotations

import functools
import secrets
import unicodedata
from importlib.resources import files

import bcrypt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from domain.errors import InvalidValue

ARGON2_MEMORY_COST_KIB = 19_456  # 19 MiB
ARGON2_TIME_COST = 2
ARGON2_PARALLELISM = 1
ARGON2_HASH_LEN = 32
ARGON2_SALT_LEN = 16

MIN_LENGTH = 8
MAX_LENGTH = 128

_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
_BCRYPT_MAX_BYTES = 72  # bcrypt only ever used the first 72 bytes; bcrypt>=5 refuses longer input

_hasher = PasswordHasher(
    time_cost=ARGON2_TIME_COST,
    memory_cost=ARGON2_MEMORY_COST_KIB,
    parallelism=ARGON2_PARALLELISM,
    hash_len=ARGON2_HASH_LEN,
    salt_len=ARGON2_SALT_LEN,
)


def _normalize(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


def hash_password(password: str) -> str:
    """An argon2id hash (PHC string format) of the NFKC-normalized password."""
    return _hasher.hash(_normalize(password))


def verify_password(stored_hash: str, password: str) -> tuple[bool, str | None]:
    """Check `password` against `stored_hash`: `(ok, new_hash)`.

    `new_hash` is set only when `ok` and the stored hash is bcrypt or argon2 with parameters other
    than the current ones: the caller stores it. A malformed or unknown hash is a mismatch, never
    an exception.
    """
    if not isinstance(stored_hash, str) or not isinstance(password, str):
        return False, None
    if stored_hash.startswith("$argon2"):
        try:
            _hasher.verify(stored_hash, _normalize(password))
        except (VerifyMismatchError, VerificationError, InvalidHashError, ValueError):
            return False, None
        try:
            outdated = _hasher.check_needs_rehash(stored_hash)
        except (InvalidHashError, ValueError):
            outdated = True
        return True, hash_password(password) if outdated else None
    if stored_hash.startswith(_BCRYPT_PREFIXES):
        try:
            ok = bcrypt.checkpw(password.encode()[:_BCRYPT_MAX_BYTES], stored_hash.encode())
        except ValueError:  # bad salt, bad cost, NUL bytes...
            return False, None
        return (True, hash_password(password)) if ok else (False, None)
    return False, None


@functools.cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(24))


def dummy_verify(password: str) -> bool:
    """Verify `password` against a hash nobody knows, at the cost of a real argon2 verification.

    Run it when the account does not exist (or has no password), so that an unknown login name
    answers as slowly as a wrong password and response times do not reveal which accounts exist.
    Always False in practice.
    """
    try:
        return _hasher.verify(_dummy_hash(), _normalize(password))
    except VerificationError:
        return False


@functools.cache
def common_passwords() -> frozenset[str]:
    """The bundled blocklist (lowercase)."""
    text = files(__package__).joinpath("common_passwords.txt").read_text(encoding="utf-8")
    return frozenset(line for line in text.splitlines() if line and not line.startswith("#"))


def check_password_policy(password: str, *, username: str = "", email: str = "") -> None:
    """Raise `InvalidValue(field="password")` unless `password` is acceptable.

    8 to 128 characters (Unicode code points after NFKC), not a common password, not the
    username, email or email local part (all compared case-insensitively). No composition rules.
    """
    normalized = _normalize(password)
    if len(normalized) < MIN_LENGTH:
        raise InvalidValue(f"Password must be at least {MIN_LENGTH} characters long.", field="password")
    if len(normalized) > MAX_LENGTH:
        raise InvalidValue(f"Password must be at most {MAX_LENGTH} characters long.", field="password")
    folded = normalized.lower()
    if folded in common_passwords():
        raise InvalidValue("This password is too common; choose another one.", field="password")
    local_part = email.rpartition("@")[0]
    personal = {_normalize(value).strip().lower() for value in (username, email, local_part)} - {""}
    if folded.strip() in personal:
        raise InvalidValue("Password must not be your username or email address.", field="password")
