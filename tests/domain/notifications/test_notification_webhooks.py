"""Webhook signatures: what we send, and the receiver's check (no I/O)."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from domain.notifications import webhooks
from domain.notifications.webhooks import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookReplayError,
    WebhookSignatureError,
    sign,
    signature_headers,
    verify,
)

SECRET = "whsec_7f3a-not-a-real-secret"
BODY = json.dumps({"id": "n-1", "subject": "مقالة جديدة"}, ensure_ascii=False).encode()
NOW = 1_767_225_600


def test_sign_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), b"1767225600." + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, NOW, BODY) == f"v1={expected}"
    assert len(expected) == 64
    # Any change of secret, timestamp or body changes the signature.
    assert sign(SECRET + "x", NOW, BODY) != sign(SECRET, NOW, BODY)
    assert sign(SECRET, NOW + 1, BODY) != sign(SECRET, NOW, BODY)
    assert sign(SECRET, NOW, BODY + b" ") != sign(SECRET, NOW, BODY)


def test_signature_headers() -> None:
    headers = signature_headers(SECRET, BODY, delivery_id="d-1", now=NOW)
    assert headers == {
        "X-Thmnayah-Timestamp": "1767225600",
        "X-Thmnayah-Signature": sign(SECRET, NOW, BODY),
        "X-Thmnayah-Delivery": "d-1",
    }


def test_verify_accepts_a_fresh_request_once() -> None:
    headers = signature_headers(SECRET, BODY, delivery_id="d-1", now=NOW)
    seen: set[str] = set()
    verify(SECRET, headers, BODY, now=NOW + 10, seen=seen)
    assert seen == {"d-1"}
    with pytest.raises(WebhookReplayError, match="already received"):
        verify(SECRET, headers, BODY, now=NOW + 11, seen=seen)
    # A replay is a signature error too, for receivers that do not tell them apart.
    assert issubclass(WebhookReplayError, WebhookSignatureError)
    # Without a `seen` set, only signature and age are checked.
    verify(SECRET, headers, BODY, now=NOW)
    verify(SECRET, headers, BODY, now=NOW)


@pytest.mark.parametrize("missing", [TIMESTAMP_HEADER, SIGNATURE_HEADER, DELIVERY_HEADER])
def test_a_missing_header_is_refused(missing: str) -> None:
    headers = signature_headers(SECRET, BODY, delivery_id="d-1", now=NOW)
    del headers[missing]
    with pytest.raises(WebhookSignatureError, match=f"missing header {missing}") as caught:
        verify(SECRET, headers, BODY, now=NOW)
    assert missing in caught.value.reason


@pytest.mark.parametrize(
    ("secret", "body"),
    [
        ("another-secret", BODY),
        (SECRET, BODY.replace("مقالة".encode(), "خبر".encode())),
        (SECRET, BODY + b"\n"),
    ],
)
def test_a_wrong_secret_or_altered_body_is_refused(secret: str, body: bytes) -> None:
    headers = signature_headers(SECRET, BODY, delivery_id="d-1", now=NOW)
    seen: set[str] = set()
    with pytest.raises(WebhookSignatureError, match="signature does not match"):
        verify(secret, headers, body, now=NOW, seen=seen)
    assert seen == set(), "a refused request must not mark its delivery id as seen"


def test_a_timestamp_outside_the_tolerance_is_refused() -> None:
    headers = signature_headers(SECRET, BODY, delivery_id="d-1", now=NOW)
    verify(SECRET, headers, BODY, now=NOW + 300)
    verify(SECRET, headers, BODY, now=NOW - 300)
    with pytest.raises(WebhookSignatureError, match="tolerance 300 s"):
        verify(SECRET, headers, BODY, now=NOW + 301)  # an old capture, replayed
    with pytest.raises(WebhookSignatureError, match="301 s away"):
        verify(SECRET, headers, BODY, now=NOW - 301)  # from the future
    verify(SECRET, headers, BODY, now=NOW + 3000, tolerance=3600)


def test_the_timestamp_is_covered_by_the_signature() -> None:
    """Refreshing the timestamp of an old capture breaks its signature."""
    headers = signature_headers(SECRET, BODY, delivery_id="d-1", now=NOW)
    headers[TIMESTAMP_HEADER] = str(NOW + 1000)
    with pytest.raises(WebhookSignatureError, match="signature does not match"):
        verify(SECRET, headers, BODY, now=NOW + 1000)


def test_malformed_timestamp() -> None:
    headers = signature_headers(SECRET, BODY, delivery_id="d-1", now=NOW)
    headers[TIMESTAMP_HEADER] = "yesterday"
    with pytest.raises(WebhookSignatureError, match="malformed"):
        verify(SECRET, headers, BODY, now=NOW)


def test_header_names_are_case_insensitive_and_rotation_lists_work() -> None:
    headers = {k.lower(): v for k, v in signature_headers(SECRET, BODY, delivery_id="d-9", now=NOW).items()}
    verify(SECRET, headers, BODY, now=NOW)
    # While a secret is being rotated the sender may list two signatures; one match is enough.
    headers["x-thmnayah-signature"] = f"{sign('old-secret', NOW, BODY)}, {headers['x-thmnayah-signature']}"
    verify(SECRET, headers, BODY, now=NOW)
    verify("old-secret", headers, BODY, now=NOW)
    with pytest.raises(WebhookSignatureError):
        verify("third-secret", headers, BODY, now=NOW)


def test_module_docstring_tells_receivers_what_to_do() -> None:
    doc = webhooks.__doc__ or ""
    for needle in (TIMESTAMP_HEADER, SIGNATURE_HEADER, DELIVERY_HEADER, "compare_digest", "HMAC-SHA256"):
        assert needle in doc


# Where a webhook may go.


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("100.64.0.1", False),  # shared address space (carrier-grade NAT)
        ("169.254.169.254", False),  # cloud metadata
        ("0.0.0.0", False),
        ("224.0.0.1", False),  # multicast
        ("::1", False),
        ("fe80::1", False),
        ("fd00::2", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped
        ("2002:7f00:1::", False),  # 6to4 around 127.0.0.1
        ("2002:808:808::", True),  # 6to4 around 8.8.8.8
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 around 169.254.169.254
        ("64:ff9b::808:808", True),  # NAT64 around 8.8.8.8
        ("64:ff9b:1::1", False),  # local-use NAT64
    ],
)
def test_only_public_addresses_are_public(address: str, public: bool) -> None:
    assert webhooks.is_public_address(webhooks.parse_address(address)) is public


def test_non_public_names_the_address_and_the_setting() -> None:
    assert webhooks.non_public("hooks.example.com", ["93.184.216.34", "2606:2800:220:1::"]) is None
    reason = webhooks.non_public("hooks.example.com", ["93.184.216.34", "10.0.0.7"])
    assert "non-public address" in reason and "THMNAYAH_WEBHOOK_ALLOW_PRIVATE_NETWORKS" in reason
    assert "10.0.0.7" not in reason  # no map of the internal network for whoever registers names
    assert "non-public address" in webhooks.non_public("[::1]", ["::1"])
