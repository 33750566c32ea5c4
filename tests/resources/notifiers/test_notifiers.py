"""What every delivery transport shares: a refusing transport for what is not configured, the batch
log line under the channel's name, and reading `Retry-After`."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest

from domain.notifications.outgoing import DeliveryFailed
from resources.notifiers.base import UnconfiguredTransport
from resources.notifiers.email import FileEmailTransport, SesEmailTransport, SmtpEmailTransport
from resources.notifiers.http import retry_after_seconds
from resources.notifiers.push import FcmPushTransport
from resources.notifiers.sms import SmsGatewayTransport
from resources.notifiers.webhook import WebhookTransport
from tests.conftest import free_port
from tests.resources.conftest import SENDER, outgoing, send


def test_unconfigured_transport_refuses_everything() -> None:
    reason = "push is not configured: set THMNAYAH_FCM_PROJECT_ID and THMNAYAH_FCM_CREDENTIALS_FILE"
    transport = UnconfiguredTransport(channel="push", reason=reason)
    outcomes = send(transport, [outgoing("push", "device-1"), outgoing("push", "device-2")])
    assert all(isinstance(o, DeliveryFailed) and o.permanent and o.reason == reason for o in outcomes)
    assert transport.channel == "push"
    assert send(transport, []) == []


def test_each_transport_reports_its_batches_under_its_channel(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A transport's `channel` is how its batch logs name it (what an operator reads about a drain).
    Each batch here fails before any network traffic, or against a port where nothing listens."""
    caplog.set_level(logging.INFO, logger="resources.notifiers")
    not_an_address = outgoing("email", "nobody")
    cases = [
        ("email", SmtpEmailTransport(host="127.0.0.1", port=free_port(), sender=SENDER), not_an_address),
        ("email", SesEmailTransport(region="eu-west-1", sender=SENDER), not_an_address),
        ("email", FileEmailTransport(directory=str(tmp_path / "mail"), sender=SENDER), not_an_address),
        (
            "push",
            FcmPushTransport(project_id="p", credentials_file=str(tmp_path / "missing.json")),
            outgoing("push", "device-1"),
        ),
        (
            "sms",
            SmsGatewayTransport(url=f"http://127.0.0.1:{free_port()}/sms", timeout_seconds=1),
            outgoing("sms", "+966501234567"),
        ),
        ("webhook", WebhookTransport(timeout_seconds=1), outgoing("webhook", "https://example.test/h")),
    ]
    for channel, transport, item in cases:
        caplog.clear()
        [outcome] = send(transport, [item])
        assert isinstance(outcome, DeliveryFailed), (channel, outcome)
        said = [
            record.getMessage() for record in caplog.records if record.name.startswith("resources.notifiers")
        ]
        assert [line.split()[0].rstrip(":") for line in said] == [channel] * len(said), said
        assert any(line.startswith(f"{channel}: ") for line in said), (type(transport).__name__, said)


def test_retry_after_values() -> None:
    now = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
    assert retry_after_seconds("120") == 120
    assert retry_after_seconds("Thu, 01 Jan 2026 12:01:30 GMT", now=now) == 90
    assert retry_after_seconds("Thu, 01 Jan 2026 11:00:00 GMT", now=now) == 0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None
