"""`POST /api/v1/analytics/events/track`: single events and batches, per-event rejections with index
and field, idempotency by event id, the size limits, and events on disk before the answer."""

from __future__ import annotations

import io
import json
import uuid
from datetime import UTC, datetime, timedelta

import pyarrow.parquet as pq
import pytest
from litestar.stores.memory import MemoryStore
from litestar.stores.redis import RedisStore
from litestar.testing import AsyncTestClient

from domain.analytics import events
from domain.analytics.lake import read_lines
from domain.settings import Settings
from resources.object_store import LocalObjectStore
from serving.analytics.services import SEEN_TTL, SeenEvents
from serving.app import create_app

TRACK = "/api/v1/analytics/events/track"


def view(**fields) -> dict:
    body = {
        "type": "view",
        "event_id": str(uuid.uuid4()),
        "occurred_at": datetime.now(UTC).isoformat(),
        "content_id": str(uuid.uuid4()),
        "platform": "ios",
        "language": "ar",
    }
    body.update(fields)
    return body


def buffered(settings: Settings) -> list[events.BufferLine]:
    """Every line in the lake's local buffer (what is on disk right now)."""
    folder = settings.data_dir / "analytics" / "buffer"
    return [line for path in sorted(folder.glob("*.jsonl")) for line in read_lines(path)]


def lake_rows(settings: Settings) -> list[dict]:
    store = LocalObjectStore(root=str(settings.object_store_dir.resolve()))
    return [
        row
        for key in store.list(events.LAKE_PREFIX + "/")
        for row in pq.read_table(io.BytesIO(store.get_bytes(key))).to_pylist()
    ]


async def test_a_single_event_is_on_disk_when_acknowledged(
    client: AsyncTestClient, settings: Settings
) -> None:
    sent = view()
    res = await client.post(TRACK, json=sent)
    assert res.status_code == 202, res.text
    assert res.json() == {"accepted": 1, "duplicates": 0, "rejected": []}
    (line,) = buffered(settings)
    assert str(line.e.event_id) == sent["event_id"] and line.e.type == "view"
    me = (await client.get("/api/v1/auth/me")).json()
    assert line.u == me["user_id"]  # from the token, never the body


async def test_a_batch_keeps_its_valid_events_and_names_the_bad_ones(
    client: AsyncTestClient, settings: Settings
) -> None:
    now = datetime.now(UTC)
    batch = [
        view(),
        view(type="teleport"),  # unknown type
        {k: v for k, v in view().items() if k != "content_id"},  # missing field
        view(content_id="nope"),  # malformed field
        view(occurred_at=(now + timedelta(hours=1)).isoformat()),  # far future
        view(occurred_at=(now - timedelta(days=30)).isoformat()),  # far past
        view(type="search", query="أخبار", result_count=0, language="ar", content_id=None),
        view(type="search", query="news", result_count=4, language="en"),
    ]
    del batch[6]["content_id"], batch[7]["content_id"]
    res = await client.post(TRACK, json={"events": batch})
    assert res.status_code == 202, res.text
    body = res.json()
    assert body["accepted"] == 3 and body["duplicates"] == 0
    assert [(r["index"], r["field"]) for r in body["rejected"]] == [
        (1, "type"),
        (2, "content_id"),
        (3, "content_id"),
        (4, "occurred_at"),
        (5, "occurred_at"),
    ]
    assert all(r["message"] for r in body["rejected"])
    assert sorted(str(line.e.event_id) for line in buffered(settings)) == sorted(
        batch[i]["event_id"] for i in (0, 6, 7)
    )


async def test_a_batch_with_no_valid_event_is_a_422_problem(
    client: AsyncTestClient, settings: Settings
) -> None:
    res = await client.post(TRACK, json={"events": [view(type="teleport"), view(event_id="42")]})
    assert res.status_code == 422
    assert res.headers["content-type"].startswith("application/problem+json")
    problem = res.json()
    assert [(e["index"], e["field"]) for e in problem["errors"]] == [(0, "type"), (1, "event_id")]
    single = await client.post(TRACK, json=view(user_id=str(uuid.uuid4())))  # the user comes from the token
    assert single.status_code == 422 and single.json()["errors"][0]["field"] == "user_id"
    assert buffered(settings) == []


async def test_a_repeated_event_id_is_a_duplicate_not_a_second_row(
    client: AsyncTestClient, settings: Settings
) -> None:
    first, second = view(), view()
    assert (await client.post(TRACK, json={"events": [first, first]})).json()["duplicates"] == 1
    again = await client.post(TRACK, json={"events": [first, second]})
    assert again.json() == {"accepted": 1, "duplicates": 1, "rejected": []}
    assert (await client.post(TRACK, json=second)).json() == {"accepted": 0, "duplicates": 1, "rejected": []}
    assert sorted(str(line.e.event_id) for line in buffered(settings)) == sorted(
        [first["event_id"], second["event_id"]]
    )


async def test_oversized_requests_are_413_problems(client: AsyncTestClient, settings: Settings) -> None:
    big = {"events": [view(properties={"pad": "x" * 1000})] * 1000}  # about 1.3 MB
    huge = json.dumps({"events": [view(properties={"pad": "x" * 1500}) for _ in range(6000)]}).encode()
    assert len(huge) > 9 * 1024 * 1024
    for body in (json.dumps(big).encode(), huge):
        res = await client.post(TRACK, content=body, headers={"content-type": "application/json"})
        assert res.status_code == 413, res.text[:200]
        assert res.headers["content-type"].startswith("application/problem+json")
    many = await client.post(TRACK, json={"events": [view(event_id=str(uuid.uuid4())) for _ in range(1001)]})
    assert many.status_code == 413 and many.json()["errors"][0]["field"] == "events"
    assert (await client.post(TRACK, content=b"{not json")).status_code == 400
    assert buffered(settings) == []


async def test_tracking_needs_a_token(anonymous: AsyncTestClient) -> None:
    res = await anonymous.post(TRACK, json=view())
    assert res.status_code == 401


async def test_acknowledged_events_reach_the_lake_across_a_restart(token_for, settings: Settings) -> None:
    """The app stops (its lifespan flushes the buffer) and starts again (flushing what a stopped
    process left first); crash recovery proper is covered in tests/resources/test_event_lake.py."""
    headers = {"Authorization": f"Bearer {token_for('viewer')}"}
    sent = [view() for _ in range(20)]
    async with AsyncTestClient(app=create_app(settings)) as api:
        res = await api.post(TRACK, json={"events": sent}, headers=headers)
        assert res.json()["accepted"] == 20
        assert len(buffered(settings)) == 20 and lake_rows(settings) == []
    rows = lake_rows(settings)
    assert sorted(r["event_id"] for r in rows) == sorted(e["event_id"] for e in sent)
    assert {r["platform"] for r in rows} == {"ios"} and {r["event_type"] for r in rows} == {"view"}
    assert buffered(settings) == []
    async with AsyncTestClient(app=create_app(settings)) as api:
        assert len(lake_rows(settings)) == 20  # nothing written twice


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_seen_event_ids_are_kept_for_48_hours_in_the_cache_store(
    backend: str, request: pytest.FixtureRequest
) -> None:
    if backend == "memory":
        store = MemoryStore()
    else:
        store = RedisStore.with_client(
            url=request.getfixturevalue("redis_url"), namespace=f"t{uuid.uuid4().hex}"
        )
    try:
        seen = SeenEvents(store)
        ids = [uuid.uuid4().hex for _ in range(300)]
        assert await seen.seen(ids) == set()
        await seen.remember(ids[:200])
        assert await seen.seen(ids) == set(ids[:200])
        ttl = await store.expires_in(f"analytics:seen:{ids[0]}")
        assert ttl is not None and SEEN_TTL.total_seconds() - 60 < ttl <= SEEN_TTL.total_seconds()
    finally:
        if backend == "redis":
            await store.delete_all()
            await store._redis.aclose()
