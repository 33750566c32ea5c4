"""SSO token verification against a real JWKS endpoint (a local HTTP server), Keycloak-shaped tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from domain.settings import Settings, SettingsError
from serving.auth.oidc import (
    OidcError,
    OidcProviderUnavailable,
    OidcVerifier,
    parse_role_map,
)

ISSUER = "http://keycloak.test/realms/thmnayah"
AUDIENCE = "thmnayah-api"
ROLE_MAP = {"kc-editor": "editor", "kc-admin": "admin", "kc-viewer": "viewer"}


class JwksServer:
    """Serves `jwks` (or `raw` bytes) at /certs and counts the fetches."""

    def __init__(self) -> None:
        self.jwks: dict[str, Any] = {"keys": []}
        self.raw: bytes | None = None
        self.fetches = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                owner.fetches += 1
                body = owner.raw if owner.raw is not None else json.dumps(owner.jwks).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return None  # keep test output quiet

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = (
            f"http://127.0.0.1:{self.httpd.server_address[1]}/realms/thmnayah/protocol/openid-connect/certs"
        )
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def publish(self, *keys: tuple[str, Any]) -> None:
        jwks = []
        for kid, private_key in keys:
            public = private_key.public_key()
            if isinstance(public, rsa.RSAPublicKey):
                jwk, alg = RSAAlgorithm.to_jwk(public, as_dict=True), "RS256"
            else:
                jwk, alg = ECAlgorithm.to_jwk(public, as_dict=True), "ES256"
            jwks.append(jwk | {"kid": kid, "use": "sig", "alg": alg})
        self.jwks = {"keys": jwks}


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def jwks(rsa_key, ec_key) -> Iterator[JwksServer]:
    server = JwksServer()
    server.publish(("rsa-1", rsa_key), ("ec-1", ec_key))
    server.thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def verifier_for(server: JwksServer, **options: Any) -> OidcVerifier:
    return OidcVerifier(server.url, ISSUER, AUDIENCE, role_map=ROLE_MAP, **options)


def keycloak_claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "exp": now + 300,
        "iat": now,
        "jti": "onrtac:6c1b",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "f3b1d7c2-0e7a-4c3e-9a51-2f8c0a6d9e41",
        "typ": "Bearer",
        "azp": "thmnayah-web",
        "realm_access": {"roles": ["default-roles-thmnayah", "kc-editor", "offline_access"]},
        "resource_access": {"thmnayah-api": {"roles": ["kc-admin"]}},
        "scope": "openid email profile",
        "email_verified": True,
        "name": "ليلى أحمد",
        "preferred_username": "layla",
        "email": "layla@example.test",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def sign(key: Any, kid: str, alg: str = "RS256", **changes: Any) -> str:
    return jwt.encode(keycloak_claims(**changes), key, algorithm=alg, headers={"kid": kid})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_keycloak_token_is_accepted_and_roles_mapped(jwks: JwksServer, rsa_key) -> None:
    identity = verifier_for(jwks).verify(sign(rsa_key, "rsa-1"))
    assert identity.subject == "f3b1d7c2-0e7a-4c3e-9a51-2f8c0a6d9e41"
    assert identity.issuer == ISSUER
    assert identity.email == "layla@example.test" and identity.email_verified
    assert identity.username == "layla"
    # kc-editor maps to editor; default-roles-thmnayah and offline_access have no mapping: dropped.
    assert identity.roles == ["editor"]
    assert identity.claims["azp"] == "thmnayah-web"
    assert identity.claims["name"] == "ليلى أحمد"


def test_roles_keep_provider_order_without_duplicates(jwks: JwksServer, rsa_key) -> None:
    token = sign(rsa_key, "rsa-1", realm_access={"roles": ["kc-admin", "x", "kc-editor", "kc-admin"]})
    assert verifier_for(jwks).verify(token).roles == ["admin", "editor"]
    no_roles = sign(rsa_key, "rsa-1", realm_access=None, email=None, email_verified=None)
    identity = verifier_for(jwks).verify(no_roles)
    assert (identity.roles, identity.email, identity.email_verified) == ([], None, False)


def test_other_roles_claim(jwks: JwksServer, rsa_key) -> None:
    verifier = verifier_for(jwks, roles_claim="resource_access.thmnayah-api.roles")
    assert verifier.verify(sign(rsa_key, "rsa-1")).roles == ["admin"]
    groups = verifier_for(jwks, roles_claim="groups")
    assert groups.verify(sign(rsa_key, "rsa-1", groups="kc-viewer")).roles == ["viewer"]


def test_es256_token_is_accepted(jwks: JwksServer, ec_key) -> None:
    assert verifier_for(jwks).verify(sign(ec_key, "ec-1", alg="ES256")).roles == ["editor"]


def test_tampered_payload_is_rejected(jwks: JwksServer, rsa_key) -> None:
    header, payload, signature = sign(rsa_key, "rsa-1").split(".")
    claims = json.loads(unb64(payload))
    claims["realm_access"]["roles"].append("kc-admin")
    forged = ".".join([header, b64(json.dumps(claims).encode()), signature])
    with pytest.raises(OidcError, match="Signature verification failed"):
        verifier_for(jwks).verify(forged)


def test_token_signed_by_another_key_with_the_same_kid_is_rejected(jwks: JwksServer, other_rsa_key) -> None:
    with pytest.raises(OidcError, match="Signature verification failed"):
        verifier_for(jwks).verify(sign(other_rsa_key, "rsa-1"))


def test_alg_none_is_rejected_without_fetching_keys(jwks: JwksServer) -> None:
    header = b64(json.dumps({"alg": "none", "typ": "JWT", "kid": "rsa-1"}).encode())
    payload = b64(json.dumps(keycloak_claims(realm_access={"roles": ["kc-admin"]})).encode())
    with pytest.raises(OidcError, match="'none' is not accepted"):
        verifier_for(jwks).verify(f"{header}.{payload}.")
    with pytest.raises(OidcError):
        verifier_for(jwks).verify(f"{header}.{payload}")
    assert jwks.fetches == 0


def test_hs256_signed_with_the_public_key_is_rejected(jwks: JwksServer, rsa_key) -> None:
    """Algorithm confusion: the attacker knows the public key and uses its PEM as an HMAC secret."""
    pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}).encode())
    payload = b64(json.dumps(keycloak_claims(realm_access={"roles": ["kc-admin"]})).encode())
    signature = b64(hmac.new(pem, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    with pytest.raises(OidcError, match="'HS256' is not accepted"):
        verifier_for(jwks).verify(f"{header}.{payload}.{signature}")


def test_algorithm_must_match_the_key(jwks: JwksServer, ec_key) -> None:
    # Signed with ES256 but naming the RSA key: the RSA key's algorithm (RS256) decides.
    with pytest.raises(OidcError, match="does not match"):
        verifier_for(jwks).verify(sign(ec_key, "rsa-1", alg="ES256"))


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, "expired"),
        ({"iss": "http://evil.test/realms/thmnayah"}, "issuer"),
        ({"aud": "account"}, "(?i)audience"),
        ({"aud": None}, "aud"),
        ({"sub": None}, "sub"),
        ({"exp": None}, "exp"),
        ({"iat": None}, "iat"),
    ],
    ids=["expired", "wrong-issuer", "wrong-audience", "no-aud", "no-sub", "no-exp", "no-iat"],
)
def test_claims_are_checked(jwks: JwksServer, rsa_key, changes: dict, reason: str) -> None:
    with pytest.raises(OidcError, match=reason) as caught:
        verifier_for(jwks).verify(sign(rsa_key, "rsa-1", **changes))
    assert caught.value.status == 401


def test_clock_skew_within_leeway_is_tolerated(jwks: JwksServer, rsa_key) -> None:
    token = sign(rsa_key, "rsa-1", exp=int(time.time()) - 5)
    assert verifier_for(jwks).verify(token).username == "layla"
    with pytest.raises(OidcError, match="expired"):
        verifier_for(jwks, leeway=0).verify(token)


def test_malformed_tokens(jwks: JwksServer, rsa_key) -> None:
    verifier = verifier_for(jwks)
    for token in ("", "not-a-jwt", "a.b.c", "eyJhbGciOiJSUzI1NiJ9.e30.sig"):
        with pytest.raises(OidcError):
            verifier.verify(token)
    no_kid = jwt.encode(keycloak_claims(), rsa_key, algorithm="RS256")
    with pytest.raises(OidcError, match="kid"):
        verifier.verify(no_kid)


def test_key_rotation_fetches_a_new_kid(jwks: JwksServer, rsa_key, other_rsa_key, ec_key) -> None:
    verifier = verifier_for(jwks, refresh_cooldown=0)
    verifier.verify(sign(rsa_key, "rsa-1"))
    verifier.verify(sign(rsa_key, "rsa-1"))
    assert jwks.fetches == 1  # cached

    jwks.publish(("rsa-2", other_rsa_key), ("rsa-1", rsa_key), ("ec-1", ec_key))
    assert verifier.verify(sign(other_rsa_key, "rsa-2")).roles == ["editor"]
    assert jwks.fetches == 2
    verifier.verify(sign(other_rsa_key, "rsa-2"))
    assert jwks.fetches == 2

    with pytest.raises(OidcError, match="no provider key"):
        verifier.verify(sign(other_rsa_key, "rsa-3"))
    assert jwks.fetches == 3


def test_unknown_kids_do_not_hammer_the_provider(jwks: JwksServer, rsa_key) -> None:
    verifier = verifier_for(jwks)  # default cooldown: at most one forced refresh per 30 s
    verifier.verify(sign(rsa_key, "rsa-1"))
    for n in range(5):
        with pytest.raises(OidcError, match="no provider key"):
            verifier.verify(sign(rsa_key, f"made-up-{n}"))
    assert jwks.fetches == 1


def test_withdrawn_key_stops_being_trusted(jwks: JwksServer, rsa_key, other_rsa_key) -> None:
    verifier = verifier_for(jwks, jwks_lifespan=0.2)
    token = sign(rsa_key, "rsa-1")
    verifier.verify(token)
    jwks.publish(("rsa-2", other_rsa_key))
    time.sleep(0.3)
    with pytest.raises(OidcError, match="no provider key"):
        verifier.verify(token)


def test_provider_unreachable_or_broken(jwks: JwksServer, rsa_key) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    down = OidcVerifier(f"http://127.0.0.1:{closed_port}/certs", ISSUER, AUDIENCE, timeout=2)
    with pytest.raises(OidcProviderUnavailable) as caught:
        down.verify(sign(rsa_key, "rsa-1"))
    assert isinstance(caught.value, OidcError) and caught.value.status == 503

    jwks.raw = b"<html>502 Bad Gateway</html>"
    with pytest.raises(OidcProviderUnavailable):
        verifier_for(jwks).verify(sign(rsa_key, "rsa-1"))


def test_parse_role_map() -> None:
    assert parse_role_map("kc-editor=editor, kc-admin=admin") == {"kc-editor": "editor", "kc-admin": "admin"}
    assert parse_role_map(" /staff/editors = editor ,, ") == {"/staff/editors": "editor"}
    assert parse_role_map("") == {}
    for bad in ("kc-editor", "=editor", "kc-editor=", "a=b=c", "a=editor, a=admin"):
        with pytest.raises(SettingsError):
            parse_role_map(bad)
    assert parse_role_map("a=editor, a=editor") == {"a": "editor"}


def test_from_settings(jwks: JwksServer, rsa_key) -> None:
    assert OidcVerifier.from_settings(Settings()) is None
    settings = Settings(
        oidc_jwks_url=jwks.url,
        oidc_issuer=ISSUER,
        oidc_audience=AUDIENCE,
        oidc_roles_claim="resource_access.thmnayah-api.roles",
        oidc_role_map="kc-admin=admin",
    )
    verifier = OidcVerifier.from_settings(settings)
    assert verifier is not None
    assert verifier.verify(sign(rsa_key, "rsa-1")).roles == ["admin"]
    with pytest.raises(SettingsError):
        OidcVerifier.from_settings(Settings(oidc_jwks_url=jwks.url, oidc_issuer=ISSUER))
    with pytest.raises(SettingsError):
        OidcVerifier.from_settings(
            Settings(oidc_jwks_url="file:///etc/passwd", oidc_issuer=ISSUER, oidc_audience=AUDIENCE)
        )
