"""Authenticated WebSockets that live no longer than their session.

A socket is authenticated once, at the handshake; everything after that is this module's job. A
`SocketSession` keeps the socket only while the session behind its token is usable, and closes it
with `CLOSE_SESSION_ENDED` (4401, "sign in again") otherwise:

- **pushed**: revoking a session (logout, `DELETE /auth/sessions/{id}`, refresh-token reuse, password
  change or reset) publishes `SESSION_ENDED` on the session's channel, `session:<id>`, through the
  app's channels (memory when embedded, Redis Pub/Sub in production, so the socket may be held by
  any API process); a socket subscribes to it with its other channels and closes when it arrives;
- **on every message**, in either direction: the session (revocation cache, the store shared by the
  API processes) and the account (active) are checked before a message is handled or forwarded;
- **on a timer**, every `RECHECK_SECONDS` (what the push cannot see: an account disabled, a session
  revoked by another tool) and **at the token's expiry**, whichever comes first.

The token may come in `Sec-WebSocket-Protocol` as the pair `bearer, <access token>` (a browser:
`new WebSocket(url, ["bearer", token])`); the server then answers with the `bearer` subprotocol,
never the token. `Authorization: Bearer` (non-browser clients) and `?token=` (clients that can set
neither; the address may end up in proxy logs) still work.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

import anyio
from litestar import WebSocket
from litestar.channels import ChannelsPlugin
from litestar.exceptions import NotAuthorizedException
from litestar.security.jwt import Token

from serving.auth.principal import Principal

log = logging.getLogger(__name__)

SUBPROTOCOL = "bearer"
CLOSE_SESSION_ENDED = 4401  # application close codes are 4000-4999; this one mirrors HTTP 401
RECHECK_SECONDS = 30.0
SESSION_ENDED = b'{"type":"session_ended"}'  # what a session's channel carries when it is revoked


def session_channel(session_id: uuid.UUID | str) -> str:
    return f"session:{session_id}"


def token_from_subprotocols(offered: Iterable[str]) -> str:
    """The token of a `bearer, <token>` pair among the offered subprotocols, or ""."""
    names = [name.strip() for name in offered]
    for i, name in enumerate(names[:-1]):
        if name.lower() == SUBPROTOCOL:
            return names[i + 1]
    return ""


def session_end_publisher(channels: ChannelsPlugin) -> Callable[[list[uuid.UUID]], Awaitable[None]]:
    """The `on_revoked` hook of the principal cache: tell the sockets of these sessions, wherever
    they are held, to close. A failed publish is logged; the sockets' own checks still close them."""

    async def publish(session_ids: list[uuid.UUID]) -> None:
        if not session_ids:
            return
        try:
            await channels.wait_published(SESSION_ENDED, [session_channel(s) for s in session_ids])
        except Exception:
            log.warning(
                "could not push the end of %d session(s) to their sockets", len(session_ids), exc_info=True
            )

    return publish


def _expiry(auth: Any) -> datetime | None:
    """When the handshake's token expires: ours (a Litestar `Token`) or an SSO provider's claims."""
    if isinstance(auth, Token):
        return auth.exp
    exp = (getattr(auth, "claims", None) or {}).get("exp")
    return datetime.fromtimestamp(exp, UTC) if isinstance(exp, int | float) else None


class SocketSession:
    """One accepted WebSocket bound to the session of its token (see the module docstring).

    Use: `await accept()`, subscribe to `channels` (with the socket's own channels, in one
    subscription, so a revocation is seen before anything published after it), send through `send`,
    pass each published message to `forward`, and run the receive loop through `run`, which returns
    when the client leaves or the session ends."""

    def __init__(self, socket: WebSocket[Principal, Any, Any], ctx: Any, *, recheck: float | None = None):
        principal: Principal = socket.user
        self.socket, self.ctx = socket, ctx
        self.recheck = RECHECK_SECONDS if recheck is None else recheck
        self.user_id, self.session_id = principal.user_id, principal.session_id
        self.expires_at = _expiry(socket.auth)
        self.closed = False
        self._lock = anyio.Lock()
        self._scope: anyio.CancelScope | None = None

    @property
    def channels(self) -> list[str]:
        return [session_channel(self.session_id)] if self.session_id else []

    async def accept(self) -> None:
        offered = [name.strip().lower() for name in self.socket.scope.get("subprotocols") or []]
        await self.socket.accept(subprotocols=SUBPROTOCOL if SUBPROTOCOL in offered else None)

    async def valid(self) -> bool:
        """The token has not expired, its session is active and the account is enabled."""
        from serving.auth.security import session_revoked

        if self.closed:
            return False
        if self.expires_at is not None and datetime.now(UTC) >= self.expires_at:
            return False
        if self.session_id is not None and await session_revoked(self.ctx, self.session_id):
            return False
        try:
            await self.ctx.principal(self.user_id, self.session_id)
        except NotAuthorizedException:
            return False
        return True

    async def send(self, text: str) -> bool:
        """Send unless the socket was closed; False when it was."""
        async with self._lock:
            if self.closed:
                return False
            await self.socket.send_text(text)
            return True

    async def forward(self, data: bytes) -> None:
        """A message published to the socket's channels: the session's end closes the socket; anything
        else goes to the client while the session is valid. One the client can no longer take is
        dropped (the connection is closing: the receive loop sees the disconnect)."""
        if data == SESSION_ENDED or not await self.valid():
            await self.end()
            return
        try:
            await self.send(data.decode())
        except Exception as exc:  # the transport's own error types differ per ASGI server
            log.debug("dropped a message for a closing socket of %s: %r", self.user_id, exc)

    async def end(self, reason: str = "the session ended; sign in again") -> None:
        """Close the socket (once) and stop `run`."""
        async with self._lock:
            if not self.closed:
                self.closed = True
                with suppress(Exception):  # the client may be gone already
                    await self.socket.close(code=CLOSE_SESSION_ENDED, reason=reason)
        if self._scope is not None:
            self._scope.cancel()

    async def run(self, receive_loop: Callable[[], Awaitable[None]]) -> None:
        """Run the receive loop beside the timer until either ends or `end` is called."""
        async with anyio.create_task_group() as group:
            self._scope = group.cancel_scope
            if self.closed:
                group.cancel_scope.cancel()
            group.start_soon(self._watch)
            await receive_loop()
            group.cancel_scope.cancel()

    async def _watch(self) -> None:
        while True:
            delay = self.recheck
            if self.expires_at is not None:
                delay = min(delay, max(0.0, (self.expires_at - datetime.now(UTC)).total_seconds()))
            await anyio.sleep(delay)
            if not await self.valid():
                await self.end()
                return
