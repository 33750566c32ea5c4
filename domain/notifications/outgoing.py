"""What a delivery transport is handed, and what it answers.

The delivery drain (a Dagster job) builds one `Outgoing` per due `DeliveryLog` row and gives a batch
of them to the transport of their channel (`resources/notifiers/`). A transport answers one
`Delivered` or `DeliveryFailed` per message, in order, and never raises for one message's failure:
the drain records each outcome, retrying with backoff unless the failure is permanent.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

CHANNELS = ("email", "sms", "push", "in_app", "webhook")
DELIVERED_CHANNELS = ("email", "sms", "push", "webhook")  # in_app goes over the WebSocket instead


@dataclass(frozen=True)
class Outgoing:
    delivery_id: uuid.UUID
    notification_id: uuid.UUID
    channel: str  # email | sms | push | webhook
    to: str  # an email address, a phone number (E.164), an FCM registration token, a webhook URL
    subject: str
    text: str
    html: str | None = None
    language: str = "en"
    data: Mapping[str, Any] = field(default_factory=dict)  # push data / webhook payload extras
    secret: str | None = None  # the webhook's signing secret


@dataclass(frozen=True)
class Delivered:
    provider_id: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)


class DeliveryFailed(Exception):
    """One message was not handed over. `permanent`: retrying cannot help (a refused address, an
    unregistered device); `bounced`: the provider says the address does not exist; `retry_after`:
    seconds the provider asked us to wait (HTTP 429 / 503 Retry-After)."""

    def __init__(
        self,
        reason: str,
        *,
        permanent: bool = False,
        bounced: bool = False,
        retry_after: float | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent or bounced
        self.bounced = bounced
        self.retry_after = retry_after
        self.metadata = dict(metadata or {})


Outcome = Delivered | DeliveryFailed


class Transport(Protocol):
    channel: str

    async def send_batch(self, items: Sequence[Outgoing]) -> list[Outcome]:
        """One outcome per item, in order; a failure of one message is its outcome, not an exception."""
        ...
