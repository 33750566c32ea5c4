"""The event bus as Dagster resources: the outbox table alone, or the outbox relayed to NATS."""

from __future__ import annotations

import dagster as dg

from resources.event_bus import NatsEventBus, OutboxEventBus


class OutboxEventBusResource(dg.ConfigurableResource):
    """Embedded: the outbox table is the bus; sensors read it by cursor."""

    def create_resource(self, context: dg.InitResourceContext) -> OutboxEventBus:
        return OutboxEventBus()


class NatsEventBusResource(dg.ConfigurableResource):
    """Production: the outbox relayed to a NATS JetStream stream, one subject per event type."""

    url: str
    stream: str = "THMNAYAH_EVENTS"
    subject_prefix: str = "thmnayah"
    duplicate_window_seconds: float = 24 * 3600

    def create_resource(self, context: dg.InitResourceContext) -> NatsEventBus:
        return NatsEventBus(
            url=self.url,
            stream=self.stream,
            subject_prefix=self.subject_prefix,
            duplicate_window_seconds=self.duplicate_window_seconds,
        )
