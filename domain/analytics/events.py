"""Tracked events: their typed schemas (a msgspec union tagged by `type`), the per-event validation
of a tracking request, and the mapping of an accepted event to a row of the event lake.

A request body is one event or `{"events": [...]}`. Each event is checked on its own: the valid ones
of a batch are accepted, every invalid one is reported with its index, the offending field and why.

The event lake is Parquet under `events/dt=YYYY-MM-DD/hour=HH/` (the event's UTC hour) with exactly
the columns of `lake_schema()`; the warehouse loading asset reads them.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Literal

import msgspec

from domain.errors import DomainError

if TYPE_CHECKING:
    import pyarrow as pa

MAX_BATCH_EVENTS = 1_000
MAX_BODY_BYTES = 1024 * 1024
MAX_PROPERTIES_BYTES = 2 * 1024
MAX_FUTURE = timedelta(minutes=5)
MAX_PAST = timedelta(days=7)

LAKE_PREFIX = "events"
_HOUR_MS = 3_600_000


@functools.cache
def lake_schema() -> pa.Schema:
    """The columns of the event lake's Parquet files (built on first use: pyarrow is imported then,
    not when the API imports this module)."""
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("event_id", pa.string(), nullable=False),
            pa.field("event_type", pa.string(), nullable=False),
            pa.field("occurred_at", pa.timestamp("ms", tz="UTC"), nullable=False),
            pa.field("received_at", pa.timestamp("ms", tz="UTC"), nullable=False),
            pa.field("user_id", pa.string()),
            pa.field("session_id", pa.string()),
            pa.field("platform", pa.string()),
            pa.field("language", pa.string()),
            pa.field("content_id", pa.string()),
            pa.field("position_s", pa.float64()),
            pa.field("duration_s", pa.float64()),
            pa.field("query", pa.string()),
            pa.field("result_count", pa.int32()),
            pa.field("clicked_position", pa.int32()),
            pa.field("channel", pa.string()),
            pa.field("properties", pa.string()),
        ]
    )


def hour_prefix(at: datetime) -> str:
    """`events/dt=YYYY-MM-DD/hour=HH`: the lake folder of the UTC hour of `at` (aware)."""
    if at.tzinfo is None:
        raise ValueError("hour_prefix needs a timezone-aware datetime")
    at = at.astimezone(UTC)
    return f"{LAKE_PREFIX}/dt={at:%Y-%m-%d}/hour={at:%H}"


def hour_prefix_ms(epoch_ms: int) -> str:
    return hour_prefix(datetime.fromtimestamp((epoch_ms // _HOUR_MS) * 3600, UTC))


# --- the schemas ----------------------------------------------------------------------------------

Seconds = Annotated[float, msgspec.Meta(ge=0, le=7 * 24 * 3600)]
Count = Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)]
Position = Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]  # 1 = the first result
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
Token = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Language = Literal["ar", "en"]
Platform = Literal["web", "ios", "android"]
NO_PROPERTIES = msgspec.Raw(b"")


class TrackedEvent(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, tag_field="type", gc=False):
    """Fields every event has. `event_id` is chosen by the client (a UUID) and makes a retry safe.

    Not tracked by the cyclic GC (`gc=False`): the fields are scalars, so an event can never be part
    of a reference cycle, and a batch decodes thousands of them the collector would otherwise walk."""

    event_id: uuid.UUID
    occurred_at: Annotated[datetime, msgspec.Meta(tz=True)]
    session_id: Token | None = None
    platform: Platform | None = None
    language: Language | None = None
    properties: msgspec.Raw = NO_PROPERTIES  # a small JSON object, kept as sent


class ViewEvent(TrackedEvent, tag="view"):
    content_id: uuid.UUID


class MediaProgressEvent(TrackedEvent, tag="media_progress"):
    content_id: uuid.UUID
    position_s: Seconds
    duration_s: Seconds


class MediaCompleteEvent(TrackedEvent, tag="media_complete"):
    content_id: uuid.UUID
    duration_s: Seconds


class FavoriteEvent(TrackedEvent, tag="favorite"):
    content_id: uuid.UUID


class ShareEvent(TrackedEvent, tag="share"):
    content_id: uuid.UUID
    channel: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None


class CommentEvent(TrackedEvent, tag="comment"):
    content_id: uuid.UUID


class SearchEvent(TrackedEvent, tag="search"):
    query: Text
    result_count: Count
    language: Language  # required for searches (search analytics are per language)


class SearchClickEvent(TrackedEvent, tag="search_click"):
    query: Text
    content_id: uuid.UUID
    clicked_position: Position


class DownloadEvent(TrackedEvent, tag="download"):
    content_id: uuid.UUID


class LoginEvent(TrackedEvent, tag="login"):
    pass


Event = (
    ViewEvent
    | MediaProgressEvent
    | MediaCompleteEvent
    | FavoriteEvent
    | ShareEvent
    | CommentEvent
    | SearchEvent
    | SearchClickEvent
    | DownloadEvent
    | LoginEvent
)
EVENT_TYPES: tuple[str, ...] = tuple(
    cls.__struct_config__.tag  # type: ignore[misc]
    for cls in (
        ViewEvent,
        MediaProgressEvent,
        MediaCompleteEvent,
        FavoriteEvent,
        ShareEvent,
        CommentEvent,
        SearchEvent,
        SearchClickEvent,
        DownloadEvent,
        LoginEvent,
    )
)


# --- validation -----------------------------------------------------------------------------------


class TrackingError(DomainError):
    """The body as a whole is unusable (not JSON, not an event or a batch)."""

    title = "Invalid tracking request"


class BatchTooLarge(TrackingError):
    status = 413
    title = "Content too large"


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int
    field: str | None
    message: str


@dataclass(frozen=True, slots=True)
class Accepted:
    """The valid events of a request as the tracking API holds them while it waits for their fsync:
    strings and bytes only. Decoded events hold UUIDs, which the cyclic GC tracks: held across that
    wait, a batch's worth of them reached the oldest generation, and the full collections that
    followed cost more than the parsing itself."""

    ids: list[str]  # event ids (32 lowercase hex digits), each once: a repeat in the batch is dropped
    raws: list[bytes]  # the JSON text of each, as sent
    types: list[str]  # the type of each
    valid: int  # valid events, repeats within the batch included
    rejected: list[Rejection]


@dataclass(frozen=True, slots=True)
class Parsed:
    events: list[tuple[int, Event]]  # (index in the request, event), valid ones only
    raws: list[bytes]  # the JSON text of each valid event, as sent (what the buffer keeps)
    rejected: list[Rejection]
    batch: bool


class _RawBatch(msgspec.Struct, forbid_unknown_fields=True):
    events: list[msgspec.Raw]


_decode_event = msgspec.json.Decoder(Event).decode
_decode_raw_batch = msgspec.json.Decoder(_RawBatch).decode
_decode_top = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode


def field_of(message: str) -> str | None:
    """The field a msgspec validation message names (`- at `$.type``, `missing required field `x``)."""
    for marker in ("missing required field `", "unknown field `"):
        if marker in message:
            return message.split(marker, 1)[1].split("`", 1)[0]
    if "`$." in message:
        return message.rsplit("`$.", 1)[1].rstrip("`").split("[", 1)[0]
    return None


def check_event(event: Event, now: datetime) -> Rejection | None:
    """What msgspec cannot say: the time window and the size and shape of `properties`."""
    if event.occurred_at > now + MAX_FUTURE:
        return Rejection(-1, "occurred_at", "is more than 5 minutes in the future")
    if event.occurred_at < now - MAX_PAST:
        return Rejection(-1, "occurred_at", "is more than 7 days in the past")
    raw = event.properties
    if len(raw) > MAX_PROPERTIES_BYTES:
        return Rejection(-1, "properties", f"is larger than {MAX_PROPERTIES_BYTES} bytes")
    text = _properties(raw)
    if text is not None and not text.startswith("{"):
        return Rejection(-1, "properties", "must be a JSON object")
    return None


def _raw_events(body: bytes) -> tuple[list[bytes] | list[msgspec.Raw], bool]:
    """The JSON text of each event of `body` and whether it is a batch (TrackingError when it is
    neither one event nor a batch of 1..`MAX_BATCH_EVENTS`)."""
    try:
        top = _decode_top(body)
    except msgspec.ValidationError as exc:
        raise TrackingError(f"the body must be an event or {{'events': [...]}}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise TrackingError(f"the body is not valid JSON: {exc}") from None
    if "events" not in top or "type" in top:
        return [body], False
    try:
        raws = _decode_raw_batch(body).events
    except msgspec.ValidationError as exc:
        raise TrackingError(f"`events` must be a list of events: {exc}", field="events") from None
    if not raws:
        raise TrackingError("`events` is empty", field="events")
    if len(raws) > MAX_BATCH_EVENTS:
        raise BatchTooLarge(
            f"a batch holds at most {MAX_BATCH_EVENTS} events, not {len(raws)}", field="events"
        )
    return raws, True


def _validated(
    raw: bytes | msgspec.Raw, index: int, window: tuple[datetime, datetime], now: datetime
) -> Event | Rejection:
    """The event `raw` holds, or why it is rejected. `window`: (earliest, latest) `occurred_at`."""
    try:
        event = _decode_event(raw)
    except msgspec.ValidationError as exc:
        return Rejection(index, field_of(str(exc)), str(exc))
    if window[0] <= event.occurred_at <= window[1] and not len(event.properties):
        return event  # the common case, decided without `check_event`
    problem = check_event(event, now)
    return event if problem is None else Rejection(index, problem.field, problem.message)


def parse_body(body: bytes, now: datetime) -> Parsed:
    """Validate a tracking request body event by event (see the module docstring)."""
    raws, batch = _raw_events(body)
    events: list[tuple[int, Event]] = []
    kept: list[bytes] = []
    rejected: list[Rejection] = []
    window = (now - MAX_PAST, now + MAX_FUTURE)
    for index, raw in enumerate(raws):
        outcome = _validated(raw, index, window, now)
        if type(outcome) is Rejection:
            rejected.append(outcome)
        else:
            events.append((index, outcome))
            kept.append(bytes(raw))
    return Parsed(events, kept, rejected, batch)


_TYPE_OF: dict[type, str] = {cls: cls.__struct_config__.tag for cls in Event.__args__}  # type: ignore[attr-defined]


def accept_body(body: bytes, now: datetime) -> Accepted:
    """`parse_body` as `Accepted` (see there why): no decoded event outlives the call."""
    raws, _ = _raw_events(body)
    ids: list[str] = []
    kept: list[bytes] = []
    types: list[str] = []
    rejected: list[Rejection] = []
    window = (now - MAX_PAST, now + MAX_FUTURE)
    for index, raw in enumerate(raws):  # one event at a time: each is garbage before the next
        outcome = _validated(raw, index, window, now)
        if type(outcome) is Rejection:
            rejected.append(outcome)
        else:
            ids.append(f"{outcome.event_id.int:032x}")
            types.append(_TYPE_OF[type(outcome)])
            kept.append(bytes(raw))
    valid = len(ids)
    if len(set(ids)) != valid:
        first: dict[str, int] = {}
        for position, event_id in enumerate(ids):
            first.setdefault(event_id, position)
        ids = list(first)
        kept, types = [kept[p] for p in first.values()], [types[p] for p in first.values()]
    return Accepted(ids, kept, types, valid, rejected)


# --- lake rows ------------------------------------------------------------------------------------
#
# The buffer keeps an accepted event as one line `{"u": <user id>, "r": <received, epoch ms>, "e":
# <the event's JSON as sent>}` (validated already; cheap to write on the request path). Flushing
# decodes a segment's lines at once and builds the Arrow columns of `lake_schema()`.


def buffer_line(raw_event: bytes, user_id: str | None, received_ms: int) -> bytes:
    """The buffer line of an accepted event (`raw_event`: its JSON text, as validated)."""
    user = b"null" if user_id is None else b'"' + user_id.encode() + b'"'
    # A newline in JSON text outside a string is whitespace (inside one it is always escaped).
    event = raw_event.replace(b"\n", b" ").replace(b"\r", b" ")
    return b'{"u":' + user + b',"r":' + str(received_ms).encode() + b',"e":' + event + b"}\n"


def buffer_lines(raw_events: list[bytes], user_id: str | None, received_ms: int) -> bytes:
    """`buffer_line` of each of `raw_events` (one user, one receipt time), joined: one pass in C
    over the batch instead of a Python call per event."""
    if not raw_events:
        return b""
    head = buffer_line(b"", user_id, received_ms)[:-2]  # `{"u":...,"r":...,"e":`
    everything = b"".join(raw_events)
    if b"\n" in everything or b"\r" in everything:
        raw_events = [raw.replace(b"\n", b" ").replace(b"\r", b" ") for raw in raw_events]
    return head + (b"}\n" + head).join(raw_events) + b"}\n"


class _Stored(msgspec.Struct, gc=False):
    """An accepted event read back from the buffer (validated when it was accepted). Scalars only,
    so untracked by the cyclic GC (`gc=False`): a flush holds a segment's worth of them."""

    type: str
    event_id: str  # a UUID in any form msgspec accepts (checked on acceptance); see `_canonical`
    occurred_at: datetime
    session_id: str | None = None
    platform: str | None = None
    language: str | None = None
    content_id: str | None = None
    position_s: float | None = None
    duration_s: float | None = None
    query: str | None = None
    result_count: int | None = None
    clicked_position: int | None = None
    channel: str | None = None
    properties: msgspec.Raw = NO_PROPERTIES


def _canonical(value: str | None) -> str | None:
    """The lowercase hyphenated form of a UUID that was validated on acceptance."""
    if value is None:
        return None
    if len(value) == 36:  # hyphenated already: only the case may differ
        return value.lower()
    return str(uuid.UUID(value))


class BufferLine(msgspec.Struct, gc=False):
    """One line of the buffer (see `buffer_line`); untracked like `_Stored`, which it holds."""

    e: _Stored
    u: str | None = None
    r: int = 0


def _properties(raw: msgspec.Raw) -> str | None:
    if not len(raw):
        return None
    text = bytes(raw).decode().strip()
    return None if text == "null" else text


def epoch_ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def lake_table(lines: list[BufferLine]) -> pa.Table:
    """Buffer lines as an Arrow table with exactly `lake_schema()` (ids canonical, times in UTC)."""
    import pyarrow as pa

    schema = lake_schema()
    if not lines:
        return schema.empty_table()
    stored = [line.e for line in lines]
    ts = pa.timestamp("ms", tz="UTC")
    columns = {
        "event_id": _canonical_ids([e.event_id for e in stored]),
        "event_type": [e.type for e in stored],
        "occurred_at": pa.array([e.occurred_at for e in stored], type=ts),
        "received_at": pa.array([line.r for line in lines], type=pa.int64()).cast(ts),
        "user_id": [line.u for line in lines],
        "content_id": _canonical_ids([e.content_id for e in stored]),
        "properties": [_properties(e.properties) for e in stored],
    }
    for name in schema.names:
        if name not in columns:
            columns[name] = [getattr(e, name) for e in stored]
    return pa.table({name: columns[name] for name in schema.names}, schema=schema)


def _canonical_ids(values: list[str | None]) -> pa.Array:
    """`_canonical` of each value; in one Arrow pass when all are hyphenated already (the usual)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = pa.array(values, type=pa.string())
    if pc.all(pc.equal(pc.utf8_length(ids), 36)).as_py():
        return pc.ascii_lower(ids)
    return pa.array([_canonical(value) for value in values], type=pa.string())


def tables_by_hour(table: pa.Table) -> dict[str, pa.Table]:
    """A lake table split by the UTC hour of `occurred_at`: `{hour prefix: rows of that hour}`."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if table.num_rows == 0:
        return {}
    hours = pc.divide(table["occurred_at"].cast(pa.int64()), _HOUR_MS)  # integer division
    out = {}
    for hour in sorted(pc.unique(hours).to_pylist()):
        out[hour_prefix_ms(hour * _HOUR_MS)] = table.filter(pc.equal(hours, hour))
    return out
