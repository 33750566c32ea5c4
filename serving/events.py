"""`/api/v1/ws`: the authenticated WebSocket. Authentication is the same as HTTP (a bearer token in
the `Authorization` header), or, since browsers cannot set headers on a WebSocket, the subprotocol
pair `Sec-WebSocket-Protocol: bearer, <token>` or `?token=`. The socket lives no longer than the
session of its token (`serving.auth.sockets`): logout, a revoked session, a password change or
reset, a disabled account or the token's expiry close it with code 4401. Later services push their
live updates (job progress, in-app notifications) through it."""

from __future__ import annotations

import msgspec
from litestar import WebSocket, websocket
from litestar.channels import ChannelsPlugin
from litestar.controller import Controller
from litestar.di import NamedDependency
from litestar.exceptions import WebSocketDisconnect

from serving.auth.principal import Principal
from serving.auth.security import AuthContext
from serving.auth.sockets import SocketSession
from serving.permissions import AUTHENTICATED, requires


class EventsSocket(Controller):
    path = "/api/v1/ws"
    tags = ["events"]

    @websocket("/", opt=requires(AUTHENTICATED))
    async def events(
        self,
        socket: WebSocket[Principal, object, object],
        channels: NamedDependency[ChannelsPlugin],
        auth: NamedDependency[AuthContext],
    ) -> None:
        live = SocketSession(socket, auth)
        await live.accept()
        principal = socket.user

        async def receive_loop() -> None:
            while True:
                try:
                    message = await socket.receive_json()
                except WebSocketDisconnect:
                    return
                if not await live.valid():
                    await live.end()
                    return
                if message.get("type") == "ping":
                    await live.send('{"type":"pong"}')
                elif message.get("type") == "close":
                    await socket.close()
                    return

        hello = {"type": "hello", "user_id": str(principal.user_id), "roles": list(principal.roles)}
        if not live.channels:  # an SSO token: no session of ours to be told about; timer and expiry only
            await live.send(msgspec.json.encode(hello).decode())
            await live.run(receive_loop)
            return
        async with channels.start_subscription(live.channels) as subscriber:
            await live.send(msgspec.json.encode(hello).decode())
            async with subscriber.run_in_background(live.forward, join=False):
                await live.run(receive_loop)
