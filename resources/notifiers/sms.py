"""SMS: a JSON-over-HTTP gateway."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from domain.notifications.outgoing import Delivered, DeliveryFailed, Outcome, Outgoing
from resources.notifiers.base import DeliveryTransport, clip, send_each
from resources.notifiers.http import Reply, http_client, post


@dataclass(kw_only=True)
class SmsGatewayTransport(DeliveryTransport):
    """An HTTP SMS gateway: `POST url` with JSON `{"to", "from", "body"}` and a bearer token.

    2xx is delivered (the provider id from a JSON `id` or `message_id`); 429, 408 and 5xx are
    retried; 401/403 too (the token is ours to fix); any other 4xx refuses the message for good.
    """

    channel: ClassVar[str] = "sms"

    url: str
    token: str = field(default="", repr=False)
    sender: str = ""
    timeout_seconds: float = 10.0
    concurrency: int = 8

    async def send_batch(self, items: Sequence[Outgoing]) -> list[Outcome]:
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        async with http_client(self.timeout_seconds, self.concurrency) as client:

            async def send_one(item: Outgoing) -> Outcome:
                body = json.dumps({"to": item.to, "from": self.sender, "body": item.text}, ensure_ascii=False)
                reply = await post(
                    client,
                    self.url,
                    content=body.encode(),
                    headers=headers,
                    timeout_seconds=self.timeout_seconds,
                )
                return self._outcome(reply)

            return await send_each(self.channel, items, self.concurrency, send_one)

    @staticmethod
    def _outcome(reply: Reply) -> Outcome:
        payload = reply.json()
        if 200 <= reply.status < 300:
            return Delivered(provider_id=str(payload.get("id") or payload.get("message_id") or ""))
        said = payload.get("message") or payload.get("error") or payload.get("detail") or reply.text()
        if isinstance(said, dict):
            said = said.get("message") or json.dumps(said, ensure_ascii=False)
        reason = f"SMS gateway {reply.status}: {clip(str(said))}"
        metadata = {"http_status": reply.status}
        if reply.status in (408, 429) or reply.status >= 500:
            return DeliveryFailed(reason, retry_after=reply.retry_after, metadata=metadata)
        if reply.status in (401, 403):
            return DeliveryFailed(reason, metadata=metadata)
        return DeliveryFailed(reason, permanent=True, metadata=metadata)
