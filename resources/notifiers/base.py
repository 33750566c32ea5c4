"""What every delivery transport shares: the interface, the bounded fan-out over a batch, the
batch log line (`resources.notifiers.http` has the plumbing of the channels that speak HTTP).

A transport is a plain client (no Dagster here: the API process sends account mail through the
email transport); `resources.dagster.notifiers` wraps each one for Dagster.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass

import anyio

from domain.notifications.outgoing import DeliveryFailed, Outcome, Outgoing

log = logging.getLogger(__name__)

REASON_CHARS = 300  # how much of a provider's error text is kept in a reason


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
