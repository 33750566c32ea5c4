"""`/api/v1/ws`: the authenticated WebSocket. Authentication is the same as HTTP (a bearer token in
the `Authorization` header, or `?token=` since browsers cannot set headers on a WebSocket); later
services push their live updates (job progress, in-app notifications) through it."""

from __future__ import annotations

from litestar import WebSocket, websocket
from litestar.controller import Controller

from serving.auth.principal import Principal
from serving.permissions import AUTHENTICATED, requires


class EventsSocket(Controller):
    path = "/api/v1/ws"
    tags = ["events"]

    @websocket("/", opt=requires(AUTHENTICATED))
    async def events(self, socket: WebSocket[Principal, object, object]) -> None:
        await socket.accept()
        principal = socket.user
        await socket.send_json(
            {"type": "hello", "user_id": str(principal.user_id), "roles": list(principal.roles)}
        )
        while True:
            message = await socket.receive_json()
            if message.get("type") == "ping":
                await socket.send_json({"type": "pong"})
            elif message.get("type") == "close":
                await socket.close()
                return
