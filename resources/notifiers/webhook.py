"""Webhooks: each item's JSON posted to its URL, signed (`domain.notifications.webhooks`)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import anyio
import httpx

from domain.notifications import webhooks
from domain.notifications.outgoing import Delivered, DeliveryFailed, Outcome, Outgoing
from resources import webhook_http
from resources.notifiers.base import DeliveryTransport, clip, send_each
from resources.notifiers.http import Reply, post


def webhook_body(item: Outgoing) -> bytes:
    """The JSON body of a webhook delivery, serialized once: these bytes are what is signed."""
    payload = {
        "id": str(item.notification_id),
        "delivery_id": str(item.delivery_id),
        "subject": item.subject,
        "text": item.text,
        "language": item.language,
        "data": dict(item.data),
    }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str).encode()


@dataclass(kw_only=True)
class WebhookTransport(DeliveryTransport):
    """`POST` each item's JSON to its URL, signed with its secret (see `domain.notifications.webhooks`).

    Redirects are not followed. The whole request (connect, send, answer) is bounded by
    `timeout_seconds`. 2xx is delivered; 429 and 5xx are retried (honoring Retry-After); 410 and
    every other 4xx refuse the delivery for good. A failure keeps the answer's status, never its
    body: whatever a receiver (or a service inside the network) answers is not stored or shown.

    Users choose webhook URLs, so unless `allow_private_networks` is set a host that resolves to a
    loopback, private, link-local or otherwise non-public address is refused (no requests into the
    platform's own network, e.g. a cloud metadata endpoint). The host is resolved once per request
    and the connection goes to the address that was checked (`resources.webhook_http`: no DNS
    rebinding between the check and the connection); proxies from the environment are ignored.
    """

    channel: ClassVar[str] = "webhook"

    timeout_seconds: float = 10.0
    user_agent: str = "thmnayah-webhooks/1"
    concurrency: int = 16
    allow_private_networks: bool = False

    async def send_batch(self, items: Sequence[Outgoing]) -> list[Outcome]:
        client, backend = webhook_http.pinned_client(self.timeout_seconds, self.concurrency)
        async with client:

            async def send_one(item: Outgoing) -> Outcome:
                if not item.secret:
                    return DeliveryFailed("the webhook has no signing secret", permanent=True)
                try:
                    url = httpx.URL(item.to)
                except (httpx.InvalidURL, TypeError) as exc:
                    return DeliveryFailed(f"invalid webhook URL: {clip(str(exc))}", permanent=True)
                if url.scheme not in ("http", "https") or not url.host:
                    return DeliveryFailed("a webhook URL must be http(s)://host/...", permanent=True)
                try:
                    with anyio.fail_after(self.timeout_seconds):
                        addresses = await webhook_http.check_destination(
                            url, allow_private_networks=self.allow_private_networks
                        )
                except TimeoutError:
                    return DeliveryFailed(
                        f"resolving {url.host!r} timed out after {self.timeout_seconds:g} s"
                    )
                except webhook_http.DestinationRefused as refused:
                    return DeliveryFailed(clip(refused.reason), permanent=refused.permanent)
                backend.pin(webhook_http.connect_host(url), addresses)
                body = webhook_body(item)
                headers = {
                    "Content-Type": "application/json; charset=utf-8",
                    "User-Agent": self.user_agent,
                    **webhooks.signature_headers(
                        item.secret, body, delivery_id=str(item.delivery_id), now=int(time.time())
                    ),
                }
                reply = await post(
                    client, url, content=body, headers=headers, timeout_seconds=self.timeout_seconds
                )
                return self._outcome(reply)

            return await send_each(self.channel, items, self.concurrency, send_one)

    @staticmethod
    def _outcome(reply: Reply) -> Outcome:
        if 200 <= reply.status < 300:
            return Delivered(metadata={"http_status": reply.status})
        reason = f"webhook answered {reply.status}"  # the status only: the body is the receiver's
        metadata = {"http_status": reply.status}
        if reply.status == 429 or reply.status >= 500:
            return DeliveryFailed(reason, retry_after=reply.retry_after, metadata=metadata)
        # 410 Gone (the receiver asks us to stop), any other 4xx, and 3xx redirects.
        return DeliveryFailed(reason, permanent=True, metadata=metadata)
