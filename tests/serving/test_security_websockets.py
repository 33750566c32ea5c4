"""WebSockets end with their session (security issue, finding 11): after logout, a revoked session, a
password reset or change, or the token's expiry, an open socket is closed and gets nothing more, on
the inbox socket (`/api/v1/notifications/ws`) and the events socket (`/api/v1/ws`); and the token can
travel in `Sec-WebSocket-Protocol` instead of the address. Every wait is bounded."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from litestar.exceptions import WebSocketDisconnect
from litestar.testing import AsyncTestClient

from domain.migrate import upgrade
from domain.settings import Settings
from serving.app import create_app
from tests.conftest import prod_settings
from tests.serving.conftest import (
    PASSWORD,
    bearer,
    db_exec,
    link_token,
    login,
    mails,
    make_user,
    mint_token,
    recorded,
)

INBOX = "/api/v1/notifications"
EVENTS = "/api/v1/ws"
CLOSE_SESSION_ENDED = 4401  # the close code of a socket whose session ended (serving.auth.sockets)
SUBPROTOCOL = "bearer"  # `Sec-WebSocket-Protocol: bearer, <access token>`
WAIT = 10  # seconds a socket may take to see a message or its close (far more than it needs)


def _send_body(recipient: uuid.UUID) -> dict:
    return {
        "recipient_ids": [str(recipient)],
        "category": "general",
        "channels": ["in_app"],
        "subject": {"ar": "سر", "en": "A secret"},
        "content": "for the account holder only",
    }


def assert_closed_without_messages(ws) -> None:
    """The socket's next event is its close (code 4401), not a message."""
    with pytest.raises(WebSocketDisconnect) as closed:
        message = ws.receive_json(timeout=WAIT)
        pytest.fail(f"the socket received {message!r} after its session ended")
    assert closed.value.code == CLOSE_SESSION_ENDED


async def _logout(client: AsyncTestClient, tokens: dict, _: uuid.UUID, __: Path) -> None:
    assert (
        await client.post("/api/v1/auth/logout", headers=bearer(tokens["access_token"]))
    ).status_code == 204


async def _revoke_from_another_session(client: AsyncTestClient, tokens: dict, _: uuid.UUID, __: Path) -> None:
    other = await login(client, tokens["user"]["username"], client_type="mobile", device_id="phone")
    res = await client.delete(
        f"/api/v1/auth/sessions/{tokens['session_id']}", headers=bearer(other["access_token"])
    )
    assert res.status_code == 204, res.text


async def _password_reset(client: AsyncTestClient, tokens: dict, _: uuid.UUID, data_dir: Path) -> None:
    email = f"{tokens['user']['username']}@example.test"
    assert (await client.post("/api/v1/auth/password-reset", json={"email": email})).status_code == 202
    token = link_token(mails(data_dir / "mail")[-1])
    res = await client.post(
        "/api/v1/auth/password-reset/confirm",
        json={"token": token, "new_password": "quiet-lantern-meadow-77"},
    )
    assert res.status_code == 200, res.text


async def _password_changed_elsewhere(
    client: AsyncTestClient, tokens: dict, user_id: uuid.UUID, _: Path
) -> None:
    other = await login(client, tokens["user"]["username"], client_type="mobile", device_id="laptop")
    res = await client.post(
        f"/api/v1/users/{user_id}/password",
        headers=bearer(other["access_token"]),
        json={"current_password": PASSWORD, "new_password": "quiet-lantern-meadow-77"},
    )
    assert res.status_code == 200, res.text


ENDINGS: dict[str, Callable[[AsyncTestClient, dict, uuid.UUID, Path], Awaitable[None]]] = {
    "logout": _logout,
    "session-revoked": _revoke_from_another_session,
    "password-reset": _password_reset,
    "password-changed": _password_changed_elsewhere,
}


@pytest.mark.parametrize("ending", ENDINGS)
async def test_the_inbox_socket_closes_when_its_session_ends(
    anonymous: AsyncTestClient, new_user, password_hash, data_dir, ending
) -> None:
    name = f"holder-{uuid.uuid4().hex[:6]}"
    user_id, _ = new_user(name, ["viewer"], password_hash=password_hash)
    _, editor = new_user(f"editor-{uuid.uuid4().hex[:6]}", ["editor"])
    tokens = await login(anonymous, name)

    with await anonymous.websocket_connect(f"{INBOX}/ws", headers=bearer(tokens["access_token"])) as ws:
        assert ws.receive_json(timeout=WAIT)["type"] == "hello"
        await ENDINGS[ending](anonymous, tokens, user_id, data_dir)
        sent = await anonymous.post(f"{INBOX}/send", headers=bearer(editor), json=_send_body(user_id))
        assert sent.status_code == 201, sent.text
        assert_closed_without_messages(ws)


async def test_the_events_socket_closes_when_its_session_ends(anonymous, new_user, password_hash) -> None:
    name = f"eventer-{uuid.uuid4().hex[:6]}"
    new_user(name, ["viewer"], password_hash=password_hash)
    tokens = await login(anonymous, name)
    with await anonymous.websocket_connect(EVENTS, headers=bearer(tokens["access_token"])) as ws:
        assert ws.receive_json(timeout=WAIT)["type"] == "hello"
        await _logout(anonymous, tokens, uuid.uuid4(), Path())
        assert_closed_without_messages(ws)  # pushed: the client did not have to send anything


async def test_a_message_on_a_revoked_session_is_not_answered(anonymous, new_user, password_hash) -> None:
    """Without the push (a revocation written straight to the database, as another tool might), the
    next message the client sends is checked against the session and closes the socket."""
    import sqlalchemy as sa

    from domain.schema import UserSession

    name = f"quiet-{uuid.uuid4().hex[:6]}"
    new_user(name, ["viewer"], password_hash=password_hash)
    tokens = await login(anonymous, name)
    url = anonymous.app.state.settings.database_url
    principals = anonymous.app.state.auth.principals
    for path in (f"{INBOX}/ws", EVENTS):
        session_id = uuid.UUID(tokens["session_id"])
        with await anonymous.websocket_connect(path, headers=bearer(tokens["access_token"])) as ws:
            assert ws.receive_json(timeout=WAIT)["type"] == "hello"
            db_exec(
                url,
                sa.update(UserSession).where(UserSession.session_id == session_id).values(is_active=False),
            )
            await principals.store.delete(f"session:{session_id}")  # the shared cache forgets it...
            principals._local.clear()  # ...and so does this process's (as after LOCAL_TTL)
            ws.send_json({"type": "ping"})
            assert_closed_without_messages(ws)
        db_exec(
            url, sa.update(UserSession).where(UserSession.session_id == session_id).values(is_active=True)
        )
        await principals.store.delete(f"session:{session_id}")
        principals._local.clear()


async def test_a_session_revoked_behind_the_apis_back_closes_an_idle_socket(
    anonymous, new_user, password_hash, monkeypatch
) -> None:
    """No push and no message from the client: the periodic re-check finds the ended session."""
    import sqlalchemy as sa

    from domain.schema import UserSession
    from serving.auth import sockets

    monkeypatch.setattr(sockets, "RECHECK_SECONDS", 0.2)
    name = f"idle-{uuid.uuid4().hex[:6]}"
    new_user(name, ["viewer"], password_hash=password_hash)
    tokens = await login(anonymous, name)
    principals = anonymous.app.state.auth.principals
    with await anonymous.websocket_connect(f"{INBOX}/ws", headers=bearer(tokens["access_token"])) as ws:
        assert ws.receive_json(timeout=WAIT)["type"] == "hello"
        db_exec(
            anonymous.app.state.settings.database_url,
            sa.update(UserSession)
            .where(UserSession.session_id == uuid.UUID(tokens["session_id"]))
            .values(is_active=False),
        )
        await principals.store.delete(f"session:{tokens['session_id']}")  # as after SESSION_TTL
        principals._local.clear()  # as after LOCAL_TTL
        assert_closed_without_messages(ws)


async def test_the_socket_closes_when_the_token_expires(migrated_url: str, data_dir: Path) -> None:
    settings = Settings(
        deployment="local", data_dir=data_dir, database_url=migrated_url, access_token_ttl_seconds=2
    )
    async with AsyncTestClient(app=create_app(settings)) as client:
        user_id = make_user(migrated_url, f"brief-{uuid.uuid4().hex[:6]}", ["viewer"])
        token = mint_token(client.app, migrated_url, user_id)
        for path in (f"{INBOX}/ws", EVENTS):
            with await client.websocket_connect(path, headers=bearer(token)) as ws:
                assert ws.receive_json(timeout=WAIT)["type"] == "hello"
                assert_closed_without_messages(ws)  # within WAIT, with nothing sent either way
            token = mint_token(client.app, migrated_url, user_id)


async def test_the_token_travels_in_the_subprotocol_header(anonymous: AsyncTestClient, token_for) -> None:
    token = token_for("viewer")
    for path in (f"{INBOX}/ws", EVENTS):
        with await anonymous.websocket_connect(path, subprotocols=[SUBPROTOCOL, token]) as ws:
            assert ws.accepted_subprotocol == SUBPROTOCOL  # never the token itself
            assert ws.receive_json(timeout=WAIT)["type"] == "hello"
    with pytest.raises(WebSocketDisconnect):  # noqa: SIM117 (the connect itself must raise inside)
        with await anonymous.websocket_connect(f"{INBOX}/ws", subprotocols=[SUBPROTOCOL, "forged"]) as ws:
            ws.receive_json(timeout=WAIT)


@pytest.mark.redis
async def test_a_logout_on_one_api_process_closes_the_socket_on_another(
    postgres_url: str, redis_url: str, data_dir: Path, password_hash: str
) -> None:
    """The revocation is pushed through the shared channels (Redis in production)."""
    upgrade(postgres_url)
    settings = prod_settings(postgres_url, data_dir, redis_url=redis_url)
    name = f"twoproc-{uuid.uuid4().hex[:6]}"
    user_id = make_user(postgres_url, name, ["viewer"], password_hash=password_hash)
    editor_id = make_user(postgres_url, f"ed-{uuid.uuid4().hex[:6]}", ["editor"])
    async with (
        AsyncTestClient(app=create_app(settings)) as one,
        AsyncTestClient(app=create_app(settings)) as two,
    ):
        tokens = await login(one, name)
        editor = mint_token(one.app, postgres_url, editor_id)
        with await two.websocket_connect(f"{INBOX}/ws", headers=bearer(tokens["access_token"])) as ws:
            assert ws.receive_json(timeout=WAIT)["type"] == "hello"
            await _logout(one, tokens, user_id, data_dir)
            sent = await one.post(f"{INBOX}/send", headers=bearer(editor), json=_send_body(user_id))
            assert sent.status_code == 201, sent.text
            assert_closed_without_messages(ws)


async def test_the_media_job_socket_closes_when_its_session_ends(
    anonymous: AsyncTestClient, new_user, password_hash, db_sessions
) -> None:

    name = f"uploader-{uuid.uuid4().hex[:6]}"
    user_id, _ = new_user(name, ["author"], password_hash=password_hash)
    _, job_id = recorded(db_sessions, user_id)
    tokens = await login(anonymous, name)
    url = f"/api/v1/media/job/{job_id}/ws"
    with await anonymous.websocket_connect(url, subprotocols=[SUBPROTOCOL, tokens["access_token"]]) as ws:
        assert ws.receive_json(timeout=WAIT)["type"] == "status"
        await _logout(anonymous, tokens, user_id, Path())
        assert_closed_without_messages(ws)
