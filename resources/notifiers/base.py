"""What every delivery transport shares: the interface, the bounded fan-out over a batch, the
batch log line, and the HTTP plumbing of the channels that speak HTTP.

A transport is a plain client (no Dagster here: the API process sends account mail through the
email transport); `resources.dagster.notifiers` wraps each one for Dagster.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import anyio
import httpx

from domain.notifications.outgoing import DeliveryFailed, Outcome, Outgoing

log = logging.getLogger(__name__)
# httpx logs every request URL at INFO; a webhook URL may carry a token, so keep it quiet.
logging.getLogger("httpx").setLevel(logging.WARNING)

REASON_CHARS = 300  # how much of a provider's error text is kept in a reason
MAX_RESPONSE_BYTES = 64 * 1024  # how much of an HTTP answer is read (a webhook may answer anything)


class DeliveryTransport(ABC):
    """The interface of every transport (type-hint this). Subclasses say their `channel`."""

    channel: str

    @abstractmethod
    async def send_batch(self, items: Sequence[Outgoing]) -> list[Outcome]:
        """One outcome per item, in order; one item's failure is its outcome, never an exception."""


# --- shared plumbing ------------------------------------------------------------------------------


def clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 1] + "…"


async def send_each(
    channel: str,
    items: Sequence[Outgoing],
    limit: int,
    send_one: Callable[[Outgoing], Awaitable[Outcome]],
) -> list[Outcome]:
    """Run `send_one` over `items`, at most `limit` at a time, keeping the order of the answers.

    A `DeliveryFailed` raised by `send_one` becomes that item's outcome; so does any other
    exception (retryable: a bug or an unforeseen error must not lose the rest of the batch).
    """
    results: list[Outcome | None] = [None] * len(items)
    pending: Iterator[tuple[int, Outgoing]] = iter(enumerate(items))

    async def worker() -> None:
        for index, item in pending:  # the iterator is shared: each worker takes the next item
            try:
                results[index] = await send_one(item)
            except DeliveryFailed as failed:
                results[index] = failed
            except Exception as exc:
                log.exception("%s delivery %s failed unexpectedly", channel, item.delivery_id)
                results[index] = DeliveryFailed(f"unexpected error: {type(exc).__name__}: {clip(str(exc))}")

    if items:
        async with anyio.create_task_group() as group:
            for _ in range(max(1, min(limit, len(items)))):
                group.start_soon(worker)
    outcomes = [outcome for outcome in results if outcome is not None]
    assert len(outcomes) == len(items)
    log_batch(channel, items, outcomes)
    return outcomes


def log_batch(channel: str, items: Sequence[Outgoing], outcomes: Sequence[Outcome]) -> None:
    if not items:
        return
    failed = [(item, o) for item, o in zip(items, outcomes, strict=True) if isinstance(o, DeliveryFailed)]
    if not failed:
        log.info("%s: %d delivered", channel, len(items))
        return
    sample = "; ".join(f"{item.delivery_id}: {o.reason}" for item, o in failed[:5])
    log.warning(
        "%s: %d delivered, %d failed (%d permanent); first failures: %s",
        channel,
        len(items) - len(failed),
        len(failed),
        sum(o.permanent for _, o in failed),
        sample,
    )


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


# --- not configured -------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnconfiguredTransport(DeliveryTransport):
    """A channel with no provider configured: every item fails permanently with `reason`."""

    channel: str
    reason: str

    async def send_batch(self, items: Sequence[Outgoing]) -> list[Outcome]:
        if items:
            log.warning("%s: %d deliveries refused: %s", self.channel, len(items), self.reason)
        return [DeliveryFailed(self.reason, permanent=True) for _ in items]
