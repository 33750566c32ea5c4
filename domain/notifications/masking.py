"""Delivery destinations as people other than their owner see them: enough to tell deliveries apart
and spot a typo, not enough to contact anyone. `n***@example.test`, `+9665****12`, a webhook's host
only, a device token's first characters."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_URL = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)
_EMAIL = re.compile(r"[^\s<>\"'@,;:()\[\]]+@([^\s<>\"'@,;:()\[\]]+)")
_HIDDEN = "****"


def mask_email(address: str) -> str:
    local, at, domain = address.rpartition("@")
    if not at or not local:
        return _HIDDEN
    return f"{local[0]}***@{domain}"


def mask_phone(number: str) -> str:
    return f"{number[:5]}{_HIDDEN}{number[-2:]}" if len(number) >= 9 else _HIDDEN


def url_host(url: str) -> str:
    try:
        return urlsplit(url.strip()).hostname or _HIDDEN
    except ValueError:
        return _HIDDEN


def mask_destination(channel: str, destination: str) -> str:
    """One delivery's destination, masked for someone other than the recipient."""
    if not destination:
        return destination
    if channel == "email":
        return mask_email(destination)
    if channel == "sms":
        return mask_phone(destination)
    if channel == "webhook":
        return url_host(destination)
    if channel == "push":
        return f"{destination[:4]}{_HIDDEN}" if len(destination) > 12 else _HIDDEN
    return _HIDDEN


def mask_text(text: str | None, channel: str, destination: str) -> str | None:
    """Free text (a provider's error message) with the destination, and any email address or URL
    in it, masked the same way."""
    if not text:
        return text
    if destination:
        masked = mask_destination(channel, destination)
        text = text.replace(destination, masked)
        if channel == "sms" and destination.startswith("+"):
            text = text.replace(destination[1:], masked)
    text = _URL.sub(lambda m: url_host(m.group(0)), text)
    return _EMAIL.sub(lambda m: mask_email(m.group(0)), text)
