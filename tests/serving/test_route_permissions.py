"""Every route of the application, for every role: 401 without a token, 403 without the permission
the route declares, and through the guard with it; never a server error, whoever asks. New routes
join this test by existing. One of the "roles" is an account made the way anyone on the internet
makes one (register, follow the emailed link, sign in): it must get exactly a viewer's answers."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from litestar.handlers import HTTPRouteHandler
from litestar.testing import AsyncTestClient

from domain.auth import rbac
from serving.permissions import AUTHENTICATED, PUBLIC, SELF
from tests.serving.conftest import self_register

_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")
SELF_REGISTERED = "self-registered"  # answered as a viewer


def http_routes(app) -> list[tuple[str, str, HTTPRouteHandler]]:
    found = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if not isinstance(handler, HTTPRouteHandler) or route.path.startswith("/api/docs"):
                continue
            for method in sorted(handler.http_methods - {"OPTIONS"}):
                found.append((method, route.path, handler))
    return found


def concrete(path: str, user_id: uuid.UUID | None = None) -> str:
    return _PARAM.sub(lambda m: str(user_id if (m.group(1) == "user_id" and user_id) else uuid.uuid4()), path)


def allowed(handler: HTTPRouteHandler, role: str) -> bool:
    needed = handler.opt["permission"]
    if needed in (PUBLIC, AUTHENTICATED):
        return True
    if needed == SELF:
        return False  # requests below name another user
    return needed in rbac.SYSTEM_ROLES[role][1]


async def test_every_route_answers_only_the_roles_it_declares(
    anonymous: AsyncTestClient, new_user, mint, data_dir: Path
) -> None:
    routes = http_routes(anonymous.app)
    assert len(routes) >= 25
    members = {role: new_user(f"member-{role}", [role])[0] for role in rbac.SYSTEM_ROLES}
    members[SELF_REGISTERED] = (await self_register(anonymous, data_dir, "newcomer"))[0]
    problems = []
    for method, path, handler in routes:
        needed = handler.opt.get("permission")
        assert needed is not None, f"{method} {path} declares no permission"
        url = concrete(path)
        body = {} if method in {"POST", "PUT", "PATCH"} else None
        anon = await anonymous.request(method, url, json=body)
        if anon.status_code >= 500:
            problems.append(f"{method} {path} without a token: {anon.status_code} (a server error)")
        elif needed == PUBLIC:
            if anon.status_code in (401, 403):
                problems.append(f"{method} {path}: public but answered {anon.status_code} without a token")
        elif anon.status_code != 401:
            problems.append(f"{method} {path}: {anon.status_code} without a token (want 401)")
        answers = {}
        for role, user_id in members.items():
            token = mint(user_id)  # a fresh session each time: some routes end the session they run in
            res = await anonymous.request(
                method, url, json=body, headers={"Authorization": f"Bearer {token}"}
            )
            answers[role] = res.status_code
            if role == SELF_REGISTERED:
                if res.status_code != answers["viewer"]:
                    problems.append(
                        f"{method} {path} self-registered: {res.status_code}, a viewer got {answers['viewer']}"
                    )
                continue
            if res.status_code >= 500:
                problems.append(f"{method} {path} as {role}: {res.status_code} (a server error)")
            elif allowed(handler, role):
                if res.status_code in (401, 403):
                    problems.append(f"{method} {path} as {role}: {res.status_code} (declared {needed})")
            elif res.status_code != 403:
                problems.append(f"{method} {path} as {role}: {res.status_code}, want 403 (declared {needed})")
            else:
                assert res.headers["content-type"].startswith("application/problem+json")
    assert problems == []


async def test_self_routes_answer_the_user_themself(anonymous: AsyncTestClient, new_user) -> None:
    user_id, token = new_user("selfie", ["viewer"])
    headers = {"Authorization": f"Bearer {token}"}
    for method, path, handler in http_routes(anonymous.app):
        if handler.opt["permission"] == SELF or handler.opt.get("allow_self"):
            res = await anonymous.request(method, concrete(path, user_id), json={}, headers=headers)
            assert res.status_code not in (401, 403) and res.status_code < 500, (
                f"{method} {path}: {res.status_code} for the user themself"
            )


@pytest.mark.parametrize("where", ["header", "query"])
async def test_websocket_is_authenticated_the_same_way(
    anonymous: AsyncTestClient, token_for, where: str
) -> None:
    token = token_for("viewer")
    if where == "header":
        socket = await anonymous.websocket_connect("/api/v1/ws", headers={"Authorization": f"Bearer {token}"})
    else:
        socket = await anonymous.websocket_connect(f"/api/v1/ws?token={token}")
    with socket as ws:
        hello = ws.receive_json()
        assert hello["type"] == "hello" and hello["roles"] == ["viewer"]
        ws.send_json({"type": "ping"})
        assert ws.receive_json() == {"type": "pong"}


async def test_websocket_without_a_valid_token_is_refused(anonymous: AsyncTestClient) -> None:
    from litestar.exceptions import WebSocketDisconnect

    for url in ("/api/v1/ws", "/api/v1/ws?token=not-a-jwt"):
        with pytest.raises(WebSocketDisconnect):  # noqa: SIM117 (the connect itself must raise inside)
            with await anonymous.websocket_connect(url) as ws:
                ws.receive_json()
