"""Health: a public liveness answer, and the state of each backend for those allowed to see it.

- `GET /api/v1/health` (public): `{"status": "ok"}` with 200, or `{"status": "unavailable"}` with
  503 when the operational database does not answer. Nothing else: no deployment, no backend names,
  no error text. One `SELECT 1`, remembered for `LIVENESS_CACHE_SECONDS`, whoever calls it.
- `GET /api/v1/health/backends` (`health:read`: analyst, admin): every backend's state, latency
  and, when down, the error (clipped, with any credentials in a URL masked). Computed at most once
  every `DETAIL_CACHE_SECONDS` per API process; concurrent callers share one computation.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import anyio
import sqlalchemy as sa
from litestar import Controller, Response, get
from litestar.di import NamedDependency

from domain.db import backend_name
from domain.schema import OutboxEvent, utcnow
from serving.db import Database
from serving.deployment import Backends
from serving.permissions import HEALTH_READ, PUBLIC, requires

LIVENESS_CACHE_SECONDS = 1.0
DETAIL_CACHE_SECONDS = 5.0
CHECK_TIMEOUT_SECONDS = 5.0  # one backend's check; a hanging backend is reported down after this
NO_STORE = {"Cache-Control": "no-store"}
_URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")


def _clean(error: BaseException) -> str:
    text = _URL_CREDENTIALS.sub("***@", f"{type(error).__name__}: {error}")
    return " ".join(text.split())[:300]


async def _timed(check: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        with anyio.fail_after(CHECK_TIMEOUT_SECONDS):
            detail = await check()
        detail["status"] = "ok"
    except Exception as exc:  # each backend reports its own failure; the endpoint never raises
        detail = {"status": "down", "error": _clean(exc)}
    detail["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return detail


class _Remembered:
    """The last answer of an async computation, kept `seconds`; one computation at a time."""

    def __init__(self, seconds: float, compute: Callable[[], Awaitable[Any]]) -> None:
        self.seconds = seconds
        self.compute = compute
        self.value: Any = None
        self.at = float("-inf")
        self.lock = anyio.Lock()

    async def get(self) -> Any:
        if time.monotonic() - self.at < self.seconds:
            return self.value
        async with self.lock:  # a flood waits for the one computation in progress
            if time.monotonic() - self.at >= self.seconds:
                self.value = await self.compute()
                self.at = time.monotonic()
            return self.value


class HealthChecks:
    """What the health routes report, remembered between calls (one per app)."""

    def __init__(self, database: Database, backends: Backends) -> None:
        self.database = database
        self.backends = backends
        self.liveness = _Remembered(LIVENESS_CACHE_SECONDS, self._alive)
        self.detail = _Remembered(DETAIL_CACHE_SECONDS, self._detail)

    async def _ping(self) -> dict[str, Any]:
        await self.database.all(sa.select(sa.literal(1)))
        return {"backend": backend_name(self.database.url)}

    async def _alive(self) -> bool:
        return (await _timed(self._ping))["status"] == "ok"

    async def _outbox(self) -> dict[str, Any]:
        relays = self.backends.event_bus.relays
        [row] = await self.database.all(
            sa.select(sa.func.count(), sa.func.min(OutboxEvent.occurred_at)).where(
                OutboxEvent.relayed_at.is_(None)
            )
        )
        detail: dict[str, Any] = {"backend": "nats" if relays else "outbox", "unrelayed": row[0]}
        if relays and row[1] is not None:
            oldest = row[1] if row[1].tzinfo else row[1].replace(tzinfo=UTC)
            detail["oldest_unrelayed_age_s"] = round((utcnow() - oldest).total_seconds(), 1)
        return detail

    async def _detail(self) -> dict[str, Any]:
        backends = self.backends
        result = {
            "database": await _timed(self._ping),
            "event_bus": await _timed(self._outbox),
            "object_store": await _timed(backends.object_store_health),
            "warehouse": await _timed(backends.warehouse_health),
            "cache": await _timed(backends.cache_health),
        }
        healthy = all(c["status"] == "ok" for c in result.values())
        return {
            "status": "ok" if healthy else "degraded",
            "deployment": backends.deployment,
            "checked_at": datetime.now(UTC).isoformat(),
            "backends": result,
        }


class HealthController(Controller):
    path = "/api/v1/health"
    tags = ["health"]

    @get(
        "/",
        opt=requires(PUBLIC),
        operation_id="health",
        summary="Liveness: 200 {status: ok}, or 503 when the database does not answer",
        cache=False,
    )
    async def health(self, health: NamedDependency[HealthChecks]) -> Response[dict[str, str]]:
        if await health.liveness.get():
            return Response({"status": "ok"}, status_code=200, headers=NO_STORE)
        return Response({"status": "unavailable"}, status_code=503, headers=NO_STORE)

    @get(
        "/backends",
        opt=requires(HEALTH_READ),
        operation_id="healthBackends",
        summary="The state of every backend (database, event bus, object store, warehouse, cache)",
        description=f"503 when one is down. Computed at most once every {DETAIL_CACHE_SECONDS:g} s.",
        cache=False,
    )
    async def backends(self, health: NamedDependency[HealthChecks]) -> Response[dict[str, Any]]:
        body = await health.detail.get()
        return Response(body, status_code=200 if body["status"] == "ok" else 503, headers=NO_STORE)
