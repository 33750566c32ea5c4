"""In-app notifications in real time: the WebSocket through the app (Litestar's test client), over a
real uvicorn server with the `websockets` client, and across two API processes through Redis."""

from __future__ import annotations

import asyncio
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import websockets
from litestar.exceptions import WebSocketDisconnect
from litestar.testing import AsyncTestClient
from sqlalchemy.orm import Session, sessionmaker

from domain.db import sync_engine
from domain.migrate import upgrade
from domain.notifications import inbox
from domain.notifications.service import Draft, send
from domain.schema import Notification
from domain.settings import Settings
from serving.app import create_app
from tests.conftest import prod_settings, served
from tests.serving.conftest import bearer, make_user, mint_token

API = "/api/v1/notifications"
WAIT = 10  # seconds a socket may take to see a message (far more than it needs)


@pytest.fixture
def people(new_user) -> dict[str, tuple[uuid.UUID, str]]:
    out = {}
    for name, roles, fields in (
        ("editor", ["editor"], {}),
        ("reader", ["viewer"], {"preferences": {"locale": "ar-SA"}}),
        ("other", ["viewer"], {}),
    ):
        out[name] = new_user(f"{name}-{uuid.uuid4().hex[:6]}", roles, **fields)
    return out


def _job_insert(factory: sessionmaker[Session], recipient: uuid.UUID, subject: str) -> uuid.UUID:
    """An in-app notification made as the broadcast and rule jobs make them: not pushed."""
    with factory.begin() as session:
        (notification,) = send(
            session, Draft(category="broadcast", subject=subject), [recipient]
        ).notifications
        assert notification.pushed_at is None
        return notification.id


def _send_body(recipient: uuid.UUID, **fields: object) -> dict:
    return {
        "recipient_ids": [str(recipient)],
        "category": "content.published",
        "subject": {"ar": "حلقة جديدة من فنجان", "en": "A new Fnjan episode"},
        "content": {"ar": "شاهدها الآن", "en": "Watch it now"},
        **fields,
    }


def _next(ws, kind: str) -> dict:
    """The next message of type `kind` (failing on any other in between)."""
    message = ws.receive_json(timeout=WAIT)
    assert message["type"] == kind, message
    return message


# --- through the app (Litestar's test client) ----------------------------------------------------


async def test_a_sent_notification_reaches_the_socket_and_the_ack_marks_it_delivered(
    anonymous: AsyncTestClient, people
) -> None:
    (reader, reader_token), (_, editor_token) = people["reader"], people["editor"]

    with await anonymous.websocket_connect(f"{API}/ws?token={reader_token}") as ws:
        hello = _next(ws, "hello")
        assert (hello["unread_count"], hello["user_id"]) == (0, str(reader))

        sent = await anonymous.post(f"{API}/send", headers=bearer(editor_token), json=_send_body(reader))
        assert sent.status_code == 201, sent.text
        nid = sent.json()["notifications"][0]["id"]

        message = _next(ws, "notification")
        assert (message["id"], message["subject"], message["content"]) == (
            nid,
            "حلقة جديدة من فنجان",
            "شاهدها الآن",
        )
        assert (message["language"], message["direction"], message["thread_id"]) == ("ar", "rtl", nid)

        ws.send_json({"type": "ack", "id": nid})
        assert _next(ws, "acked") == {"type": "acked", "id": nid, "status": "delivered"}

    report = (await anonymous.get(f"{API}/delivery/{nid}", headers=bearer(reader_token))).json()
    assert report["status"] == "delivered" and report["delivered_at"] and report["pushed_at"]


async def test_reading_on_one_connection_updates_the_users_other_connections(
    anonymous: AsyncTestClient, people
) -> None:
    (reader, token), (_, editor_token) = people["reader"], people["editor"]
    phone = await anonymous.websocket_connect(f"{API}/ws", headers=bearer(token))
    laptop = await anonymous.websocket_connect(f"{API}/ws?token={token}")
    with phone, laptop:
        _next(phone, "hello")
        _next(laptop, "hello")
        sent = await anonymous.post(f"{API}/send", headers=bearer(editor_token), json=_send_body(reader))
        nid = sent.json()["notifications"][0]["id"]
        assert _next(phone, "notification")["id"] == _next(laptop, "notification")["id"] == nid

        phone.send_json({"type": "read", "id": nid})  # read on the phone...
        assert _next(laptop, "read") == {
            "type": "read",
            "id": nid,
            "read": True,
            "unread_count": 0,
        }  # ...seen on the laptop
        assert _next(phone, "read")["id"] == nid

        unread = await anonymous.put(f"{API}/{nid}/read", headers=bearer(token), json={"read": False})
        assert unread.status_code == 200
        assert _next(laptop, "read") == {"type": "read", "id": nid, "read": False, "unread_count": 1}

        assert _next(phone, "read")["read"] is False

        again = await anonymous.put(f"{API}/{nid}/read", headers=bearer(token), json={"read": False})
        assert again.status_code == 200  # idempotent: nothing changed, nothing published
        laptop.send_json({"type": "ping"})
        _next(laptop, "pong")


async def test_another_users_notification_cannot_be_acknowledged_or_read_over_the_socket(
    anonymous: AsyncTestClient, people, db_sessions
) -> None:
    (reader, _), (_, other_token) = people["reader"], people["other"]
    nid = _job_insert(db_sessions, reader, "private")

    with await anonymous.websocket_connect(f"{API}/ws?token={other_token}") as ws:
        _next(ws, "hello")
        ws.send_json({"type": "ack", "id": str(nid)})
        assert "not in your inbox" in _next(ws, "error")["detail"]
        ws.send_json({"type": "read", "id": str(nid)})
        assert "not in your inbox" in _next(ws, "error")["detail"]
        ws.send_text("not json")
        _next(ws, "error")

    with db_sessions() as session:
        row = session.get(Notification, nid)
        assert (row.status, row.delivered_at, row.read_at) == ("sent", None, None)


async def test_notifications_inserted_by_jobs_reach_the_socket_through_the_pump(
    anonymous: AsyncTestClient, people, db_sessions
) -> None:
    reader, token = people["reader"]
    pump = anonymous.app.state.notification_pump
    pump.interval = 0.05

    with await anonymous.websocket_connect(f"{API}/ws?token={token}") as ws:
        _next(ws, "hello")
        nid = _job_insert(db_sessions, reader, "من مهمة البث")
        message = _next(ws, "notification")
        assert (message["id"], message["subject"]) == (str(nid), "من مهمة البث")
        ws.send_json({"type": "ping"})
        _next(ws, "pong")  # published once

    with db_sessions() as session:
        assert session.get(Notification, nid).pushed_at is not None
        assert not inbox.any_unpushed(session)


async def test_the_socket_needs_a_valid_token(anonymous: AsyncTestClient) -> None:
    for url in (f"{API}/ws", f"{API}/ws?token=forged"):
        with pytest.raises(WebSocketDisconnect):  # noqa: SIM117 (the connect itself must raise inside)
            with await anonymous.websocket_connect(url) as ws:
                ws.receive_json(timeout=WAIT)


def test_concurrent_claimers_never_take_the_same_notification(db_sessions, people) -> None:
    """Several API processes run the pump: each unpushed row is claimed by exactly one."""
    reader = people["reader"][0]
    with db_sessions.begin() as session:
        for i in range(60):
            send(session, Draft(category="c", subject=f"m{i}"), [reader])

    def claim_all() -> list[uuid.UUID]:
        # An empty batch is not the end: on SQLite a claimer may pick rows another one took first,
        # and finds none left in them (the pump just tries again at its next tick).
        mine = []
        while True:
            with db_sessions.begin() as session:
                batch = inbox.claim_unpushed(session, limit=7)
                if not batch and not inbox.any_unpushed(session):
                    return mine
            mine += [n.id for n in batch]

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: claim_all(), range(3)))
    claimed = [i for r in results for i in r]
    assert len(claimed) == len(set(claimed)) == 60


# --- over a real server: uvicorn + the `websockets` client ---------------------------------------


async def test_over_a_real_server_with_the_websockets_client(sqlite_url: str, data_dir: Path) -> None:
    upgrade(sqlite_url)
    app = create_app(Settings(deployment="local", data_dir=data_dir, database_url=sqlite_url))
    reader = make_user(sqlite_url, "ws-reader", ["viewer"], preferences={"locale": "ar"})
    editor = make_user(sqlite_url, "ws-editor", ["editor"])
    reader_token, editor_token = mint_token(app, sqlite_url, reader), mint_token(app, sqlite_url, editor)

    with served(app) as host:
        async with (
            websockets.connect(f"ws://{host}{API}/ws", additional_headers=bearer(reader_token)) as ws,
            httpx.AsyncClient(base_url=f"http://{host}") as http,
        ):
            assert json.loads(await asyncio.wait_for(ws.recv(), WAIT))["type"] == "hello"
            res = await http.post(f"{API}/send", headers=bearer(editor_token), json=_send_body(reader))
            assert res.status_code == 201, res.text
            message = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
            assert (message["type"], message["subject"]) == ("notification", "حلقة جديدة من فنجان")
            await ws.send(json.dumps({"type": "ack", "id": message["id"]}))
            assert json.loads(await asyncio.wait_for(ws.recv(), WAIT))["status"] == "delivered"


# --- two API processes on the production backends (Redis Pub/Sub) --------------------------------


@pytest.mark.redis
async def test_two_api_processes_fan_out_through_redis(
    postgres_url: str, redis_url: str, data_dir: Path
) -> None:
    upgrade(postgres_url)
    settings = prod_settings(postgres_url, data_dir, redis_url=redis_url)
    reader = make_user(postgres_url, f"r-{uuid.uuid4().hex[:6]}", ["viewer"], preferences={"locale": "ar"})
    editor = make_user(postgres_url, f"e-{uuid.uuid4().hex[:6]}", ["editor"])
    engine = sync_engine(postgres_url)
    factory = sessionmaker(engine, expire_on_commit=False)
    try:
        async with (
            AsyncTestClient(app=create_app(settings)) as one,
            AsyncTestClient(app=create_app(settings)) as two,
        ):
            for client in (one, two):
                client.app.state.notification_pump.interval = 0.05
            reader_token = mint_token(two.app, postgres_url, reader)
            editor_token = mint_token(one.app, postgres_url, editor)
            with await two.websocket_connect(f"{API}/ws?token={reader_token}") as ws:
                _next(ws, "hello")
                sent = await one.post(f"{API}/send", headers=bearer(editor_token), json=_send_body(reader))
                assert sent.status_code == 201, sent.text
                message = _next(ws, "notification")  # sent through process one, received on process two
                assert (message["id"], message["subject"]) == (
                    sent.json()["notifications"][0]["id"],
                    "حلقة جديدة من فنجان",
                )

                read = await one.put(f"{API}/{message['id']}/read", headers=bearer(reader_token), json={})
                assert read.status_code == 200
                assert _next(ws, "read")["id"] == message["id"]

                # Made by a job: both processes' pumps race for it; the socket sees it once.
                nid = _job_insert(factory, reader, "بث")
                assert _next(ws, "notification")["id"] == str(nid)
                ws.send_json({"type": "ping"})
                _next(ws, "pong")
    finally:
        engine.dispose()
