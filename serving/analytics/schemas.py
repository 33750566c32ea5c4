"""Response bodies of the analytics API (requests are validated event by event in
`domain.analytics.events`)."""

from __future__ import annotations

import msgspec


class RejectedEvent(msgspec.Struct):
    index: int
    field: str | None
    message: str


class TrackResult(msgspec.Struct):
    """What became of the events of a tracking request: `accepted` are on disk and reach the lake;
    `duplicates` were accepted before (same `event_id` within 48 hours); `rejected` lists the
    invalid ones with their index in the request."""

    accepted: int
    duplicates: int
    rejected: list[RejectedEvent]
