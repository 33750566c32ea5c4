"""The event bus: the transactional outbox (embedded) or the outbox relayed to NATS JetStream.

Producers never talk to the bus: they write `outbox_events` rows in their own transaction. The
relay reads unrelayed rows in order, publishes each to `<prefix>.<event_type>` with the header
`Nats-Msg-Id: <event_id>`, and marks them relayed after JetStream's ack. If the relay dies between
the ack and the mark, the next relay publishes the same rows again and JetStream's duplicate window
drops them, so each event is stored in the stream exactly once across restarts.
"""

from __future__ import annotations

import asyncio
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from domain import outbox
from domain.schema import OutboxEvent
from resources.database import OperationalDatabase


@dataclass(frozen=True)
class RelayResult:
    published: int
    duplicates: int
    pending: int
    skipped_reason: str | None = None


def encode_event(event: OutboxEvent) -> bytes:
    return json.dumps(
        {
            "id": str(event.event_id),
            "seq": event.seq,
            "type": event.event_type,
            "aggregate_type": event.aggregate_type,
            "aggregate_id": event.aggregate_id,
            "occurred_at": event.occurred_at.isoformat(),
            "payload": event.payload,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()


class EventBus(ABC):
    """Where the outbox's events go once committed (the relay's destination, if any)."""

    @property
    @abstractmethod
    def relays(self) -> bool:
        """Whether this bus forwards the outbox anywhere (false: consumers read the outbox itself)."""

    @abstractmethod
    def relay(
        self, database: OperationalDatabase, *, batch_size: int = 500, max_batches: int = 100
    ) -> RelayResult: ...

    @abstractmethod
    def health(self) -> dict[str, Any]: ...


class OutboxEventBus(EventBus):
    """Embedded: the outbox table is the bus; sensors read it by cursor."""

    @property
    def relays(self) -> bool:
        return False

    def relay(
        self, database: OperationalDatabase, *, batch_size: int = 500, max_batches: int = 100
    ) -> RelayResult:
        return RelayResult(0, 0, 0, skipped_reason="embedded deployment: the outbox table is the event bus")

    def health(self) -> dict[str, Any]:
        return {"backend": "outbox"}


@dataclass(kw_only=True)
class NatsEventBus(EventBus):
    """Production: the outbox relayed to a JetStream stream (created on first relay if missing)."""

    url: str
    stream: str = "THMNAYAH_EVENTS"
    subject_prefix: str = "thmnayah"
    duplicate_window_seconds: float = 24 * 3600

    @property
    def relays(self) -> bool:
        return True

    def subject(self, event_type: str) -> str:
        return f"{self.subject_prefix}.{event_type}"

    async def ensure_stream(self, js: Any) -> None:
        from nats.js.errors import NotFoundError

        try:
            await js.stream_info(self.stream)
        except NotFoundError:
            await js.add_stream(
                name=self.stream,
                subjects=[f"{self.subject_prefix}.>"],
                duplicate_window=self.duplicate_window_seconds,
            )

    async def _relay(self, database: OperationalDatabase, batch_size: int, max_batches: int) -> RelayResult:
        import nats

        published = duplicates = 0
        nc = await nats.connect(self.url, connect_timeout=5, max_reconnect_attempts=3)
        try:
            js = nc.jetstream(timeout=10)
            await self.ensure_stream(js)
            for _ in range(max_batches):
                with database.session() as session:
                    batch = outbox.unrelayed(session, limit=batch_size)
                    if not batch:
                        break
                    done = []
                    for event in batch:
                        ack = await js.publish(
                            self.subject(event.event_type),
                            encode_event(event),
                            headers={"Nats-Msg-Id": str(event.event_id)},
                        )
                        duplicates += int(bool(ack.duplicate))
                        published += int(not ack.duplicate)
                        done.append(event.seq)
                    outbox.mark_relayed(session, done)
            with database.session() as session:
                pending = outbox.count_unrelayed(session)
        finally:
            await nc.close()
        return RelayResult(published, duplicates, pending)

    def relay(
        self, database: OperationalDatabase, *, batch_size: int = 500, max_batches: int = 100
    ) -> RelayResult:
        return asyncio.run(self._relay(database, batch_size, max_batches))

    def health(self) -> dict[str, Any]:
        async def ping() -> dict[str, Any]:
            import nats

            nc = await nats.connect(self.url, connect_timeout=3, max_reconnect_attempts=0)
            try:
                info = await nc.jetstream().account_info()
                return {"backend": "nats", "streams": info.streams}
            finally:
                await nc.close()

        return asyncio.run(ping())
