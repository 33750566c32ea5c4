"""Destinations as someone other than the recipient sees them (`domain.notifications.masking`)."""

from __future__ import annotations

import pytest

from domain.notifications.masking import mask_destination, mask_text


@pytest.mark.parametrize(
    ("channel", "destination", "masked"),
    [
        ("email", "nour.haddad@example.test", "n***@example.test"),
        ("email", "not-an-address", "****"),
        ("sms", "+966512345612", "+9665****12"),
        ("sms", "+96651", "****"),  # too short to show any of it
        ("webhook", "https://hooks.example.test:8443/p/secret-token?key=abc", "hooks.example.test"),
        ("webhook", "http://[::1", "****"),  # malformed: nothing of it
        ("push", "fcm-token-abcdefghijklmnopqrstuvwxyz", "fcm-****"),
        ("push", "short", "****"),
        ("email", "", ""),
    ],
)
def test_destinations_are_masked_per_channel(channel: str, destination: str, masked: str) -> None:
    assert mask_destination(channel, destination) == masked


def test_error_text_loses_the_destination_and_any_address_or_url_in_it() -> None:
    text = "550 <nour@example.test> unknown; relay said see https://relay.example.test/bounce/nour?id=7"
    assert mask_text(text, "email", "nour@example.test") == (
        "550 <n***@example.test> unknown; relay said see relay.example.test"
    )
    assert mask_text("gateway refused 966512345612", "sms", "+966512345612") == "gateway refused +9665****12"
    assert mask_text(None, "sms", "+966512345612") is None
