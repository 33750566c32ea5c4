"""The HTTP client of webhook deliveries: a destination is resolved once, checked, and the connection
goes to exactly the address that was checked.

Resolving a user's host name for the check and letting the HTTP client resolve it again to connect
leaves a window (DNS rebinding): a name with a zero TTL answers a public address to the check and
127.0.0.1 or 169.254.169.254 to the connection. Here the client never resolves a name itself: its
network backend (`PinnedBackend`) connects only to the addresses `check_destination` returned for
that host (pinned just before the request), and refuses a host nobody pinned. The URL keeps its
host name, so the `Host` header, TLS SNI and certificate verification are the host name's.

The client ignores the environment (`trust_env=False`): no `HTTP(S)_PROXY` sends the request to a
proxy that would resolve the name on its own, no `SSL_CERT_FILE` swaps the trusted roots.

No Dagster here: the API process uses `check_destination` when a webhook contact is registered.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable

import anyio
import httpcore
import httpx

from domain.notifications import webhooks

RESOLVE_TIMEOUT_SECONDS = 5.0


class DestinationRefused(Exception):
    """The destination is not allowed (`permanent`) or could not be resolved (not permanent)."""

    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


def connect_host(url: httpx.URL) -> str:
    """The host as the connection pool names it (IDNA-encoded, no IPv6 brackets): the pin's key."""
    return url.raw_host.decode("ascii")


async def resolve(host: str, port: int, *, timeout: float = RESOLVE_TIMEOUT_SECONDS) -> list[str]:
    """The addresses `host` resolves to (an IP address resolves to itself), in resolver order."""
    literal = webhooks.parse_address(host)
    if literal is not None:
        return [str(literal)]
    with anyio.fail_after(timeout):
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(sockaddr[0]).split("%")[0] for *_, sockaddr in infos))


async def check_destination(url: httpx.URL, *, allow_private_networks: bool) -> list[str]:
    """Resolve the URL's host once; the addresses to connect to. Raises `DestinationRefused`:
    permanent when an address is not public (unless allowed), retryable when the name does not
    resolve (DNS may be down for a moment)."""
    host = connect_host(url)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        addresses = await resolve(host, port)
    except (OSError, TimeoutError) as exc:
        reason = str(exc) or type(exc).__name__
        raise DestinationRefused(
            f"the webhook host {host!r} does not resolve: {reason}", permanent=False
        ) from None
    if not addresses:
        raise DestinationRefused(f"the webhook host {host!r} resolves to no address", permanent=False)
    if not allow_private_networks:
        refused = webhooks.non_public(host, addresses)
        if refused:
            raise DestinationRefused(refused, permanent=True)
    return addresses


async def refuse_private_host(url: str, *, allow_private_networks: bool) -> str | None:
    """For registration: why a webhook URL's host is refused (it resolves to a non-public address),
    or None. A name that does not resolve (yet) is let through: each delivery checks again."""
    if allow_private_networks:
        return None
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return None  # the URL's form is checked elsewhere (`domain.notifications.contacts`)
    if not parsed.host:
        return None
    try:
        await check_destination(parsed, allow_private_networks=False)
    except DestinationRefused as refused:
        return refused.reason if refused.permanent else None
    return None


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Connects a host only to the addresses pinned for it (tried in order); never resolves a name."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._pins: dict[str, tuple[str, ...]] = {}

    def pin(self, host: str, addresses: Iterable[str]) -> None:
        self._pins[host] = tuple(addresses)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = self._pins.get(host)
        if not addresses:
            raise httpcore.ConnectError(f"{host} was not checked before connecting")
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise type(failure)(f"cannot connect to {host} at {', '.join(addresses)}: {failure}")  # type: ignore[misc]

    async def connect_unix_socket(self, path: str, timeout=None, socket_options=None):  # noqa: ANN001
        raise httpcore.ConnectError("webhooks do not connect to Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with its connection pool on a `PinnedBackend` (httpx has no public option
    for a network backend, so the pool it built is replaced by the same pool on ours)."""

    def __init__(self, backend: PinnedBackend, limits: httpx.Limits) -> None:
        super().__init__(limits=limits, trust_env=False)
        ssl_context = httpx.create_ssl_context(trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )


def pinned_client(timeout_seconds: float, connections: int) -> tuple[httpx.AsyncClient, PinnedBackend]:
    """An HTTP client that connects only to pinned addresses (pin with `backend.pin(connect_host(url),
    check_destination(url))` before each request), ignores proxies and other settings of the
    environment, and follows no redirect."""
    backend = PinnedBackend()
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    client = httpx.AsyncClient(
        transport=PinnedTransport(backend, limits),
        timeout=httpx.Timeout(timeout_seconds),
        follow_redirects=False,
        trust_env=False,
    )
    return client, backend
