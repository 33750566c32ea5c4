"""The notifications HTTP API on both operational databases: sending, the inbox (pages, filters,
threads), read state, and who may send and read."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from litestar.testing import AsyncTestClient

from domain.schema import (
    Notification,
    NotificationEvent,
)
from tests.serving.notifications.conftest import insert

API = "/api/v1/notifications"


# --- send ----------------------------------------------------------------------------------------


async def test_send_creates_notifications_per_channel_in_the_recipients_language(
    anonymous: AsyncTestClient, people, db_sessions
) -> None:
    editor, (reader, _), (other, _) = people["editor"][1], people["reader"], people["other"]
    ghost = uuid.uuid4()

    res = await anonymous.post(
        f"{API}/send",
        headers=editor,
        json={
            "recipient_ids": [str(reader), str(other), str(ghost), str(reader)],
            "channels": ["in_app", "email"],
            "category": "content.published",
            "subject": {"ar": "مقال جديد", "en": "A new article"},
            "content": {"ar": "اقرأ الآن", "en": "Read it now"},
            "notification_type": "success",
        },
    )

    assert res.status_code == 201, res.text
    body = res.json()
    made = {(n["recipient_id"], n["channel"]): n["status"] for n in body["notifications"]}
    assert made == {
        (str(reader), "in_app"): "sent",
        (str(other), "in_app"): "sent",
        (str(reader), "email"): "pending",
        (str(other), "email"): "pending",
    }
    assert body["skipped"] == [{"recipient_id": str(ghost), "channel": "*", "reason": "no such user"}]
    inbox = (await anonymous.get(f"{API}/{reader}/inbox", headers=people["reader"][1])).json()
    (item,) = inbox["items"]
    assert (item["subject"], item["language"], item["direction"]) == ("مقال جديد", "ar", "rtl")
    assert inbox["unread_count"] == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"recipient_ids": [], "category": "c", "subject": "s"}, "recipient_ids"),
        ({"recipient_ids": ["not-a-uuid"], "category": "c", "subject": "s"}, "recipient_ids"),
        ({"recipient_ids": [str(uuid.uuid4())] * 1001, "category": "c", "subject": "s"}, "recipient_ids"),
        (
            {"recipient_ids": [str(uuid.uuid4())], "category": "c", "channels": ["fax"], "subject": "s"},
            "channels",
        ),
        ({"recipient_ids": [str(uuid.uuid4())], "category": "c"}, "template"),
        (
            {
                "recipient_ids": [str(uuid.uuid4())],
                "category": "c",
                "subject": "s",
                "scheduled_at": "2026-05-01T09:00:00",
            },
            "scheduled_at",
        ),
    ],
)
async def test_send_refuses_bad_input_naming_the_field(
    anonymous: AsyncTestClient, people, body: dict, field: str
) -> None:
    res = await anonymous.post(f"{API}/send", headers=people["editor"][1], json=body)

    assert res.status_code in (400, 422), res.text
    assert res.headers["content-type"].startswith("application/problem+json")
    assert any(field in (e.get("field") or "") for e in res.json()["errors"]), res.json()


async def test_send_with_a_template_that_cannot_render_is_a_422_naming_the_part(
    anonymous: AsyncTestClient, people
) -> None:
    editor = people["editor"][1]
    saved = await anonymous.post(
        f"{API}/templates",
        headers=editor,
        json={
            "name": "needs.title",
            "template_type": "in_app",
            "language": "en",
            "subject_template": "New: {{ title }}",
            "template_data": {"sample": {"title": "x"}},
        },
    )
    assert saved.status_code == 201

    res = await anonymous.post(
        f"{API}/send",
        headers=editor,
        json={"recipient_ids": [str(people["other"][0])], "category": "c", "template": "needs.title"},
    )

    assert res.status_code == 422
    (error,) = res.json()["errors"]
    assert (error["field"], error["part"]) == ("template", "subject") and "title" in error["message"]


# --- inbox ---------------------------------------------------------------------------------------


async def test_inbox_pages_newest_first_with_a_cursor_and_filters(
    anonymous: AsyncTestClient, people, db_sessions
) -> None:
    reader, headers = people["reader"]
    ids = insert(db_sessions, reader, n=5, category="news")
    ids += insert(db_sessions, reader, n=2, category="security")
    newest_first = list(reversed(ids))

    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await anonymous.get(f"{API}/{reader}/inbox", headers=headers, params=params)).json()
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [str(i) for i in newest_first] and pages == 3

    read = await anonymous.put(f"{API}/{ids[0]}/read", headers=headers, json={"read": True})
    assert read.json()["unread_count"] == 6

    unread = (
        await anonymous.get(f"{API}/{reader}/inbox", headers=headers, params={"status": "unread"})
    ).json()
    only_read = (
        await anonymous.get(f"{API}/{reader}/inbox", headers=headers, params={"status": "read"})
    ).json()
    security = (
        await anonymous.get(f"{API}/{reader}/inbox", headers=headers, params={"category": "security"})
    ).json()
    assert len(unread["items"]) == 6 and str(ids[0]) not in {i["id"] for i in unread["items"]}
    assert [i["id"] for i in only_read["items"]] == [str(ids[0])] and only_read["items"][0]["read"] is True
    assert [i["id"] for i in security["items"]] == [str(i) for i in reversed(ids[5:])]
    assert unread["unread_count"] == only_read["unread_count"] == 6

    bad = await anonymous.get(f"{API}/{reader}/inbox", headers=headers, params={"cursor": "%%%"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "cursor"


async def test_inbox_threads_group_the_notifications_of_one_event(
    anonymous: AsyncTestClient, people, db_sessions
) -> None:
    reader, headers = people["reader"]
    with db_sessions.begin() as session:
        event = NotificationEvent(event_type="content.published", payload={})
        session.add(event)
        session.flush()
        event_id = event.id
    threaded = insert(db_sessions, reader, n=3, category="comments", event_id=event_id)
    alone = insert(db_sessions, reader, n=1, category="news")
    await anonymous.put(f"{API}/{threaded[1]}/read", headers=headers, json={})

    flat = (await anonymous.get(f"{API}/{reader}/inbox", headers=headers)).json()
    threads = (
        await anonymous.get(f"{API}/{reader}/inbox", headers=headers, params={"threads": "true"})
    ).json()

    assert [i["thread_id"] for i in flat["items"]] == [str(alone[0])] + [str(event_id)] * 3
    assert "count" not in flat["items"][0]
    assert [(t["id"], t["thread_id"], t["count"], t["unread"]) for t in threads["items"]] == [
        (str(alone[0]), str(alone[0]), 1, 1),
        (str(threaded[2]), str(event_id), 3, 2),  # the latest item stands for the thread
    ]
    page_one = (
        await anonymous.get(f"{API}/{reader}/inbox", headers=headers, params={"threads": "true", "limit": 1})
    ).json()
    page_two = (
        await anonymous.get(
            f"{API}/{reader}/inbox",
            headers=headers,
            params={"threads": "true", "limit": 1, "cursor": page_one["next_cursor"]},
        )
    ).json()
    assert [t["thread_id"] for t in page_one["items"] + page_two["items"]] == [str(alone[0]), str(event_id)]
    assert page_two["next_cursor"] is None


async def test_scheduled_in_app_notifications_appear_when_due(
    anonymous: AsyncTestClient, people, db_sessions
) -> None:
    reader, headers = people["reader"]
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()

    res = await anonymous.post(
        f"{API}/send",
        headers=people["editor"][1],
        json={"recipient_ids": [str(reader)], "category": "c", "subject": "later", "scheduled_at": later},
    )

    assert res.status_code == 201
    [made] = res.json()["notifications"]
    before = (await anonymous.get(f"{API}/{reader}/inbox", headers=headers)).json()
    assert (before["items"], before["unread_count"]) == ([], 0)

    # The two hours pass (the row's time moves back instead of the API's clock moving on).
    with db_sessions.begin() as session:
        row = session.get(Notification, uuid.UUID(made["id"]))
        assert row.scheduled_at is not None and row.scheduled_at > datetime.now(UTC)
        row.scheduled_at = datetime.now(UTC) - timedelta(seconds=1)
    due = (await anonymous.get(f"{API}/{reader}/inbox", headers=headers)).json()
    assert [(i["id"], i["subject"], i["read"]) for i in due["items"]] == [(made["id"], "later", False)]
    assert due["unread_count"] == 1


async def test_read_state_is_idempotent_and_reversible(
    anonymous: AsyncTestClient, people, db_sessions
) -> None:
    reader, headers = people["reader"]
    (nid,) = insert(db_sessions, reader)

    first = await anonymous.put(f"{API}/{nid}/read", headers=headers, json={"read": True})
    again = await anonymous.put(f"{API}/{nid}/read", headers=headers, json={"read": True})
    back = await anonymous.put(f"{API}/{nid}/read", headers=headers, json={"read": False})

    assert first.status_code == again.status_code == back.status_code == 200
    assert (first.json()["status"], again.json()["read_at"]) == ("read", first.json()["read_at"])
    assert (back.json()["status"], back.json()["read"], back.json()["unread_count"]) == (
        "delivered",
        False,
        1,
    )


async def test_read_all(anonymous: AsyncTestClient, people, db_sessions) -> None:
    reader, headers = people["reader"]
    insert(db_sessions, reader, n=3, category="a")
    insert(db_sessions, reader, n=2, category="b")

    some = await anonymous.put(f"{API}/read-all", headers=headers, json={"category": "a"})
    rest = await anonymous.put(f"{API}/read-all", headers=headers, json={})

    assert some.json() == {"marked": 3, "unread_count": 2}
    assert rest.json() == {"marked": 2, "unread_count": 0}


# --- who may do what -----------------------------------------------------------------------------


async def test_a_viewer_cannot_send_nor_read_anothers_inbox_or_notification(
    anonymous: AsyncTestClient, people, db_sessions
) -> None:
    (reader, reader_headers), other_headers = people["reader"], people["other"][1]
    (nid,) = insert(db_sessions, reader)

    send_res = await anonymous.post(
        f"{API}/send",
        headers=other_headers,
        json={"recipient_ids": [str(reader)], "category": "c", "subject": "s"},
    )
    inbox_res = await anonymous.get(f"{API}/{reader}/inbox", headers=other_headers)
    read_res = await anonymous.put(f"{API}/{nid}/read", headers=other_headers, json={"read": True})
    delivery_res = await anonymous.get(f"{API}/delivery/{nid}", headers=other_headers)
    own = await anonymous.get(f"{API}/delivery/{nid}", headers=reader_headers)
    manager = await anonymous.get(f"{API}/{reader}/inbox", headers=people["editor"][1])

    assert (send_res.status_code, inbox_res.status_code) == (403, 403)
    assert (read_res.status_code, delivery_res.status_code) == (404, 404)
    assert own.status_code == 200 and manager.status_code == 200
    assert [i["id"] for i in manager.json()["items"]] == [str(nid)]
