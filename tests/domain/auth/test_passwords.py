from __future__ import annotations

import json
import subprocess
import sys

import bcrypt
import pytest
from argon2 import PasswordHasher, Type, extract_parameters

from domain.auth import passwords
from domain.auth.passwords import (
    check_password_policy,
    common_passwords,
    dummy_verify,
    hash_password,
    verify_password,
)
from domain.errors import InvalidValue


def test_hash_is_argon2id_with_at_least_owasp_parameters():
    stored = hash_password("correct horse battery staple")
    assert stored.startswith("$argon2id$v=19$")
    params = extract_parameters(stored)
    # OWASP's floor for argon2id: m=19 MiB with t=2 (or more memory / more passes), p=1.
    assert params.memory_cost >= 19_456
    assert params.time_cost >= 2
    assert params.memory_cost * params.time_cost >= 19_456 * 2
    assert params.parallelism >= 1
    assert stored != hash_password("correct horse battery staple"), "each hash has its own salt"


def test_verify_right_and_wrong_password():
    stored = hash_password("correct horse battery staple")
    assert verify_password(stored, "correct horse battery staple") == (True, None)
    assert verify_password(stored, "correct horse battery stapler") == (False, None)
    assert verify_password(stored, "") == (False, None)


def test_equivalent_unicode_forms_verify():
    # Arabic presentation forms and full-width Latin normalize (NFKC) to the ordinary letters.
    stored = hash_password("\u0633\u0644\u0627\u0645 ABCdef123")
    assert verify_password(stored, "\ufeb3\ufefc\ufee1 \uff21\uff22\uff23def123")[0]


@pytest.mark.parametrize("prefix", ["$2a$", "$2b$", "$2y$"])
def test_imported_bcrypt_hash_verifies_and_asks_for_rehash(prefix):
    legacy = bcrypt.hashpw(b"imported-secret-1", bcrypt.gensalt(rounds=4)).decode()
    legacy = prefix + legacy[4:]
    ok, new_hash = verify_password(legacy, "imported-secret-1")
    assert ok
    assert new_hash is not None and new_hash.startswith("$argon2id$")
    assert verify_password(new_hash, "imported-secret-1") == (True, None)
    assert verify_password(legacy, "imported-secret-2") == (False, None)


def test_bcrypt_hash_of_long_password_verifies_like_the_legacy_system():
    # bcrypt hashed only the first 72 bytes; the bcrypt package now refuses longer input instead.
    password = "\u0643" * 60  # 120 bytes of UTF-8
    legacy = bcrypt.hashpw(password.encode()[:72], bcrypt.gensalt(rounds=4)).decode()
    ok, new_hash = verify_password(legacy, password)
    assert ok
    assert verify_password(new_hash, password) == (True, None)
    assert verify_password(new_hash, password[:36]) == (False, None), "argon2 uses all of it"


def test_argon2_hash_with_outdated_parameters_is_rehashed():
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("some-old-secret")
    ok, new_hash = verify_password(weak, "some-old-secret")
    assert ok
    assert new_hash is not None
    assert extract_parameters(new_hash).memory_cost == passwords.ARGON2_MEMORY_COST_KIB
    assert verify_password(weak, "some-new-secret") == (False, None)


def test_argon2i_hash_is_rehashed_to_argon2id():
    old = PasswordHasher(
        time_cost=passwords.ARGON2_TIME_COST,
        memory_cost=passwords.ARGON2_MEMORY_COST_KIB,
        parallelism=passwords.ARGON2_PARALLELISM,
        type=Type.I,
    ).hash("argon2i-secret")
    ok, new_hash = verify_password(old, "argon2i-secret")
    assert ok and new_hash is not None and new_hash.startswith("$argon2id$")


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "plaintext-password",
        "$argon2id$v=19$m=19456,t=2,p=1$garbage",
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$",
        "$argon2id$",
        "$2b$12$tooshort",
        "$2b$99$abcdefghijklmnopqrstuuK1Ww5G7R4yZf2f4WdNuF0Xn1ku7l3Pq",
        "$2x$04$abcdefghijklmnopqrstuuK1Ww5G7R4yZf2f4WdNuF0Xn1ku7l3Pq",
        "$1$salt$hash",
        "\x00\x00",
    ],
)
def test_malformed_hash_is_a_mismatch_not_an_error(stored):
    assert verify_password(stored, "any password") == (False, None)


def test_password_with_nul_byte_is_a_mismatch_for_bcrypt():
    legacy = bcrypt.hashpw(b"abcdefgh", bcrypt.gensalt(rounds=4)).decode()
    assert verify_password(legacy, "abc\x00defgh") == (False, None)


def test_dummy_verify_is_false_and_uses_current_parameters():
    assert dummy_verify("correct horse battery staple") is False
    assert dummy_verify("") is False
    dummy = passwords._dummy_hash()
    assert not PasswordHasher(
        time_cost=passwords.ARGON2_TIME_COST,
        memory_cost=passwords.ARGON2_MEMORY_COST_KIB,
        parallelism=passwords.ARGON2_PARALLELISM,
        hash_len=passwords.ARGON2_HASH_LEN,
        salt_len=passwords.ARGON2_SALT_LEN,
    ).check_needs_rehash(dummy), "the dummy must cost what a real stored hash costs"


def test_common_password_list_is_bundled():
    common = common_passwords()
    assert len(common) > 10_000
    assert {"password", "12345678", "iloveyou", "sunshine"} <= common
    assert all(len(entry) >= 8 and entry == entry.lower() for entry in common)


HASHING_PACKAGES = {"argon2", "_argon2_cffi_bindings", "_cffi_backend", "bcrypt"}


def test_runtime_does_not_import_zxcvbn():
    """The policy is the bundled blocklist and a few comparisons: the module needs only the hashing
    libraries, and checking passwords (accepted or refused) imports no strength estimator (zxcvbn or
    any other package), nothing beyond the standard library."""
    code = """if True:
        import json, sys
        loaded = set(sys.modules)
        from domain.auth import passwords
        from domain.errors import InvalidValue
        imported, loaded = set(sys.modules) - loaded, set(sys.modules)
        passwords.check_password_policy("a perfectly fine passphrase", username="u", email="u@example.com")
        for refused in ("password", "short", "u@example.com"):
            try:
                passwords.check_password_policy(refused, username="u", email="u@example.com")
            except InvalidValue:
                continue
            raise SystemExit(f"{refused!r} was accepted")
        print(json.dumps({"import": sorted(imported), "checks": sorted(set(sys.modules) - loaded)}))
    """
    done = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60
    )
    loaded = json.loads(done.stdout)
    outside = {
        step: sorted({name.split(".")[0] for name in names} - sys.stdlib_module_names - {"domain"})
        for step, names in loaded.items()
    }
    assert loaded["checks"], "the blocklist is read from the package data the first time"
    assert set(outside["import"]) <= HASHING_PACKAGES, outside["import"]
    assert outside["checks"] == []


@pytest.mark.parametrize(
    "password",
    [
        "correct horse battery staple",
        "48213907k",  # digits and one letter: no composition rules
        "abcdefgh",  # lowercase only, not in the list
        "\u0643\u0644\u0645\u0629 \u0633\u0631\u0651\u064a\u0629",  # Arabic, 10 code points
        "x" * 128,
        "\U0001f511" * 8,  # 8 emoji = 8 code points (32 bytes)
        "\ufb01\ufb02\ufb01\ufb02",  # 4 ligatures are 8 letters after NFKC
    ],
)
def test_policy_accepts(password):
    check_password_policy(password, username="alice", email="alice@example.com")


@pytest.mark.parametrize(
    ("password", "fragment"),
    [
        ("", "at least 8"),
        ("short12", "at least 8"),
        ("\U0001f511" * 7, "at least 8"),  # 28 bytes but 7 code points
        ("x" * 129, "at most 128"),
        ("password", "too common"),
        ("PassWord", "too common"),
        ("iloveyou", "too common"),
        ("\uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44", "too common"),  # full-width "password"
        ("AliceWonder", "username"),
        ("alice.smith", "username"),
        ("Alice.Smith@Example.com", "username"),
    ],
)
def test_policy_rejects(password, fragment):
    with pytest.raises(InvalidValue) as raised:
        check_password_policy(password, username="alicewonder", email="alice.smith@example.com")
    assert raised.value.field == "password"
    assert fragment in raised.value.detail
