"""Signing of outgoing webhooks, and the check a receiver runs on each request (no I/O here).

Every webhook delivery is a `POST` of a JSON body with three headers:

- `X-Thmnayah-Timestamp`: when the request was signed, in Unix seconds (UTC).
- `X-Thmnayah-Signature`: `v1=` followed by the lowercase hex HMAC-SHA256 of
  `"<timestamp>." + <raw body bytes>`, keyed with the webhook's secret (UTF-8).
- `X-Thmnayah-Delivery`: the delivery id. A delivery that is retried (the receiver answered 5xx,
  or timed out) keeps its delivery id but gets a fresh timestamp and signature.

For receivers: take the raw body bytes exactly as received (before any JSON parsing), then either
call `verify` (Python) or do the same steps in any language:

1. Refuse the request when a header is missing.
2. Compute the HMAC above and compare it with the signature header in constant time
   (`hmac.compare_digest`); the header may list several signatures separated by commas (while a
   secret is being rotated), and one match is enough.
3. Refuse a timestamp more than `tolerance` seconds (default five minutes) away from your clock:
   this stops the replay of an old captured request.
4. Remember the delivery ids you have accepted for at least `tolerance` seconds, and drop a
   delivery id you have already seen: this stops a replay inside the window, and makes a retried
   delivery you already processed harmless. Answer such a duplicate with a 2xx (it was handled
   already): any 4xx answer is taken as a permanent refusal of the delivery.

`verify` raises `WebhookReplayError` (a `WebhookSignatureError`) for a duplicate delivery id, so a
receiver can tell "already handled" (answer 2xx) from "not signed by us" (answer 401).

Where a webhook may go (`is_public_address`, `non_public`): users choose webhook URLs, so unless
`THMNAYAH_WEBHOOK_ALLOW_PRIVATE_NETWORKS` is set, a destination must be on the public internet: not
loopback, private, link-local (cloud metadata at 169.254.169.254), shared (CGNAT), reserved,
multicast or unspecified, also not when such an IPv4 address hides inside an IPv6 one (IPv4-mapped,
6to4, Teredo, NAT64). A literal address is refused when the contact is registered; a host name is
resolved at registration (refused when it resolves to such an address) and again before each
delivery, which then connects to exactly the address it checked (`resources.webhook_http`).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable, Mapping

TIMESTAMP_HEADER = "X-Thmnayah-Timestamp"
SIGNATURE_HEADER = "X-Thmnayah-Signature"
DELIVERY_HEADER = "X-Thmnayah-Delivery"
SCHEME = "v1"
DEFAULT_TOLERANCE = 300
ALLOW_PRIVATE_SETTING = "THMNAYAH_WEBHOOK_ALLOW_PRIVATE_NETWORKS"
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # well-known NAT64 prefix: the IPv4 address is the last 32 bits
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # local-use NAT64: inside some network


class WebhookSignatureError(Exception):
    """The request was not signed by us, is too old, or was seen already. `reason` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class WebhookReplayError(WebhookSignatureError):
    """A correctly signed request whose delivery id was seen already (a replay, or a retry of a
    delivery the receiver already processed)."""


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """`v1=<hex HMAC-SHA256(secret, f"{timestamp}." + body)>`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"{SCHEME}={digest}"


def signature_headers(secret: str, body: bytes, *, delivery_id: str, now: int) -> dict[str, str]:
    """The three headers that go with `body`, signed at `now` (Unix seconds)."""
    return {
        TIMESTAMP_HEADER: str(now),
        SIGNATURE_HEADER: sign(secret, now, body),
        DELIVERY_HEADER: str(delivery_id),
    }


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:  # frameworks differ in header-name case; HTTP names are case-insensitive
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value.strip() if isinstance(value, str) else None


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: int,
    tolerance: int = DEFAULT_TOLERANCE,
    seen: set[str] | None = None,
) -> None:
    """Check a received webhook request (see the module docstring); returns quietly when it is good.

    Raises `WebhookSignatureError` for a missing header, a signature that does not match, or a
    timestamp outside `tolerance` seconds of `now`; `WebhookReplayError` when the delivery id is in
    `seen`. A good request's delivery id is added to `seen`.
    """
    timestamp_text = _header(headers, TIMESTAMP_HEADER) or ""
    signature = _header(headers, SIGNATURE_HEADER) or ""
    delivery_id = _header(headers, DELIVERY_HEADER) or ""
    given = {TIMESTAMP_HEADER: timestamp_text, SIGNATURE_HEADER: signature, DELIVERY_HEADER: delivery_id}
    missing = [name for name, value in given.items() if not value]
    if missing:
        raise WebhookSignatureError(f"missing header {', '.join(missing)}")
    try:
        timestamp = int(timestamp_text)
    except ValueError:
        raise WebhookSignatureError(f"malformed {TIMESTAMP_HEADER}") from None
    expected = sign(secret, timestamp, body).encode()
    candidates = [part.strip().encode() for part in signature.split(",")]
    # Compare with every candidate (no early exit) so timing does not tell which one matched.
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise WebhookSignatureError("signature does not match")
    if abs(now - timestamp) > tolerance:
        raise WebhookSignatureError(
            f"timestamp is {abs(now - timestamp)} s away from now (tolerance {tolerance} s)"
        )
    if seen is not None:
        if delivery_id in seen:
            raise WebhookReplayError(f"delivery {delivery_id} was already received")
        seen.add(delivery_id)


# --- where a webhook may go ------------------------------------------------------------------------


def parse_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An IP address written as one (`[::1]`'s brackets and an IPv6 zone allowed); None for a name."""
    try:
        return ipaddress.ip_address(text.strip("[]").split("%")[0])
    except ValueError:
        return None


def is_public_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True for an address on the public internet (see the module docstring)."""
    if not address.is_global or address.is_multicast:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        if address in _NAT64_LOCAL:
            return False
        if address in _NAT64:
            return is_public_address(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is not None:
            return is_public_address(embedded)
    return True


def non_public(host: str, addresses: Iterable[str]) -> str | None:
    """Why a webhook to `host`, which resolves to `addresses`, is refused; None when every address is
    public. One non-public address is enough: the connection could go to any of them. The reason
    never names the address a name resolved to (users read it: no map of the internal network)."""
    for text in addresses:
        address = parse_address(text)
        if address is not None and is_public_address(address):
            continue
        verb = "is" if parse_address(host) is not None else "resolves to"
        return (
            f"the webhook host {host!r} {verb} a non-public address (loopback, private, link-local or "
            f"reserved); set {ALLOW_PRIVATE_SETTING}=true to allow it"
        )
    return None
