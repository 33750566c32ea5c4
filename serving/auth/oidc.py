"""Single sign-on: verify access tokens issued by an OpenID Connect provider (Keycloak, Entra ID, ...).

The provider's public keys come from its JWKS URL. Only asymmetric signatures are accepted
(RS256, ES256): a token signed with HS256 (for instance with the public key as the HMAC secret)
or with `alg: none` is refused before any key is looked up, and the key's own algorithm must
match the token's.

Blocking I/O: `verify` fetches the JWKS with urllib on first use, when the cached set expires
(`jwks_lifespan`), and when a token names a key id not in the cache (key rotation; at most once
per `refresh_cooldown`, so tokens with made-up key ids cannot make us hammer the provider).
Async callers run `verify` in a worker thread (`anyio.to_thread.run_sync`), or call it once at
startup so the keys are cached; between fetches it is pure CPU.

Keys are cached as a whole set with a lifespan, not per key id (`PyJWKClient(cache_keys=False)`):
PyJWT's per-kid cache never expires, so a key the provider withdrew would stay trusted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jwt

from domain.errors import DomainError
from domain.settings import Settings, SettingsError

ALLOWED_ALGORITHMS = ("RS256", "ES256")
REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud", "sub")


class OidcError(DomainError):
    """The identity token is not acceptable; the message says why."""

    status = 401
    title = "Invalid identity token"


class OidcProviderUnavailable(OidcError):
    """The provider's signing keys could not be fetched; the token itself may be fine."""

    status = 503
    title = "Identity provider unavailable"


@dataclass(frozen=True)
class ExternalIdentity:
    subject: str
    issuer: str
    email: str | None
    email_verified: bool
    username: str | None
    roles: list[str]  # our role names, after the role map; provider roles without a mapping dropped
    claims: dict[str, Any] = field(repr=False)


def parse_role_map(text: str) -> dict[str, str]:
    """`"kc-editor=editor, kc-admin=admin"` -> `{"kc-editor": "editor", "kc-admin": "admin"}`."""
    mapping: dict[str, str] = {}
    for pair in text.split(","):
        if not pair.strip():
            continue
        provider, sep, ours = (part.strip() for part in pair.partition("="))
        if not sep or not provider or not ours or "=" in ours:
            raise SettingsError(f"THMNAYAH_OIDC_ROLE_MAP: expected `provider-role=our-role`, got {pair!r}")
        if mapping.get(provider, ours) != ours:
            raise SettingsError(f"THMNAYAH_OIDC_ROLE_MAP: {provider!r} is mapped twice")
        mapping[provider] = ours
    return mapping


def _claim_at(claims: dict[str, Any], dotted: str) -> Any:
    value: Any = claims
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


class OidcVerifier:
    def __init__(
        self,
        jwks_url: str,
        issuer: str,
        audience: str,
        roles_claim: str = "realm_access.roles",
        role_map: dict[str, str] | None = None,
        *,
        leeway: float = 30.0,
        jwks_lifespan: float = 300.0,
        refresh_cooldown: float = 30.0,
        timeout: float = 5.0,
    ) -> None:
        if not issuer or not audience:
            raise SettingsError("OIDC needs both an issuer and an audience to check tokens against")
        self.issuer = issuer
        self.audience = audience
        self.roles_claim = roles_claim
        self.role_map = dict(role_map or {})
        self.leeway = leeway
        try:
            self._jwks = jwt.PyJWKClient(
                jwks_url,
                cache_keys=False,
                cache_jwk_set=True,
                lifespan=jwks_lifespan,
                cooldown_duration=refresh_cooldown,
                timeout=timeout,
            )
        except jwt.PyJWKClientError as exc:
            raise SettingsError(f"THMNAYAH_OIDC_JWKS_URL: {exc}") from exc

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcVerifier | None:
        """None when SSO is off (no JWKS URL)."""
        if not settings.oidc_jwks_url:
            return None
        return cls(
            settings.oidc_jwks_url,
            settings.oidc_issuer,
            settings.oidc_audience,
            roles_claim=settings.oidc_roles_claim,
            role_map=parse_role_map(settings.oidc_role_map),
        )

    def _signing_key(self, token: str) -> jwt.PyJWK:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise OidcError(f"malformed token: {exc}") from exc
        alg = header.get("alg")
        if alg not in ALLOWED_ALGORITHMS:
            raise OidcError(f"token algorithm {alg!r} is not accepted (only {', '.join(ALLOWED_ALGORITHMS)})")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise OidcError("token header names no key id (kid)")
        try:
            return self._jwks.get_signing_key(kid)
        except jwt.PyJWKClientConnectionError as exc:
            raise OidcProviderUnavailable(f"cannot fetch the provider's keys: {exc}") from exc
        except jwt.PyJWKClientError as exc:
            raise OidcError(f"no provider key with id {kid!r}") from exc
        except (jwt.PyJWTError, ValueError) as exc:  # a JWKS that is not JSON or holds bad keys
            raise OidcProviderUnavailable(f"the provider's key set is unusable: {exc}") from exc

    def verify(self, token: str) -> ExternalIdentity:
        """The identity in a valid token; `OidcError` for anything else (blocking: see module doc)."""
        key = self._signing_key(token)
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=list(ALLOWED_ALGORITHMS),
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.ExpiredSignatureError as exc:
            raise OidcError("token has expired") from exc
        except jwt.PyJWTError as exc:
            raise OidcError(f"token rejected: {exc}") from exc

        provider_roles = _claim_at(claims, self.roles_claim)
        if isinstance(provider_roles, str):
            provider_roles = [provider_roles]
        if not isinstance(provider_roles, list):
            provider_roles = []
        roles: list[str] = []
        for role in provider_roles:
            ours = self.role_map.get(role) if isinstance(role, str) else None
            if ours and ours not in roles:
                roles.append(ours)

        email = claims.get("email")
        username = claims.get("preferred_username")
        return ExternalIdentity(
            subject=claims["sub"],
            issuer=claims["iss"],
            email=email if isinstance(email, str) else None,
            email_verified=claims.get("email_verified") is True,
            username=username if isinstance(username, str) else None,
            roles=roles,
            claims=claims,
        )
