"""The content API end to end through HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from litestar.testing import AsyncTestClient
from sqlalchemy.orm import Session

from domain.content import publish_due
from domain.db import sync_engine
from domain.ids import SYSTEM_ACTOR
from domain.schema import OutboxEvent

API = "/api/v1/content"


def article(slug: str, **extra) -> dict:
    return {
        "type": "article",
        "title": {"ar": "مقالة عن المدرسة", "en": f"Story {slug}"},
        "slug": slug,
        "tags": ["news"],
        **extra,
    }


def outbox_types(url: str) -> list[str]:
    engine = sync_engine(url)
    with engine.connect() as conn:
        types = list(conn.scalars(sa.select(OutboxEvent.event_type).order_by(OutboxEvent.seq)))
    engine.dispose()
    return types


async def test_create_get_update_publish_delete(client: AsyncTestClient, migrated_url: str) -> None:
    created = await client.post(
        API, json=article("first-story", description={"en": "Body"}, metadata={"k": 1})
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["status"] == "draft" and body["version"] == 1
    assert body["title"] == {"ar": "مقالة عن المدرسة", "en": "Story first-story"}
    assert created.headers["etag"] == '"v1"'
    assert created.headers["location"] == f"{API}/{body['id']}"
    item = f"{API}/{body['id']}"

    got = await client.get(item)
    assert (
        got.status_code == 200 and got.json()["slug"] == "first-story" and got.json()["metadata"] == {"k": 1}
    )
    assert (await client.get(item, headers={"If-None-Match": '"v1"'})).status_code == 304

    updated = await client.patch(
        item, json={"title": {"en": "Renamed"}, "status": "in_review"}, headers={"If-Match": '"v1"'}
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["title"] == {"ar": "مقالة عن المدرسة", "en": "Renamed"}
    assert updated.json()["status"] == "in_review" and updated.headers["etag"] == '"v2"'

    published = await client.post(f"{item}/publish", headers={"If-Match": '"v2"'})
    assert published.status_code == 200, published.text
    assert published.json()["status"] == "published" and published.json()["published_at"]

    assert (await client.delete(item)).status_code == 204
    assert (await client.get(item)).status_code == 404
    assert outbox_types(migrated_url) == [
        "content.created",
        "content.updated",
        "content.published",
        "content.deleted",
    ]


async def test_schedule_then_scheduler_publishes(client: AsyncTestClient, migrated_url: str) -> None:
    item = (await client.post(API, json=article("scheduled-one"))).json()
    url = f"{API}/{item['id']}"
    await client.patch(url, json={"status": "in_review"}, headers={"If-Match": '"v1"'})
    when = datetime.now(UTC) + timedelta(minutes=5)
    scheduled = await client.post(f"{url}/schedule", json={"publish_at": when.isoformat()})
    assert scheduled.status_code == 200, scheduled.text
    assert scheduled.json()["status"] == "scheduled"

    engine = sync_engine(migrated_url)
    with Session(engine) as session, session.begin():
        assert publish_due(session, datetime.now(UTC)) == []
    with Session(engine) as session, session.begin():
        published = publish_due(session, when + timedelta(seconds=1))
    engine.dispose()
    assert [str(i) for i in published] == [item["id"]]
    got = (await client.get(url)).json()
    assert got["status"] == "published"
    assert outbox_types(migrated_url)[-1] == "content.published"


async def test_list_filters_search_and_cursor_pagination(client: AsyncTestClient) -> None:
    ids = []
    for i in range(5):
        payload = article(f"item-{i}", tags=["sport" if i % 2 else "news"])
        if i == 4:
            payload["title"] = {"en": "English only"}
            payload["type"] = "video"
        ids.append((await client.post(API, json=payload)).json()["id"])

    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(API, params=params)).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))  # newest first, each once

    sport = (await client.get(API, params={"tag": "sport"})).json()["items"]
    assert {i["slug"] for i in sport} == {"item-1", "item-3"}
    videos = (await client.get(API, params={"type": "video"})).json()["items"]
    assert [v["slug"] for v in videos] == ["item-4"]
    arabic = (await client.get(API, params={"language": "ar"})).json()["items"]
    assert len(arabic) == 4 and all("ar" in i["title"] for i in arabic)
    drafts = (await client.get(API, params={"status": "draft"})).json()["items"]
    assert len(drafts) == 5
    assert (await client.get(API, params={"status": "published"})).json()["items"] == []


async def test_search_folds_arabic_forms_and_english_case(client: AsyncTestClient) -> None:
    await client.post(API, json={"type": "article", "title": {"ar": "الْمَدْرَسَةُ الجديدة", "en": "New School"}})
    await client.post(API, json={"type": "video", "title": {"ar": "أخبار الرياضة"}, "slug": "sport-news"})

    async def search(q: str) -> list[str]:
        res = await client.get(API, params={"q": q})
        assert res.status_code == 200, res.text
        return [i["title"].get("en") or i["title"]["ar"] for i in res.json()["items"]]

    assert await search("مدرسة") == ["New School"]  # no diacritics, no article, ة vs ه
    assert await search("المدرسه") == ["New School"]
    assert await search("school") == ["New School"]
    assert await search("SCH") == ["New School"]  # word-prefix
    assert await search("اخبار") == ["أخبار الرياضة"]  # أ folds to ا
    assert await search("news school") == []  # every word must match
    assert await search("rugby") == []


async def test_every_write_records_its_author(
    anonymous: AsyncTestClient, new_user, migrated_url: str
) -> None:
    """create, update, schedule, publish and delete name the user who made them, on the item and on
    each event; the scheduler's publication names the system."""
    editor_id, token = new_user("writer-editor", ["editor"])
    other_id, other_token = new_user("second-editor", ["editor"])
    as_editor, as_other = {"Authorization": f"Bearer {token}"}, {"Authorization": f"Bearer {other_token}"}

    created = (await anonymous.post(API, json=article("authored"), headers=as_editor)).json()
    assert created["created_by"] == created["updated_by"] == str(editor_id)
    item = f"{API}/{created['id']}"
    changed = await anonymous.patch(
        item, json={"status": "in_review"}, headers={**as_other, "If-Match": '"v1"'}
    )
    assert (changed.json()["created_by"], changed.json()["updated_by"]) == (str(editor_id), str(other_id))
    at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    scheduled = await anonymous.post(f"{item}/schedule", json={"publish_at": at}, headers=as_editor)
    assert scheduled.status_code == 200 and scheduled.json()["updated_by"] == str(editor_id)
    published = await anonymous.post(f"{item}/publish", headers=as_other)
    assert published.status_code == 200 and published.json()["updated_by"] == str(other_id)
    assert (await anonymous.delete(item, headers=as_editor)).status_code == 204

    # A second item is published by the scheduler, not by a person.
    due = (await anonymous.post(API, json=article("due-later"), headers=as_editor)).json()
    due_url = f"{API}/{due['id']}"
    await anonymous.patch(due_url, json={"status": "in_review"}, headers={**as_editor, "If-Match": '"v1"'})
    await anonymous.post(f"{due_url}/schedule", json={"publish_at": at}, headers=as_editor)
    engine = sync_engine(migrated_url)
    with Session(engine) as session, session.begin():
        assert publish_due(session, datetime.now(UTC) + timedelta(hours=2)) == [uuid.UUID(due["id"])]
    with engine.connect() as conn:
        events = conn.execute(
            sa.select(OutboxEvent.event_type, OutboxEvent.aggregate_id, OutboxEvent.payload).order_by(
                OutboxEvent.seq
            )
        ).all()
    engine.dispose()
    actors = [
        (kind, payload["actor"]) for kind, aggregate, payload in events if str(aggregate) == created["id"]
    ]
    assert actors == [
        ("content.created", str(editor_id)),
        ("content.updated", str(other_id)),
        ("content.scheduled", str(editor_id)),
        ("content.published", str(other_id)),
        ("content.deleted", str(editor_id)),
    ]
    by_scheduler = [
        p["actor"]
        for kind, aggregate, p in events
        if str(aggregate) == due["id"] and kind == "content.published"
    ]
    assert by_scheduler == [str(SYSTEM_ACTOR)]
    assert (await anonymous.get(due_url, headers=as_editor)).json()["updated_by"] == str(SYSTEM_ACTOR)
