"""The platform secret key: given in prod, generated once into the data directory when embedded."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets

from domain.settings import Settings


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


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def sign(secret: str, purpose: str, value: str) -> str:
    return hmac.new(secret.encode(), f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()[:32]
