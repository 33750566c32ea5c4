"""The HTTP plumbing of the transports that speak HTTP (push, SMS, webhooks): one client shape,
a bounded POST that reads at most `MAX_RESPONSE_BYTES`, and `Retry-After` parsing. Kept apart
from `base` so the email transport (which the API process loads) does not import httpx."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import anyio
import httpx

from domain.notifications.outgoing import DeliveryFailed
from resources.notifiers.base import clip

# httpx logs every request URL at INFO; a webhook URL may carry a token, so keep it quiet.
logging.getLogger("httpx").setLevel(logging.WARNING)

MAX_RESPONSE_BYTES = 64 * 1024  # how much of an HTTP answer is read (a webhook may answer anything)


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """An HTTP `Retry-After` value (seconds, or an HTTP date) as seconds from now; None if absent."""
    if not value:
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass(frozen=True)
class Reply:
    status: int
    headers: httpx.Headers
    body: bytes

    def json(self) -> dict[str, Any]:
        try:
            value = json.loads(self.body)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def text(self) -> str:
        return clip(self.body.decode("utf-8", errors="replace"))

    @property
    def retry_after(self) -> float | None:
        return retry_after_seconds(self.headers.get("retry-after"))


def http_client(timeout_seconds: float, connections: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout_seconds),  # each of connect / read / write / pool
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        follow_redirects=False,
    )


async def post(
    client: httpx.AsyncClient,
    url: str | httpx.URL,
    *,
    content: bytes,
    headers: Mapping[str, str],
    timeout_seconds: float,
) -> Reply:
    """POST and read at most `MAX_RESPONSE_BYTES` of the answer, all within `timeout_seconds`.

    Timeouts and connection errors raise a retryable `DeliveryFailed`.
    """
    try:
        with anyio.fail_after(timeout_seconds):
            async with client.stream("POST", url, content=content, headers=headers) as response:
                body = b""
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) >= MAX_RESPONSE_BYTES:
                        break
                return Reply(response.status_code, response.headers, body[:MAX_RESPONSE_BYTES])
    except (TimeoutError, httpx.TimeoutException):
        raise DeliveryFailed(f"timed out after {timeout_seconds:g} s") from None
    except httpx.HTTPError as exc:
        raise DeliveryFailed(f"request failed: {type(exc).__name__}: {clip(str(exc))}") from None
