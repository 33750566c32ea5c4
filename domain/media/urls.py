"""Where clients fetch a variant: the CDN for public media when one is configured, otherwise a
signed, expiring URL of the API (players and <img> tags cannot send bearer tokens)."""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid

PUBLIC_TTL_S = 24 * 3600
PRIVATE_TTL_S = 3600


def signature(secret: str, variant_id: uuid.UUID, expires: int) -> str:
    return hmac.new(secret.encode(), f"variant:{variant_id}:{expires}".encode(), hashlib.sha256).hexdigest()[
        :40
    ]


def signed_path(secret: str, variant_id: uuid.UUID, *, private: bool, now: float | None = None) -> str:
    expires = int((now or time.time()) + (PRIVATE_TTL_S if private else PUBLIC_TTL_S))
    return f"/api/v1/media/variants/{variant_id}/file?expires={expires}&sig={signature(secret, variant_id, expires)}"


def check(secret: str, variant_id: uuid.UUID, expires: int, sig: str, now: float | None = None) -> str | None:
    """None when the link is good, else why not."""
    if not hmac.compare_digest(sig, signature(secret, variant_id, expires)):
        return "the link's signature does not match"
    if expires < (now or time.time()):
        return "the link has expired; ask the API for a fresh one"
    return None


def variant_url(cdn_base_url: str, key: str, secret: str, variant_id: uuid.UUID, *, private: bool) -> str:
    if cdn_base_url and not private:
        return f"{cdn_base_url.rstrip('/')}/{key}"
    return signed_path(secret, variant_id, private=private)
