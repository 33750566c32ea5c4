from __future__ import annotations

import hashlib
import re
from urllib.parse import parse_qs, unquote, urlparse

import pyotp
import pytest

from domain.auth.keys import TOTP, WEBHOOK_SECRET, Keyring, SecretDecryptionError, derive
from domain.auth.totp import (
    RECOVERY_ALPHABET,
    hash_recovery_code,
    new_recovery_codes,
    new_totp_secret,
    normalize_recovery_code,
    provisioning_uri,
    verify_totp,
)

NOW = 1_750_000_000.0  # a fixed instant; step = NOW // 30
STEP = int(NOW // 30)


@pytest.fixture
def secret() -> str:
    return new_totp_secret()


def code_at(secret: str, step: int) -> str:
    return pyotp.TOTP(secret).at(step * 30)


def test_secret_is_base32_and_random() -> None:
    a, b = new_totp_secret(), new_totp_secret()
    assert a != b
    assert re.fullmatch(r"[A-Z2-7]{32}", a)


def test_provisioning_uri_names_account_and_issuer(secret: str) -> None:
    uri = provisioning_uri(secret, "layla@example.com")
    parsed = urlparse(uri)
    assert (parsed.scheme, parsed.netloc) == ("otpauth", "totp")
    assert unquote(parsed.path) == "/thmnayah:layla@example.com"
    query = parse_qs(parsed.query)
    assert query["secret"] == [secret]
    assert query["issuer"] == ["thmnayah"]
    assert "issuer=acme" in provisioning_uri(secret, "x", issuer="acme")


def test_current_code_returns_its_step(secret: str) -> None:
    assert verify_totp(secret, code_at(secret, STEP), last_step=None, now=NOW) == STEP


def test_code_generated_by_an_authenticator_app_now(secret: str) -> None:
    # Same algorithm as the apps: pyotp's own "now" code verifies against the real clock.
    step = verify_totp(secret, pyotp.TOTP(secret).now(), last_step=None)
    assert step is not None


def test_window_accepts_neighbouring_steps_only(secret: str) -> None:
    assert verify_totp(secret, code_at(secret, STEP - 1), last_step=None, now=NOW) == STEP - 1
    assert verify_totp(secret, code_at(secret, STEP + 1), last_step=None, now=NOW) == STEP + 1
    assert verify_totp(secret, code_at(secret, STEP - 2), last_step=None, now=NOW) is None
    assert verify_totp(secret, code_at(secret, STEP + 2), last_step=None, now=NOW) is None
    assert verify_totp(secret, code_at(secret, STEP - 1), last_step=None, now=NOW, valid_window=0) is None
    assert verify_totp(secret, code_at(secret, STEP - 2), last_step=None, now=NOW, valid_window=2) == STEP - 2


def test_replay_of_same_or_older_step_is_refused(secret: str) -> None:
    code = code_at(secret, STEP)
    accepted = verify_totp(secret, code, last_step=None, now=NOW)
    assert accepted == STEP
    # The same code again, even a few seconds later and still inside its window: refused.
    assert verify_totp(secret, code, last_step=accepted, now=NOW + 5) is None
    # An older code that is still within the window: refused too.
    assert verify_totp(secret, code_at(secret, STEP - 1), last_step=accepted, now=NOW) is None
    # The next step's code is accepted.
    assert verify_totp(secret, code_at(secret, STEP + 1), last_step=accepted, now=NOW + 30) == STEP + 1


def test_code_format(secret: str) -> None:
    code = code_at(secret, STEP)
    assert verify_totp(secret, f"{code[:3]} {code[3:]}", last_step=None, now=NOW) == STEP
    assert verify_totp(secret, f" {code}\n", last_step=None, now=NOW) == STEP
    # Arabic-Indic and Eastern Arabic-Indic digits, as typed on Arabic and Persian keyboards.
    arabic = code.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    persian = code.translate(str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹"))
    assert verify_totp(secret, arabic, last_step=None, now=NOW) == STEP
    assert verify_totp(secret, persian, last_step=None, now=NOW) == STEP
    superscript = code.translate(str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹"))
    for bad in ("", "12345", "1234567", code + "0", "abcdef", superscript, f"{code[:3]}-{code[3:]}"):
        assert verify_totp(secret, bad, last_step=None, now=NOW) is None, bad


def test_wrong_code_and_wrong_secret(secret: str) -> None:
    code = code_at(secret, STEP)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    assert verify_totp(secret, wrong, last_step=None, now=NOW) is None
    assert verify_totp(new_totp_secret(), code, last_step=None, now=NOW) is None


def test_encrypt_round_trip_and_tamper(secret: str) -> None:
    keys = Keyring("platform-secret-" + "x" * 32)
    token = keys.encrypt(TOTP, secret)
    assert secret not in token
    assert token != keys.encrypt(TOTP, secret)  # random IV per encryption
    assert keys.decrypt(TOTP, token) == secret

    tampered = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]
    with pytest.raises(SecretDecryptionError):
        keys.decrypt(TOTP, tampered)
    with pytest.raises(SecretDecryptionError):
        Keyring("another-platform-secret" + "y" * 32).decrypt(TOTP, token)


def test_derive_key_is_deterministic_and_purpose_bound() -> None:
    assert derive("s" * 40, TOTP) == derive("s" * 40, TOTP)
    assert derive("s" * 40, TOTP).material != derive("s" * 40, WEBHOOK_SECRET).material
    assert derive("s" * 40, TOTP).material != derive("t" * 40, TOTP).material
    # HKDF-SHA256 (RFC 5869, no salt) computed independently with hmac/hashlib, with the info TOTP
    # secrets were encrypted under before the keyring: those stored then still decrypt.
    import hmac

    prk = hmac.new(b"\x00" * 32, b"s" * 40, hashlib.sha256).digest()
    okm = hmac.new(prk, b"thmnayah-totp" + b"\x01", hashlib.sha256).digest()
    assert derive("s" * 40, TOTP).material == okm
    with pytest.raises(ValueError):
        derive("", TOTP)


def test_recovery_codes_shape_and_uniqueness() -> None:
    codes = new_recovery_codes()
    assert len(codes) == 10 == len(set(codes))
    for code in codes:
        assert re.fullmatch(rf"[{RECOVERY_ALPHABET}]{{4}}(-[{RECOVERY_ALPHABET}]{{4}}){{3}}", code), code
        assert not set("ilou") & set(code)
    assert len(new_recovery_codes(3)) == 3
    assert set(new_recovery_codes()) != set(codes)


def test_recovery_code_hash_normalizes() -> None:
    code = "7k2m-qx9d-h04t-wa3e"
    expected = hashlib.sha256(b"7k2mqx9dh04twa3e").hexdigest()
    assert normalize_recovery_code(code) == "7k2mqx9dh04twa3e"
    assert hash_recovery_code(code) == expected
    for typed in ("7K2M-QX9D-H04T-WA3E", "7k2m qx9d h04t wa3e", " 7k2mqx9dh04twa3e ", "7k2m-qx9d-hO4t-wa3e"):
        assert hash_recovery_code(typed) == expected, typed
    assert normalize_recovery_code("iIlL-oO") == "111100"
    assert hash_recovery_code("7k2m-qx9d-h04t-wa3f") != expected
