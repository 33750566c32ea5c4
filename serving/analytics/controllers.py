"""`/api/v1/analytics`: event tracking.

`POST /events/track` takes one event or `{"events": [...]}` (at most 1,000 events, 1 MiB). Each event
is validated on its own (`domain.analytics.events`); the valid ones are appended to the event lake's
local buffer and fsynced before the answer (`resources.event_lake`), so an acknowledged event
survives a crash of the process. Event ids accepted in the last 48 hours are remembered in the cache
store (memory embedded, Redis in production) and a repeat is counted as a duplicate, not written.

Ids are checked before the write and remembered after it: a crash in between makes the client's
retry write the event again rather than lose it, and two requests carrying the same id at the same
instant may both write it. The lake loader dedupes by `event_id`, so both cases cost nothing.
"""

from __future__ import annotations

import resource
from collections import Counter
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from litestar.status_codes import HTTP_202_ACCEPTED
from sqlalchemy.orm import Session

from domain.analytics import dashboard, events
from domain.errors import NotFound
from domain.schema import ContentItem
from resources.event_lake import EventLake
from serving.analytics.live import LiveMetrics
from serving.analytics.schemas import RejectedEvent, TrackResult
from serving.analytics.services import SeenEvents, period
from serving.auth.principal import Principal
from serving.db import Database
from serving.deployment import Backends
from serving.permissions import ANALYTICS_READ, AUTHENTICATED, requires
from serving.problems import problem

AuthedRequest = Request[Principal, Any, Any]
OVERVIEW_CACHE_PREFIX = "analytics:overview:"
OVERVIEW_CACHE_TTL = 30  # seconds; the daily tables change hourly at most
StartDate = QueryParameter(
    name="start_date", description="First day (UTC, inclusive); default: 7 days back", required=False
)
EndDate = QueryParameter(description="Last day (UTC, inclusive); default: today", required=False)


def _rejected(items: list[events.Rejection]) -> list[dict[str, Any]]:
    return [{"index": r.index, "field": r.field, "message": r.message} for r in items]


class AnalyticsController(Controller):
    path = "/api/v1/analytics"
    tags = ["analytics"]

    @post(
        "/events/track",
        opt=requires(AUTHENTICATED),
        operation_id="trackEvents",
        summary="Track one event or a batch of up to 1,000",
        description='Body: one event, or `{"events": [...]}` (at most 1,000 events, 1 MiB). Event types '
        f"(`type`): {', '.join(events.EVENT_TYPES)}. Every event carries a client-chosen `event_id` "
        "(UUID; a repeat within 48 hours is a duplicate, not counted twice) and `occurred_at` (ISO 8601 "
        "with a timezone, at most 5 minutes ahead and 7 days back); optional `session_id`, `platform` "
        "(web/ios/android), `language` (ar/en) and `properties` (a JSON object, at most 2 KiB). The user "
        "is the caller. Valid events are accepted even when others in the batch are not: 202 with "
        "`accepted`, `duplicates` and `rejected` (index, field, message); 422 when none is valid.",
        status_code=HTTP_202_ACCEPTED,
        request_max_body_size=events.MAX_BODY_BYTES,
    )
    async def track(
        self,
        request: AuthedRequest,
        event_lake: NamedDependency[EventLake],
        backends: NamedDependency[Backends],
        live_metrics: NamedDependency[LiveMetrics],
    ) -> Response[TrackResult]:
        body = await request.body()
        received = datetime.now(UTC)
        batch = events.accept_body(body, received)  # a TrackingError is a 400/413 problem
        if not batch.ids:
            first = batch.rejected[0]
            detail = (
                f"no valid event: {len(batch.rejected)} rejected (first: index {first.index}, "
                f"{first.field or 'body'}: {first.message})"
            )
            return problem(request, 422, detail, title="Invalid events", errors=_rejected(batch.rejected))

        seen_events = SeenEvents(backends.stores["cache"])
        seen = await seen_events.seen(batch.ids)
        fresh = batch.ids
        raws, types = batch.raws, batch.types
        if seen:
            kept = [p for p, event_id in enumerate(fresh) if event_id not in seen]
            fresh = [fresh[p] for p in kept]
            raws, types = [raws[p] for p in kept], [types[p] for p in kept]
        if fresh:
            user_id, received_ms = str(request.user.user_id), events.epoch_ms(received)
            await event_lake.append(events.buffer_lines(raws, user_id, received_ms), len(fresh))
            await seen_events.remember(fresh)
            live_metrics.count_events(Counter(types))
        result = TrackResult(
            accepted=len(fresh),
            duplicates=batch.valid - len(fresh),
            rejected=[RejectedEvent(r.index, r.field, r.message) for r in batch.rejected],
        )
        return Response(result, status_code=HTTP_202_ACCEPTED)

    @get(
        "/content/{content_id:uuid}/metrics",
        opt=requires(ANALYTICS_READ),
        operation_id="getContentMetrics",
        summary="ContentMetrics of one item: totals over the period and one row per day",
        description="Views, unique viewers (summed over days), average watch time (s), completion rate, "
        "engagement score, shares, favorites and comments, from the serving tables the analytics job "
        "publishes after each closed hour. Rates over the period are weighted by unique viewers.",
    )
    async def content_metrics(
        self,
        request: AuthedRequest,
        content_id: FromPath[UUID],
        db: NamedDependency[Database],
        start_date: Annotated[date | None, StartDate] = None,
        end_date: Annotated[date | None, EndDate] = None,
    ) -> dict[str, Any]:
        start, end = period(start_date, end_date)

        def read(session: Session) -> dict[str, Any]:
            item = session.get(ContentItem, content_id)
            if item is None:
                raise NotFound(f"no content item {content_id}")
            return {
                "content_id": str(content_id),
                "title": item.title,
                "period": {"start": start.isoformat(), "end": end.isoformat()},
                **dashboard.content_metrics(session, content_id, start, end),
            }

        return await db.read(read)

    @get(
        "/dashboard/overview",
        opt=requires(ANALYTICS_READ),
        operation_id="getDashboardOverview",
        summary="Dashboard KPIs, daily series, top content and queries, and the live last minutes",
        description="KPIs over the period from the published daily tables (which change when the hourly "
        "analytics job publishes; cached for 30 s per period, `period_as_of` says when they were read; "
        "`Cache-Control: no-cache` reads them again), "
        "plus `live`, read on every request: events by type over the last 5 minutes and views per minute "
        "over the last 30, which every API process adds to every 2 seconds (the dashboard is never more "
        "than a few seconds behind).",
    )
    async def overview(
        self,
        request: AuthedRequest,
        db: NamedDependency[Database],
        backends: NamedDependency[Backends],
        start_date: Annotated[date | None, StartDate] = None,
        end_date: Annotated[date | None, EndDate] = None,
    ) -> dict[str, Any]:
        start, end = period(start_date, end_date)
        store = backends.stores["cache"]
        key = f"{OVERVIEW_CACHE_PREFIX}{start}:{end}"
        fresh = "no-cache" in request.headers.get("cache-control", "")  # the client asks for a re-read
        cached = None if fresh else await store.get(key)
        if cached is None:
            body = await db.read(lambda s: dashboard.period_overview(s, start, end))
            body["period_as_of"] = datetime.now(UTC).isoformat()
            await store.set(key, msgspec.json.encode(body), expires_in=OVERVIEW_CACHE_TTL)
        else:
            body = msgspec.json.decode(cached)
        now = datetime.now(UTC)
        body["live"] = await db.read(lambda s: dashboard.live(s, now))
        return body

    @get(
        "/users/engagement",
        opt=requires(ANALYTICS_READ),
        operation_id="getUserEngagement",
        summary="UserEngagement over the period, by segment (role, activity or language)",
    )
    async def users_engagement(
        self,
        db: NamedDependency[Database],
        segment: Annotated[
            Literal["role", "activity", "language"],
            QueryParameter(
                description="role: the user's roles; activity: days active in the period; "
                "language: the interface language the user chose"
            ),
        ] = "role",
        start_date: Annotated[date | None, StartDate] = None,
        end_date: Annotated[date | None, EndDate] = None,
    ) -> dict[str, Any]:
        start, end = period(start_date, end_date)
        return await db.read(lambda s: dashboard.users_engagement(s, start, end, segment))

    @get(
        "/search/insights",
        opt=requires(ANALYTICS_READ),
        operation_id="getSearchInsights",
        summary="Popular queries, zero-result queries, rising queries and the daily trend",
    )
    async def search_insights(
        self,
        db: NamedDependency[Database],
        language: Annotated[
            Literal["ar", "en"] | None, QueryParameter(description="Only searches in this interface language")
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=100, description="Queries per list")] = 20,
        start_date: Annotated[date | None, StartDate] = None,
        end_date: Annotated[date | None, EndDate] = None,
    ) -> dict[str, Any]:
        start, end = period(start_date, end_date)
        return await db.read(
            lambda s: dashboard.search_insights(s, start, end, language=language, limit=limit)
        )

    @get(
        "/system/health",
        opt=requires(ANALYTICS_READ),
        operation_id="getSystemHealth",
        summary="API response times and error rates per route, and this process's resource usage",
        description="Per route (method and path template) over the last `minutes`: requests, client and "
        "server error rates, average and p50/p95/p99 latency (ms, from a histogram every API process "
        "flushes every 2 seconds). `process`: this API process's memory, CPU time and event-lake backlog.",
    )
    async def system_health(
        self,
        db: NamedDependency[Database],
        event_lake: NamedDependency[EventLake],
        minutes: Annotated[int, QueryParameter(ge=1, le=1440, description="Window, in minutes")] = 60,
    ) -> dict[str, Any]:
        now = datetime.now(UTC)
        health = await db.read(lambda s: dashboard.system_health(s, now, minutes))
        usage = resource.getrusage(resource.RUSAGE_SELF)
        health["process"] = {
            "max_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "cpu_user_s": round(usage.ru_utime, 2),
            "cpu_system_s": round(usage.ru_stime, 2),
            "database": db.engine.dialect.name if db.engine is not None else None,
            "event_lake": {
                "buffered_rows": event_lake.buffer.pending_rows,
                "flushed_rows": event_lake.stats.rows,
                "flushed_files": event_lake.stats.files,
                "flush_failures": event_lake.stats.failures,
            },
        }
        return health
