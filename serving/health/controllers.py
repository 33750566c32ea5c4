"""`/api/v1/health`: the state of each backend the serving process depends on."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from litestar import Controller, Response, get
from litestar.di import NamedDependency
from sqlalchemy.ext.asyncio import AsyncSession

from domain.db import backend_name
from domain.schema import OutboxEvent, utcnow
from serving.deployment import Backends
from serving.permissions import PUBLIC, requires


async def _timed(name: str, check) -> tuple[str, dict[str, Any]]:
    started = time.perf_counter()
    try:
        detail = await check()
        detail["status"] = "ok"
    except Exception as exc:  # each backend reports its own failure; the endpoint never raises
        detail = {"status": "down", "error": f"{type(exc).__name__}: {exc}"[:300]}
    detail["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return name, detail


class HealthController(Controller):
    path = "/api/v1/health"
    tags = ["health"]

    @get("/", opt=requires(PUBLIC), operation_id="health", summary="Health of every backend", cache=False)
    async def health(
        self, db_session: NamedDependency[AsyncSession], backends: NamedDependency[Backends]
    ) -> Response[dict[str, Any]]:
        async def database() -> dict[str, Any]:
            await db_session.execute(sa.text("SELECT 1"))
            return {"backend": backend_name(str(db_session.bind.url))}

        async def outbox() -> dict[str, Any]:
            row = (
                await db_session.execute(
                    sa.select(sa.func.count(), sa.func.min(OutboxEvent.occurred_at)).where(
                        OutboxEvent.relayed_at.is_(None)
                    )
                )
            ).one()
            detail = {"backend": "nats" if backends.event_bus.relays else "outbox", "unrelayed": row[0]}
            if backends.event_bus.relays and row[1] is not None:
                detail["oldest_unrelayed_age_s"] = round((utcnow() - row[1]).total_seconds(), 1)
            return detail

        checks = [
            await _timed("database", database),
            await _timed("event_bus", outbox),
            await _timed("object_store", backends.object_store_health),
            await _timed("warehouse", backends.warehouse_health),
            await _timed("cache", backends.cache_health),
        ]
        result = dict(checks)
        healthy = all(c["status"] == "ok" for c in result.values())
        body = {
            "status": "ok" if healthy else "degraded",
            "deployment": backends.deployment,
            "backends": result,
        }
        return Response(body, status_code=200 if healthy else 503)
