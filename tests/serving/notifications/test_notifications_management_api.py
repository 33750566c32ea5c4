"""The notifications HTTP API on both operational databases: preferences, contacts, subscriptions,
templates, deliveries and broadcasts, each with who may use them."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from litestar.testing import AsyncTestClient
from sqlalchemy.orm import Session, sessionmaker

from domain.notifications import contacts
from domain.schema import (
    Broadcast,
    DeliveryLog,
    NotificationContact,
    NotificationTemplate,
)

API = "/api/v1/notifications"


# --- preferences ---------------------------------------------------------------------------------


async def test_preferences_are_upserted_and_listed(anonymous: AsyncTestClient, people) -> None:
    headers = people["reader"][1]
    body = {
        "preferences": [
            {
                "channel": "email",
                "frequency": "daily",
                "quiet_hours_start": "22:00",
                "quiet_hours_end": "07:00",
                "timezone": "Asia/Riyadh",
            },
            {"channel": "sms", "notification_type": "content.published", "is_enabled": False},
        ]
    }

    saved = await anonymous.post(f"{API}/preferences", headers=headers, json=body)
    body["preferences"][1]["is_enabled"] = True
    again = await anonymous.post(f"{API}/preferences", headers=headers, json=body)
    listed = await anonymous.get(f"{API}/preferences", headers=headers)

    assert saved.status_code == again.status_code == 200, saved.text
    prefs = {(p["notification_type"], p["channel"]): p for p in listed.json()["preferences"]}
    assert set(prefs) == {("*", "email"), ("content.published", "sms")}
    assert (prefs["*", "email"]["quiet_hours_start"], prefs["*", "email"]["quiet_hours_end"]) == (
        "22:00",
        "07:00",
    )
    assert prefs["content.published", "sms"]["is_enabled"] is True


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"quiet_hours_start": "22:00", "quiet_hours_end": "22:00"}, "preferences[1].quiet_hours_end"),
        ({"quiet_hours_start": "25:00", "quiet_hours_end": "07:00"}, "preferences[1].quiet_hours_start"),
        ({"quiet_hours_start": "22:00", "quiet_hours_end": "7pm"}, "preferences[1].quiet_hours_end"),
        ({"quiet_hours_start": "22:00"}, "preferences[1].quiet_hours_end"),
        ({"timezone": "Mars/Olympus_Mons"}, "preferences[1].timezone"),
    ],
)
async def test_impossible_preferences_are_a_422_naming_field_and_index_and_nothing_is_saved(
    anonymous: AsyncTestClient, people, bad: dict, field: str
) -> None:
    headers = people["reader"][1]
    body = {"preferences": [{"channel": "email", "is_enabled": False}, {"channel": "push", **bad}]}

    res = await anonymous.post(f"{API}/preferences", headers=headers, json=body)

    assert res.status_code == 422, res.text
    assert res.json()["errors"][0]["field"] == field
    assert (await anonymous.get(f"{API}/preferences", headers=headers)).json()["preferences"] == []


async def test_another_users_preferences_need_the_manage_permission(
    anonymous: AsyncTestClient, people
) -> None:
    reader = people["reader"][0]
    body = {"user_id": str(reader), "preferences": [{"channel": "email", "is_enabled": False}]}

    by_viewer = await anonymous.post(f"{API}/preferences", headers=people["other"][1], json=body)
    by_manager = await anonymous.post(f"{API}/preferences", headers=people["editor"][1], json=body)

    assert by_viewer.status_code == 403
    assert by_manager.status_code == 200 and by_manager.json()["user_id"] == str(reader)


# --- contacts and subscriptions ------------------------------------------------------------------


async def test_contacts_validate_and_never_return_the_webhook_secret(
    anonymous: AsyncTestClient, people, db_sessions
) -> None:
    reader, headers = people["reader"]
    secret = "s3cret-signing-key-0123456789"

    phone = await anonymous.put(
        f"{API}/contacts", headers=headers, json={"channel": "sms", "address": "+966 50 123 4567"}
    )
    hook = await anonymous.put(
        f"{API}/contacts",
        headers=headers,
        json={"channel": "webhook", "address": "https://hooks.example.test/in", "secret": secret},
    )
    bad_phone = await anonymous.put(
        f"{API}/contacts", headers=headers, json={"channel": "sms", "address": "0501234567"}
    )
    bad_url = await anonymous.put(
        f"{API}/contacts",
        headers=headers,
        json={"channel": "webhook", "address": "ftp://x.test/", "secret": secret},
    )
    no_secret = await anonymous.put(
        f"{API}/contacts", headers=headers, json={"channel": "webhook", "address": "https://x.test/"}
    )
    listed = await anonymous.get(f"{API}/contacts", headers=headers)

    assert phone.status_code == hook.status_code == 200, phone.text
    assert phone.json()["address"] == "+966501234567"
    assert [r.json()["errors"][0]["field"] for r in (bad_phone, bad_url, no_secret)] == [
        "address",
        "address",
        "secret",
    ]
    assert {c["channel"] for c in listed.json()} == {"sms", "webhook"}
    assert secret not in listed.text and "secret_encrypted" not in listed.text
    assert [c["has_secret"] for c in listed.json() if c["channel"] == "webhook"] == [True]
    with db_sessions() as session:
        stored = session.scalar(
            sa.select(NotificationContact).where(NotificationContact.channel == "webhook")
        )
    assert secret not in stored.secret_encrypted
    assert contacts.decrypt(stored.secret_encrypted, anonymous.app.state.auth.keys) == secret

    other_delete = await anonymous.delete(f"{API}/contacts/{phone.json()['id']}", headers=people["other"][1])
    deleted = await anonymous.delete(f"{API}/contacts/{phone.json()['id']}", headers=headers)
    assert (other_delete.status_code, deleted.status_code) == (404, 204)


async def test_subscriptions_follow_list_and_unfollow_topics(anonymous: AsyncTestClient, people) -> None:
    headers = people["reader"][1]
    series = f"series:{uuid.uuid4()}"

    first = await anonymous.post(f"{API}/subscriptions", headers=headers, json={"topic": series})
    again = await anonymous.post(f"{API}/subscriptions", headers=headers, json={"topic": series})
    tag = await anonymous.post(f"{API}/subscriptions", headers=headers, json={"topic": "tag:Football"})
    bad = await anonymous.post(f"{API}/subscriptions", headers=headers, json={"topic": "series:not-an-id"})
    listed = await anonymous.get(f"{API}/subscriptions", headers=headers)
    gone = await anonymous.delete(f"{API}/subscriptions", headers=headers, params={"topic": series})
    gone_again = await anonymous.delete(f"{API}/subscriptions", headers=headers, params={"topic": series})

    assert (first.status_code, again.status_code, tag.status_code) == (201, 200, 201)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "topic"
    assert [s["topic"] for s in listed.json()] == [series, "tag:football"]
    assert (gone.status_code, gone_again.status_code) == (204, 404)


# --- templates -----------------------------------------------------------------------------------


def _template(**fields: object) -> dict:
    return {
        "name": "episode.published",
        "template_type": "email",
        "language": "ar",
        "subject_template": "حلقة جديدة: {{ title }}",
        "content_template": "مرحبا {{ user.username }}\nشاهد {{ title }}",
        "template_data": {"sample": {"title": "فنجان", "user": {"username": "sara"}}},
        **fields,
    }


@pytest.mark.parametrize(
    ("fields", "field", "part", "line"),
    [
        ({"content_template": "سطر\n{{ title "}, "content_template", "text", 2),
        ({"content_template": "one\ntwo\n{% for x in %}{% endfor %}"}, "content_template", "text", 3),
        ({"subject_template": "{{ missing_variable }}"}, "subject_template", "subject", 1),
        ({"html_template": "<p>\n{{ nope.deeper }}</p>"}, "html_template", "html", 2),
    ],
)
async def test_template_errors_are_caught_at_save_time_with_part_and_line(
    anonymous: AsyncTestClient, people, db_sessions, fields: dict, field: str, part: str, line: int
) -> None:
    res = await anonymous.post(f"{API}/templates", headers=people["editor"][1], json=_template(**fields))

    assert res.status_code == 422, res.text
    (error,) = res.json()["errors"]
    assert (error["field"], error["part"], error["line"]) == (field, part, line)
    assert error["message"]
    with db_sessions() as session:  # nothing saved (the app's default templates aside)
        saved = sa.select(sa.func.count()).where(NotificationTemplate.name == "episode.published")
        assert session.scalar(saved) == 0


async def test_saving_a_template_adds_a_version_and_deactivates_the_previous(
    anonymous: AsyncTestClient, people, db_sessions
) -> None:
    editor = people["editor"][1]

    one = await anonymous.post(f"{API}/templates", headers=editor, json=_template())
    two = await anonymous.post(
        f"{API}/templates", headers=editor, json=_template(subject_template="جديد: {{ title }}")
    )
    english = await anonymous.post(
        f"{API}/templates", headers=editor, json=_template(language="en", subject_template="New: {{ title }}")
    )
    active = (
        await anonymous.get(f"{API}/templates", headers=editor, params={"name": "episode.published"})
    ).json()
    versions = (await anonymous.get(f"{API}/templates/episode.published/versions", headers=editor)).json()
    missing = await anonymous.get(f"{API}/templates/nothing.here/versions", headers=editor)

    assert (one.status_code, two.status_code, english.status_code) == (201, 201, 201)
    assert (one.json()["version"], two.json()["version"], english.json()["version"]) == (1, 2, 1)
    assert [(t["language"], t["version"]) for t in active] == [("ar", 2), ("en", 1)]
    assert [(v["language"], v["version"], v["is_active"]) for v in versions] == [
        ("ar", 2, True),
        ("ar", 1, False),
        ("en", 1, True),
    ]
    assert missing.status_code == 404

    preview = await anonymous.post(
        f"{API}/templates/preview", headers=editor, json={"template_id": two.json()["id"]}
    )
    assert preview.status_code == 200
    assert (preview.json()["subject"], preview.json()["direction"]) == ("جديد: فنجان", "rtl")
    assert 'dir="rtl"' in preview.json()["html"]

    reader = people["reader"][0]  # locale ar-SA: falls back to the ar template
    sent = await anonymous.post(
        f"{API}/send",
        headers=editor,
        json={
            "recipient_ids": [str(reader)],
            "channels": ["email"],
            "category": "episode.published",
            "template": "episode.published",
            "data": {"title": "فنجان"},
        },
    )
    assert sent.status_code == 201, sent.text
    with db_sessions() as session:
        log = session.scalar(sa.select(DeliveryLog))
        assert log.status == "queued" and log.destination.endswith("@example.test")


async def test_preview_renders_given_sources_and_reports_errors(anonymous: AsyncTestClient, people) -> None:
    editor = people["editor"][1]

    ok = await anonymous.post(
        f"{API}/templates/preview",
        headers=editor,
        json={
            "template_type": "in_app",
            "language": "en",
            "subject_template": "{{ views | number }} views",
            "data": {"views": 12345},
        },
    )
    broken = await anonymous.post(
        f"{API}/templates/preview",
        headers=editor,
        json={"template_type": "sms", "language": "en", "content_template": "{{ a }"},
    )
    nothing = await anonymous.post(f"{API}/templates/preview", headers=editor, json={})

    assert ok.status_code == 200 and ok.json()["subject"] == "12,345 views"
    assert broken.status_code == 422 and broken.json()["errors"][0]["part"] == "text"
    assert nothing.status_code == 422 and nothing.json()["errors"][0]["field"] == "template_id"


# --- deliveries ----------------------------------------------------------------------------------


async def test_the_delivery_report_lists_every_destination_without_secrets(
    anonymous: AsyncTestClient, people, db_sessions
) -> None:
    editor = people["editor"][1]
    reader, headers = people["reader"]
    secret = "another-signing-secret-42"
    for url in ("https://a.example.test/hook", "https://b.example.test/hook"):
        await anonymous.put(
            f"{API}/contacts", headers=headers, json={"channel": "webhook", "address": url, "secret": secret}
        )

    sent = await anonymous.post(
        f"{API}/send",
        headers=editor,
        json={
            "recipient_ids": [str(reader)],
            "channels": ["webhook", "sms"],
            "category": "c",
            "subject": "s",
        },
    )
    by_channel = {n["channel"]: n["id"] for n in sent.json()["notifications"]}
    hook = (await anonymous.get(f"{API}/delivery/{by_channel['webhook']}", headers=headers)).json()
    sms = (await anonymous.get(f"{API}/delivery/{by_channel['sms']}", headers=editor)).json()

    assert (hook["status"], hook["channel"], hook["recipient_id"]) == ("pending", "webhook", str(reader))
    assert sorted(d["destination"] for d in hook["deliveries"]) == [
        "https://a.example.test/hook",
        "https://b.example.test/hook",
    ]
    delivery = hook["deliveries"][0]
    assert set(delivery) == {
        "id",
        "channel",
        "destination",
        "status",
        "attempts",
        "last_attempt",
        "next_retry",
        "error_message",
        "metadata",
        "created_at",
        "updated_at",
    }
    assert (delivery["status"], delivery["attempts"]) == ("queued", 0)
    assert delivery["metadata"] == {}
    with db_sessions() as session:  # the delivery job does get the encrypted secret
        logs = list(session.scalars(sa.select(DeliveryLog).where(DeliveryLog.channel == "webhook")))
    assert len(logs) == 2 and all("secret_encrypted" in log.delivery_metadata for log in logs)
    assert sms["status"] == "failed"
    assert sms["deliveries"][0]["error_message"] == "the recipient has no phone number for SMS"


# --- broadcasts ----------------------------------------------------------------------------------


async def test_a_broadcast_is_queued_with_the_number_of_users_matching_now(
    anonymous: AsyncTestClient, people, new_user, db_sessions
) -> None:
    editor = people["editor"][1]
    for i in range(3):
        new_user(f"ar-viewer-{i}-{uuid.uuid4().hex[:4]}", ["viewer"], preferences={"language": "ar"})
    new_user(f"en-viewer-{uuid.uuid4().hex[:4]}", ["viewer"], preferences={"language": "en"})

    res = await anonymous.post(
        f"{API}/broadcast",
        headers=editor,
        json={
            "name": "Ramadan schedule",
            "channels": ["in_app", "email"],
            "subject": {"ar": "جدول رمضان", "en": "Ramadan schedule"},
            "content": {"ar": "...", "en": "..."},
            "criteria": {"roles": ["viewer"], "languages": ["ar"]},
        },
    )

    assert res.status_code == 202, res.text
    body = res.json()
    assert body["status"] == "queued" and body["matching_recipients"] == 4  # 3 + the ar-SA reader
    status = (await anonymous.get(body["status_url"], headers=editor)).json()
    assert (status["status"], status["percent"], status["total_recipients"]) == ("queued", 0.0, None)
    assert status["criteria"] == {"roles": ["viewer"], "languages": ["ar"]}
    with db_sessions() as session:
        row = session.get(Broadcast, uuid.UUID(body["broadcast_id"]))
        assert row.channels == ["in_app", "email"] and row.message["subject"]["ar"] == "جدول رمضان"


async def test_a_broadcast_matching_nobody_is_accepted_with_zero(anonymous: AsyncTestClient, people) -> None:
    res = await anonymous.post(
        f"{API}/broadcast",
        headers=people["editor"][1],
        json={"name": "nobody", "subject": "hi", "criteria": {"subscribed_to": ["tag:nobody-follows-this"]}},
    )

    assert res.status_code == 202
    assert res.json()["matching_recipients"] == 0


@pytest.mark.parametrize(
    ("criteria", "field"),
    [
        ({"roles": ["viewer", "emperor"]}, "criteria.roles[1]"),
        ({"languages": ["arabic!"]}, "criteria.languages[0]"),
        ({"subscribed_to": ["planet:mars"]}, "criteria.subscribed_to[0]"),
        ({"active_within_days": 0}, "criteria.active_within_days"),
    ],
)
async def test_broadcast_criteria_are_validated(
    anonymous: AsyncTestClient, people, db_sessions, criteria: dict, field: str
) -> None:
    res = await anonymous.post(
        f"{API}/broadcast",
        headers=people["editor"][1],
        json={"name": "x", "subject": "s", "criteria": criteria},
    )

    assert res.status_code == 422, res.text
    assert res.json()["errors"][0]["field"] == field
    with db_sessions() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Broadcast)) == 0


async def test_broadcasts_need_their_permission(anonymous: AsyncTestClient, people) -> None:
    res = await anonymous.post(
        f"{API}/broadcast", headers=people["other"][1], json={"name": "x", "subject": "s"}
    )
    assert res.status_code == 403


def test_recipient_query_is_ordered_by_id_for_the_job(people, db_sessions: sessionmaker[Session]) -> None:
    from domain.notifications import audience

    with db_sessions() as session:
        ids = list(session.scalars(audience.recipient_query({"roles": ["viewer"]})))
        after = list(
            session.scalars(audience.recipient_query({"roles": ["viewer"]}).where(sa.literal(True)).limit(1))
        )
    assert ids == sorted(ids) and len(ids) == 2 and after == ids[:1]
