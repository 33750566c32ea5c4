"""Attacks on other people's notifications through the HTTP API (security review, finding 13).

A delivery report is for the notification's recipient, its sender and managers
(`notifications:manage`); merely holding `notifications:send` does not open everyone's. Only the
recipient sees their own destinations in full: for anyone else email addresses, phone numbers,
device tokens and webhook URLs are masked, in the destination and in any error text naming it.
"""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from litestar.testing import AsyncTestClient
from sqlalchemy.orm import Session, sessionmaker

from domain.schema import DeliveryLog, Role
from tests.serving.conftest import bearer

API = "/api/v1/notifications"
PHONE = "+966512345612"
HOOK = "https://hooks.example.test/private/path-with-a-token?key=abc"


@pytest.fixture
def people(new_user, db_sessions: sessionmaker[Session]) -> dict[str, tuple[uuid.UUID, dict[str, str]]]:
    with db_sessions.begin() as session:  # a deployment's own role: may send, may not manage
        session.add(
            Role(name="notifier", description="sends notifications", permissions=["notifications:send"])
        )
    out = {}
    for name, roles in (
        ("sender", ["editor"]),
        ("manager", ["editor"]),
        ("notifier", ["notifier"]),
        ("nora", ["viewer"]),
    ):
        user_id, token = new_user(f"{name}-{uuid.uuid4().hex[:6]}", roles)
        out[name] = (user_id, bearer(token))
    return out


async def send(client: AsyncTestClient, headers: dict, recipient: uuid.UUID) -> dict[str, str]:
    res = await client.post(
        f"{API}/send",
        headers=headers,
        json={
            "recipient_ids": [str(recipient)],
            "channels": ["email", "sms", "webhook"],
            "category": "c",
            "subject": "s",
        },
    )
    assert res.status_code == 201, res.text
    return {n["channel"]: n["id"] for n in res.json()["notifications"]}


def destinations(report: dict) -> list[str]:
    return [d["destination"] for d in report["deliveries"]]


async def test_only_the_recipient_sees_destinations_and_only_the_involved_see_the_report(
    anonymous: AsyncTestClient, people, db_sessions: sessionmaker[Session]
) -> None:
    (nora, nora_headers), sender, manager, notifier = (
        people["nora"],
        people["sender"][1],
        people["manager"][1],
        people["notifier"][1],
    )
    email = (await anonymous.get("/api/v1/auth/me", headers=nora_headers)).json()
    email = f"{email['username']}@example.test"
    for channel, address, secret in (("sms", PHONE, None), ("webhook", HOOK, "a-signing-secret-of-16+")):
        res = await anonymous.put(
            f"{API}/contacts",
            headers=nora_headers,
            json={"channel": channel, "address": address, **({"secret": secret} if secret else {})},
        )
        assert res.status_code == 200, res.text
    ids = await send(anonymous, sender, nora)
    with db_sessions.begin() as session:  # what a failed SMTP attempt leaves behind
        log = session.scalar(
            sa.select(DeliveryLog).where(DeliveryLog.notification_id == uuid.UUID(ids["email"]))
        )
        log.error_message = f"550 mailbox unavailable: <{email}>"

    reports = {
        who: {
            channel: await anonymous.get(f"{API}/delivery/{nid}", headers=headers)
            for channel, nid in ids.items()
        }
        for who, headers in (
            ("nora", nora_headers),
            ("sender", sender),
            ("manager", manager),
            ("notifier", notifier),
        )
    }

    # The recipient: everything, in full.
    assert [destinations(reports["nora"][c].json()) for c in ("email", "sms", "webhook")] == [
        [email],
        [PHONE],
        [HOOK],
    ]
    assert email in reports["nora"]["email"].json()["deliveries"][0]["error_message"]
    # Sender and manager: the report, with every destination masked.
    for who in ("sender", "manager"):
        got = {c: r.json() for c, r in reports[who].items()}
        assert all(r.status_code == 200 for r in reports[who].values()), who
        assert destinations(got["email"]) == [f"{email[0]}***@example.test"], who
        assert destinations(got["sms"]) == ["+9665****12"], who
        assert destinations(got["webhook"]) == ["hooks.example.test"], who
        assert (
            got["email"]["deliveries"][0]["error_message"]
            == f"550 mailbox unavailable: <{email[0]}***@example.test>"
        )
        text = str(got)
        assert email not in text and PHONE not in text and "private/path" not in text, who
    # Holding notifications:send opens only what you sent.
    assert {c: r.status_code for c, r in reports["notifier"].items()} == dict.fromkeys(ids, 404)
    own = await send(anonymous, notifier, nora)
    mine = await anonymous.get(f"{API}/delivery/{own['sms']}", headers=notifier)
    assert mine.status_code == 200 and destinations(mine.json()) == ["+9665****12"]
    # ... and no inbox but your own.
    assert (await anonymous.get(f"{API}/{nora}/inbox", headers=notifier)).status_code == 403
