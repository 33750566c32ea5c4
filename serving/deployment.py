"""Embedded-vs-production wiring of the serving process: the only serving module that reads the
deployment switch. The Litestar process never opens the embedded chDB warehouse (one process per
data path; only Dagster run workers open it).

WebSocket fan-out (Litestar channels): memory when embedded (one API process), Redis Pub/Sub in
production, so a message published by any API process reaches the sockets held by every other."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anyio
from litestar.channels import ChannelsBackend
from litestar.channels.backends.memory import MemoryChannelsBackend
from litestar.stores.base import Store
from litestar.stores.memory import MemoryStore

from domain.settings import Settings
from resources.event_bus import EventBus, NatsEventBus, OutboxEventBus
from resources.object_store import LocalObjectStore, ObjectStore, S3ObjectStore
from resources.warehouse import ClickHouseWarehouse


@dataclass
class Backends:
    deployment: str
    object_store: ObjectStore
    event_bus: EventBus
    stores: dict[str, Store]
    warehouse: ClickHouseWarehouse | None
    channels: ChannelsBackend
    redis_url: str = ""
    chdb_path: str = ""
    channels_client: Any = None  # the Redis client of the channels backend (closed by `close`)

    async def close(self) -> None:
        """Release connections the backends hold (call once the channels plugin has stopped)."""
        if self.channels_client is not None:
            await self.channels_client.aclose()

    async def object_store_health(self) -> dict[str, Any]:
        return await anyio.to_thread.run_sync(self.object_store.health)

    async def warehouse_health(self) -> dict[str, Any]:
        if self.warehouse is None:
            return {"backend": "chdb", "path": self.chdb_path, "opened_by": "dagster run workers only"}

        def ping() -> dict[str, Any]:
            with self.warehouse.client() as client:
                return {"backend": "clickhouse", "version": client.server_version}

        return await anyio.to_thread.run_sync(ping)

    async def cache_health(self) -> dict[str, Any]:
        if not self.redis_url:
            return {"backend": "memory"}
        from redis.asyncio import Redis

        client = Redis.from_url(self.redis_url, socket_connect_timeout=2)
        try:
            await client.ping()
        finally:
            await client.aclose()
        return {"backend": "redis"}


def build_backends(settings: Settings) -> Backends:
    if settings.deployment == "local":
        return Backends(
            deployment="local",
            object_store=LocalObjectStore(root=str(settings.object_store_dir.resolve())),
            event_bus=OutboxEventBus(),
            stores={"cache": MemoryStore(), "rate_limit": MemoryStore(), "auth": MemoryStore()},
            warehouse=None,
            channels=MemoryChannelsBackend(),
            chdb_path=str(settings.chdb_path.resolve()),
        )
    from litestar.channels.backends.redis import RedisChannelsPubSubBackend
    from litestar.stores.redis import RedisStore
    from redis.asyncio import Redis

    redis = RedisStore.with_client(url=settings.redis_url, namespace="thmnayah")
    channels_client = Redis.from_url(settings.redis_url)
    return Backends(
        deployment="prod",
        object_store=S3ObjectStore(
            bucket=settings.s3_bucket,
            endpoint_url=settings.s3_endpoint_url or None,
            region_name=settings.s3_region,
            prefix=settings.s3_prefix,
        ),
        event_bus=NatsEventBus(
            url=settings.nats_url, stream=settings.nats_stream, subject_prefix=settings.nats_subject_prefix
        ),
        stores={
            "cache": redis.with_namespace("cache"),
            "rate_limit": redis.with_namespace("rate_limit"),
            "auth": redis.with_namespace("auth"),
        },
        warehouse=ClickHouseWarehouse(
            host=settings.clickhouse_host,
            port=settings.clickhouse_port,
            user=settings.clickhouse_user,
            password=settings.clickhouse_password,
            secure=settings.clickhouse_secure,
            database=settings.warehouse_database,
        ),
        channels=RedisChannelsPubSubBackend(redis=channels_client),
        redis_url=settings.redis_url,
        channels_client=channels_client,
    )
