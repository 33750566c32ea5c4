"""The API process's live counters: events tracked per type and minute, and the request middleware's
per-route figures, added to the operational DB every `FLUSH_SECONDS` (see `domain.analytics.live`).

Counting is a dict update on the event loop (no lock: one thread). A failed flush keeps its counts
and merges them into the next one, so a database hiccup delays numbers instead of losing them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime

from litestar import Litestar
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from domain.analytics.live import RouteFigures, add_live, add_routes
from serving.db import Database

FLUSH_SECONDS = 2.0
UNMATCHED = "(no route)"
log = logging.getLogger(__name__)


def _minute(now: float) -> datetime:
    return datetime.fromtimestamp(now - now % 60, UTC)


class LiveMetrics:
    def __init__(self, database: Database, flush_seconds: float = FLUSH_SECONDS) -> None:
        self.database = database
        self.flush_seconds = flush_seconds
        self.events: dict[tuple[datetime, str], float] = defaultdict(float)
        self.routes: dict[tuple[datetime, str], RouteFigures] = {}
        self._flusher: asyncio.Task[None] | None = None

    def count_events(self, by_type: Mapping[str, int], at: float | None = None) -> None:
        minute = _minute(time.time() if at is None else at)
        for event_type, n in by_type.items():
            self.events[(minute, f"events.{event_type}")] += n

    def record_request(self, route: str, status: int, latency_ms: float, at: float | None = None) -> None:
        key = (_minute(time.time() if at is None else at), route)
        figures = self.routes.get(key)
        if figures is None:
            figures = self.routes[key] = RouteFigures()
        figures.record(status, latency_ms)

    async def flush(self) -> None:
        events, self.events = self.events, defaultdict(float)
        routes, self.routes = self.routes, {}
        if not events and not routes:
            return

        def write(session) -> None:
            add_live(session, events)
            add_routes(session, routes)

        try:
            await self.database.write(write)
        except Exception:
            log.exception("live metrics flush failed; keeping the counts for the next flush")
            for key, value in events.items():
                self.events[key] += value
            for key, figures in routes.items():
                self.routes.setdefault(key, RouteFigures()).merge(figures)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_seconds)
            await self.flush()

    async def start(self) -> None:
        self._flusher = asyncio.create_task(self._run(), name="live-metrics-flusher")

    async def stop(self) -> None:
        """Stop the flusher and write what is left."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        await self.flush()

    def wrap(self, app: Litestar) -> None:
        """Measure every HTTP request around the whole application, outside Litestar's exception
        handling: a refusal raised by the auth middleware or a guard (401/403), a validation error
        (400/422), a missing route (404) or a redirect is recorded with the status the client got.
        A middleware inside Litestar sees such exceptions pass before their handler answers them.
        (Litestar wraps its own `asgi_handler` the same way for OpenTelemetry.)"""
        app.asgi_handler = self.middleware(app.asgi_handler)

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """ASGI middleware recording each HTTP request's route template, status and latency."""
        record = self.record_request

        async def measured(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            started = time.perf_counter()
            status = 500  # what the server answers if nothing was sent before an exception escaped

            async def sending(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await app(scope, receive, sending)
            finally:
                # Requests that matched no route are counted together: their paths are the client's.
                template = scope.get("path_template")
                route = f"{scope['method']} {template}" if template else f"{scope['method']} {UNMATCHED}"
                record(route, status, (time.perf_counter() - started) * 1000)

        return measured
