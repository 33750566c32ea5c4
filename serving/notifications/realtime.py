"""In-app notifications in real time: Litestar channels, the user's WebSocket, and the pump.

Every user has one channel, `notifications:<user id>`. The channels backend is memory in the
embedded deployment and Redis Pub/Sub in production (`serving.deployment`), so a message published
by any API process reaches the sockets of every process.

`GET /api/v1/notifications/ws` (a bearer token in the header, in `Sec-WebSocket-Protocol: bearer,
<token>`, or `?token=`) subscribes the user's channel, says `{"type": "hello", "unread_count": n}`,
then forwards everything published there:
`{"type": "notification", ...}` for a new in-app notification and `{"type": "read", "id", "read",
"unread_count"}` when one is read or unread elsewhere. The client may send:

- `{"type": "ack", "id": <notification id>}`: received; the notification becomes `delivered`
  (answered with `{"type": "acked", "id", "status"}`);
- `{"type": "read", "id": ..., "read": true|false}`: the same as `PUT .../{id}/read`;
- `{"type": "ping"}`: answered with `{"type": "pong"}`.

The socket lives no longer than the session of its token (`serving.auth.sockets`): logout, a revoked
session, a password change or reset, a disabled account or the token's expiry close it with code
4401, and nothing is forwarded after that.

The pump publishes in-app notifications other processes inserted (broadcast and rule jobs leave
`pushed_at` empty): every `interval` seconds it claims a batch with one UPDATE (each row is claimed
by one API process only) and publishes it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager, suppress
from types import TracebackType
from typing import Any

import msgspec
from litestar import WebSocket, websocket
from litestar.channels import ChannelsBackend, ChannelsPlugin
from litestar.config.app import AppConfig
from litestar.controller import Controller
from litestar.di import NamedDependency
from litestar.exceptions import WebSocketDisconnect
from litestar.plugins import InitPluginProtocol

from domain.errors import NotFound
from domain.notifications import inbox
from domain.schema import Notification
from serving.auth.principal import Principal
from serving.auth.security import AuthContext
from serving.auth.sockets import SocketSession
from serving.db import Database
from serving.permissions import AUTHENTICATED, requires

log = logging.getLogger(__name__)
CHANNEL_PREFIX = "notifications:"
PUMP_INTERVAL = 0.2
PUMP_BATCH = 500
SOCKET_BACKLOG = 1000


def user_channel(user_id: uuid.UUID | str) -> str:
    return f"{CHANNEL_PREFIX}{user_id}"


def channels_plugin(backend: ChannelsBackend) -> ChannelsPlugin:
    """Channels made on demand (one per user). A socket that stops reading keeps at most
    `SOCKET_BACKLOG` unsent messages, the newest: the older ones are in the inbox anyway."""
    return ChannelsPlugin(
        backend=backend,
        arbitrary_channels_allowed=True,
        subscriber_max_backlog=SOCKET_BACKLOG,
        subscriber_backlog_strategy="dropleft",
    )


def publish_notifications(channels: ChannelsPlugin, messages: Iterable[dict[str, Any]]) -> None:
    """Queue `inbox.message(...)` dicts for their recipients' channels (returns at once)."""
    for message in messages:
        channels.publish(message, user_channel(message["recipient_id"]))


def publish_read(
    channels: ChannelsPlugin, user_id: uuid.UUID, ids: list[uuid.UUID], read: bool, unread_count: int
) -> None:
    """Tell the user's open connections that notifications were read (or unread) elsewhere."""
    if len(ids) == 1:
        event: dict[str, Any] = {
            "type": "read",
            "id": str(ids[0]),
            "read": read,
            "unread_count": unread_count,
        }
    else:
        event = {"type": "read", "ids": [str(i) for i in ids], "read": read, "unread_count": unread_count}
    channels.publish(event, user_channel(user_id))


class NotificationPump(InitPluginProtocol, AbstractAsyncContextManager):
    """Publishes the in-app notifications that were inserted without being pushed.

    A plugin, so that it joins the app's lifespan after the channels plugin (register it after that
    one): it starts once channels can publish and stops before they shut down.
    """

    def __init__(
        self,
        db: Database,
        channels: ChannelsPlugin,
        *,
        interval: float = PUMP_INTERVAL,
        batch: int = PUMP_BATCH,
    ) -> None:
        self.db, self.channels, self.interval, self.batch = db, channels, interval, batch
        self.published = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.lifespan.append(self)
        return app_config

    async def run_once(self) -> int:
        """Claim and publish one batch; how many notifications were published."""
        if not await self.db.read(inbox.any_unpushed):
            return 0

        def claim(session: Any) -> list[dict[str, Any]]:
            return [inbox.message(n) for n in inbox.claim_unpushed(session, limit=self.batch)]

        messages = await self.db.write(claim)
        publish_notifications(self.channels, messages)
        self.published += len(messages)
        return len(messages)

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                count = await self.run_once()
            except Exception:
                log.exception("the notification pump failed; retrying in %.1f s", self.interval)
                count = 0
            if count < self.batch:
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.interval)

    async def __aenter__(self) -> NotificationPump:
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="notification-pump")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=10)
            except TimeoutError:
                log.warning("the notification pump did not stop in 10 s; cancelled")
            self._task = None


_decode = msgspec.json.Decoder(dict[str, Any]).decode


def _notification_id(message: dict[str, Any]) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(message.get("id")))
    except ValueError:
        return None


class NotificationsSocket(Controller):
    path = "/api/v1/notifications/ws"
    tags = ["notifications"]

    @websocket("/", opt=requires(AUTHENTICATED))
    async def notifications(
        self,
        socket: WebSocket[Principal, object, object],
        channels: NamedDependency[ChannelsPlugin],
        db: NamedDependency[Database],
        auth: NamedDependency[AuthContext],
    ) -> None:
        """The signed-in user's live notifications (see the module docstring for the messages)."""
        live = SocketSession(socket, auth)
        await live.accept()
        user_id = live.user_id

        async def send(message: dict[str, Any]) -> None:
            await live.send(msgspec.json.encode(message).decode())

        async def receive_loop() -> None:
            while True:
                try:
                    raw = await socket.receive_text()
                except WebSocketDisconnect:
                    return
                if not await live.valid():
                    await live.end()
                    return
                reply = await self._handle(raw, user_id, channels, db)
                if reply is not None:
                    await send(reply)

        # One subscription for the user's channel and the session's: a session's end is seen before
        # anything published after it.
        async with channels.start_subscription([user_channel(user_id), *live.channels]) as subscriber:
            # Subscribed before counting: nothing published from here on is missed.
            unread = await db.read(lambda s: inbox.unread_count(s, user_id))
            await send({"type": "hello", "user_id": str(user_id), "unread_count": unread})
            async with subscriber.run_in_background(live.forward, join=False):
                await live.run(receive_loop)

    async def _handle(
        self, raw: str, user_id: uuid.UUID, channels: ChannelsPlugin, db: Database
    ) -> dict[str, Any] | None:
        try:
            message = _decode(raw)
        except msgspec.DecodeError:
            return {"type": "error", "detail": 'send JSON objects like {"type": "ack", "id": ...}'}
        kind = message.get("type")
        if kind == "ping":
            return {"type": "pong"}
        if kind not in ("ack", "read"):
            return {"type": "error", "detail": f"unknown message type {kind!r}; use ack, read or ping"}
        notification_id = _notification_id(message)
        if notification_id is None:
            return {"type": "error", "detail": f"{kind} needs the id of a notification"}
        if kind == "ack":
            row: Notification | None = await db.write(
                lambda s: inbox.acknowledge(s, user_id, notification_id)
            )
            if row is None:
                return {"type": "error", "detail": f"notification {notification_id} is not in your inbox"}
            return {"type": "acked", "id": str(notification_id), "status": row.status}
        read = message.get("read", True) is not False

        def mark(session: Any) -> tuple[bool, int]:
            _, changed = inbox.mark_read(session, user_id, notification_id, read)
            return changed, inbox.unread_count(session, user_id)

        try:
            changed, unread = await db.write(mark)
        except NotFound as exc:
            return {"type": "error", "detail": exc.detail}
        if changed:
            publish_read(channels, user_id, [notification_id], read, unread)
        return None
