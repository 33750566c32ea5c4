"""Tracked events: per-event validation of a tracking body and the lake rows they become."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest

from domain.analytics import events

NOW = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)


def event(kind: str = "view", **fields) -> dict:
    body = {"type": kind, "event_id": str(uuid.uuid4()), "occurred_at": NOW.isoformat()}
    body.update(fields)
    return body


CONTENT = str(uuid.uuid4())
ONE_OF_EACH = [
    event("view", content_id=CONTENT, platform="web", language="ar", session_id="s-1"),
    event("media_progress", content_id=CONTENT, position_s=30.5, duration_s=600),
    event("media_complete", content_id=CONTENT, duration_s=600),
    event("favorite", content_id=CONTENT),
    event("share", content_id=CONTENT, channel="whatsapp"),
    event("comment", content_id=CONTENT),
    event("search", query="كرة القدم", result_count=0, language="ar"),
    event("search_click", query="football", content_id=CONTENT, clicked_position=3),
    event("download", content_id=CONTENT),
    event("login", properties={"method": "password"}),
]


def parse(body: object) -> events.Parsed:
    return events.parse_body(json.dumps(body).encode(), NOW)


def test_every_event_type_is_accepted_alone_and_in_a_batch() -> None:
    assert {e["type"] for e in ONE_OF_EACH} == set(events.EVENT_TYPES)
    for one in ONE_OF_EACH:
        single = parse(one)
        assert not single.batch and single.rejected == [] and len(single.events) == 1
    batch = parse({"events": ONE_OF_EACH})
    assert batch.batch and batch.rejected == []
    assert [index for index, _ in batch.events] == list(range(len(ONE_OF_EACH)))
    assert [json.loads(raw)["event_id"] for raw in batch.raws] == [e["event_id"] for e in ONE_OF_EACH]


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (event("teleport", content_id=CONTENT), "type"),
        ({"event_id": str(uuid.uuid4()), "occurred_at": NOW.isoformat()}, "type"),
        (event("view"), "content_id"),
        (event("view", content_id="not-a-uuid"), "content_id"),
        (event("view", content_id=CONTENT, event_id="42"), "event_id"),
        (event("view", content_id=CONTENT, occurred_at="2026-03-01T12:00:00"), "occurred_at"),
        (event("view", content_id=CONTENT, occurred_at="yesterday"), "occurred_at"),
        (
            event("view", content_id=CONTENT, occurred_at=(NOW + timedelta(minutes=6)).isoformat()),
            "occurred_at",
        ),
        (event("view", content_id=CONTENT, occurred_at=(NOW - timedelta(days=8)).isoformat()), "occurred_at"),
        (event("media_progress", content_id=CONTENT, position_s=-1, duration_s=10), "position_s"),
        (event("search", query="q", result_count=1), "language"),
        (event("search", query="q", result_count="many", language="en"), "result_count"),
        (event("search_click", query="q", content_id=CONTENT, clicked_position=0), "clicked_position"),
        (event("view", content_id=CONTENT, platform="symbian"), "platform"),
        (event("view", content_id=CONTENT, user_id=str(uuid.uuid4())), "user_id"),
        (event("view", content_id=CONTENT, properties={"x": "y" * 3000}), "properties"),
        (event("view", content_id=CONTENT, properties=[1, 2]), "properties"),
    ],
)
def test_a_bad_event_is_rejected_with_its_index_and_field(bad: dict, field: str) -> None:
    good = event("view", content_id=CONTENT)
    parsed = parse({"events": [good, bad, good | {"event_id": str(uuid.uuid4())}]})
    assert [index for index, _ in parsed.events] == [0, 2]
    assert [(r.index, r.field) for r in parsed.rejected] == [(1, field)], parsed.rejected
    alone = parse(bad)
    assert alone.events == [] and [(r.index, r.field) for r in alone.rejected] == [(0, field)]


def test_the_time_window_is_inclusive_of_its_edges() -> None:
    edge_future = event("login", occurred_at=(NOW + timedelta(minutes=5)).isoformat())
    edge_past = event("login", occurred_at=(NOW - timedelta(days=7)).isoformat())
    assert parse({"events": [edge_future, edge_past]}).rejected == []


@pytest.mark.parametrize(
    ("body", "error", "status"),
    [
        (b"not json", events.TrackingError, 400),
        (b"[1, 2]", events.TrackingError, 400),
        (b'{"events": 3}', events.TrackingError, 400),
        (b'{"events": []}', events.TrackingError, 400),
        (json.dumps({"events": [event("login")] * 1001}).encode(), events.BatchTooLarge, 413),
    ],
)
def test_an_unusable_body_is_refused_whole(body: bytes, error: type, status: int) -> None:
    with pytest.raises(error) as caught:
        events.parse_body(body, NOW)
    assert caught.value.status == status


def test_hour_prefix_is_the_utc_hour() -> None:
    at = datetime(2026, 3, 1, 1, 59, tzinfo=timezone(timedelta(hours=3)))  # 2026-02-28 22:59 UTC
    assert events.hour_prefix(at) == "events/dt=2026-02-28/hour=22"
    with pytest.raises(ValueError, match="aware"):
        events.hour_prefix(datetime(2026, 3, 1))


def test_buffer_lines_become_lake_rows_with_the_lake_schema() -> None:
    user = str(uuid.uuid4())
    sent = [
        event("view", content_id=CONTENT.upper(), occurred_at="2026-03-01T14:05:06.789+02:00"),
        event("search", query="news", result_count=7, language="en", properties={"page": 2}),
        event("media_progress", content_id=CONTENT, position_s=1.5, duration_s=90, session_id="s"),
    ]
    sent[0]["event_id"] = sent[0]["event_id"].upper().replace("-", "")
    parsed = parse({"events": sent})
    lines = b"".join(events.buffer_line(raw, user, 1_772_368_200_000) for raw in parsed.raws)
    decoded = msgspec.json.decode(
        b"[" + lines.strip().replace(b"\n", b",") + b"]", type=list[events.BufferLine]
    )
    table = events.lake_table(decoded)
    assert table.schema == events.lake_schema()
    rows = table.to_pylist()
    assert rows[0]["event_id"] == str(uuid.UUID(sent[0]["event_id"]))  # canonical form
    assert rows[0]["content_id"] == CONTENT
    assert rows[0]["occurred_at"] == datetime(2026, 3, 1, 12, 5, 6, 789000, tzinfo=UTC)
    assert rows[0]["received_at"] == datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    assert {r["user_id"] for r in rows} == {user}
    assert rows[1]["event_type"] == "search" and rows[1]["result_count"] == 7 and rows[1]["language"] == "en"
    assert json.loads(rows[1]["properties"]) == {"page": 2} and rows[0]["properties"] is None
    assert rows[2]["position_s"] == 1.5 and rows[2]["duration_s"] == 90.0 and rows[2]["session_id"] == "s"
    assert rows[1]["content_id"] is None and rows[0]["query"] is None
    hours = events.tables_by_hour(table)
    assert list(hours) == ["events/dt=2026-03-01/hour=12"]
    assert hours["events/dt=2026-03-01/hour=12"].num_rows == 3


def test_a_pretty_printed_event_stays_on_one_buffer_line() -> None:
    body = json.dumps(event("login", properties={"note": "a\nb"}), indent=2).encode()
    parsed = events.parse_body(body, NOW)
    line = events.buffer_line(parsed.raws[0], None, 0)
    assert line.count(b"\n") == 1 and line.endswith(b"\n")
    assert msgspec.json.decode(line, type=events.BufferLine).e.type == "login"
