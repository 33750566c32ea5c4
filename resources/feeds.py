"""The HTTP client of feed imports: conditional, capped, polite and kept off private networks.

One fetch is a conditional GET (`If-None-Match` / `If-Modified-Since` from the last answer; a 304
comes back as `not_modified`), and reports the earliest next poll the server asks for
(`Cache-Control: max-age`, `Expires`, or `Retry-After` on 429/503: `domain.imports.polling`).
Caps: the body is streamed and given up once it passes `max_bytes` (decompressed; a larger
`Content-Length` is refused before a byte is read), and the whole fetch, every redirect hop and the
body, must finish within `timeout_seconds` (a server that drips bytes cannot hold it).

Redirects are followed by hand, at most `max_redirects`, and every hop's address is checked the way
webhook destinations are (`resources.webhook_http`): the host is resolved once, refused when it is
or resolves to a loopback, private, link-local or other non-public address (unless
`allow_private_networks`), and the connection goes to exactly the address that was checked, so a
DNS answer that changes between check and connect (rebinding) reaches nothing. Requests to one host
wait for one of `host_concurrency` slots (an anyio semaphore per host), so a thousand feeds on one
server do not arrive at once.

No Dagster here: the Dagster wrapper (later) vends this client to the import runs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import httpx

from domain.imports.polling import THROTTLED_STATUSES, http_not_before
from domain.settings import Settings
from resources import webhook_http

ALLOW_PRIVATE_SETTING = "THMNAYAH_IMPORT_ALLOW_PRIVATE_NETWORKS"
MIB = 1024 * 1024
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
PERMANENT_REDIRECTS = frozenset({301, 308})
USER_AGENT = "thmnayah-import/0.1 (feed reader)"
ACCEPT = "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"


class FeedFetchError(Exception):
    """A fetch that produced no feed. `kind`: `url` (not an http(s) URL), `refused` (a non-public
    address), `network`, `timeout`, `too_large`, `redirects` (too many or without a Location),
    `throttled` (429/503; `not_before` carries `Retry-After`) or `http` (any other status)."""

    def __init__(
        self, kind: str, reason: str, *, status: int | None = None, not_before: dt.datetime | None = None
    ) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.status = status
        self.not_before = not_before


@dataclass(frozen=True)
class FeedResponse:
    """A feed body (status 200) or the news that it did not change (304, empty body)."""

    url: str
    status: int
    body: bytes
    content_type: str | None
    etag: str | None
    last_modified: str | None
    not_before: dt.datetime | None
    moved_to: str | None = None  # set when every redirect on the way was permanent (301/308)

    @property
    def not_modified(self) -> bool:
        return self.status == 304


class FeedFetcher:
    """Fetches feeds (see the module docstring). Use as `async with FeedFetcher(...) as fetcher:`
    or call `aclose()`; one instance serves many concurrent fetches in one event loop."""

    def __init__(
        self,
        *,
        max_bytes: int = 10 * MIB,
        timeout_seconds: float = 30.0,
        allow_private_networks: bool = False,
        host_concurrency: int = 2,
        max_redirects: int = 5,
        connections: int = 50,
        user_agent: str = USER_AGENT,
    ) -> None:
        self.max_bytes = max_bytes
        self.timeout_seconds = timeout_seconds
        self.allow_private_networks = allow_private_networks
        self.host_concurrency = host_concurrency
        self.max_redirects = max_redirects
        self.user_agent = user_agent
        self._client, self._backend = webhook_http.pinned_client(timeout_seconds, connections)
        self._hosts: dict[str, anyio.Semaphore] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> FeedFetcher:
        return cls(
            max_bytes=settings.import_feed_max_mb * MIB,
            timeout_seconds=settings.import_feed_timeout_seconds,
            allow_private_networks=settings.import_allow_private_networks,
            host_concurrency=settings.import_feed_host_concurrency,
        )

    async def __aenter__(self) -> FeedFetcher:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        now: dt.datetime | None = None,
    ) -> FeedResponse:
        """GET the feed at `url`, conditionally when `etag` / `last_modified` are given. Raises
        `FeedFetchError`."""
        headers = {"User-Agent": self.user_agent, "Accept": ACCEPT}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        try:
            with anyio.fail_after(self.timeout_seconds):
                return await self._follow(_http_url(url), headers, now or dt.datetime.now(dt.UTC), etag)
        except (TimeoutError, httpx.TimeoutException):
            raise FeedFetchError(
                "timeout", f"the feed did not arrive in full within {self.timeout_seconds:g} s"
            ) from None
        except httpx.TransportError as exc:
            raise FeedFetchError("network", f"the feed could not be fetched: {exc}") from None

    async def _follow(
        self, url: httpx.URL, headers: dict[str, str], now: dt.datetime, etag: str | None
    ) -> FeedResponse:
        permanent = True
        for hop in range(self.max_redirects + 1):
            await self._pin(url, redirected=hop > 0)
            async with self._host_slot(url):
                request = self._client.build_request("GET", url, headers=headers)
                response = await self._client.send(request, stream=True)
                try:
                    status = response.status_code
                    if status not in REDIRECT_STATUSES:
                        moved_to = str(url) if hop and permanent else None
                        return await self._answer(response, url, now, etag, moved_to)
                    location = response.headers.get("location")
                    if not location:
                        raise FeedFetchError("redirects", f"HTTP {status} without a Location", status=status)
                finally:
                    await response.aclose()
            permanent = permanent and status in PERMANENT_REDIRECTS
            url = _http_url(str(url.join(location)))
        raise FeedFetchError("redirects", f"more than {self.max_redirects} redirects")

    async def _answer(
        self,
        response: httpx.Response,
        url: httpx.URL,
        now: dt.datetime,
        etag: str | None,
        moved_to: str | None,
    ) -> FeedResponse:
        status = response.status_code
        not_before = http_not_before(status, response.headers, now)
        if status in THROTTLED_STATUSES:
            raise FeedFetchError(
                "throttled", f"the feed server is busy (HTTP {status})", status=status, not_before=not_before
            )
        if status != 304 and not 200 <= status < 300:
            raise FeedFetchError("http", f"the feed answered HTTP {status}", status=status)
        body = b"" if status == 304 else await self._read_capped(response)
        return FeedResponse(
            url=str(url),
            status=304 if status == 304 else 200,
            body=body,
            content_type=response.headers.get("content-type"),
            etag=response.headers.get("etag") or (etag if status == 304 else None),
            last_modified=response.headers.get("last-modified"),
            not_before=not_before,
            moved_to=moved_to,
        )

    async def _read_capped(self, response: httpx.Response) -> bytes:
        declared = response.headers.get("content-length", "").strip()
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise FeedFetchError("too_large", self._too_large(f"declares {int(declared):,} bytes"))
        chunks: list[bytes] = []
        total = 0
        async for chunk in response.aiter_bytes():
            total += len(chunk)
            if total > self.max_bytes:
                raise FeedFetchError("too_large", self._too_large("went past it while streaming"))
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self, how: str) -> str:
        return f"the feed is larger than the {self.max_bytes:,}-byte limit (it {how})"

    async def _pin(self, url: httpx.URL, *, redirected: bool) -> None:
        """Check the hop's host and pin the connection to the addresses checked."""
        host = webhook_http.connect_host(url)
        what = f"the redirect to {url}" if redirected else "the feed URL"
        try:
            addresses = await webhook_http.check_destination(
                url, allow_private_networks=self.allow_private_networks
            )
        except webhook_http.DestinationRefused as refused:
            if refused.permanent:
                raise FeedFetchError(
                    "refused",
                    f"{what} was refused: its host {host!r} is or resolves to a non-public address "
                    f"(loopback, private, link-local or reserved); set {ALLOW_PRIVATE_SETTING}=true to "
                    "allow it",
                ) from None
            raise FeedFetchError("network", f"{what}: the host {host!r} does not resolve") from None
        self._backend.pin(host, addresses)

    @asynccontextmanager
    async def _host_slot(self, url: httpx.URL) -> AsyncIterator[None]:
        host = webhook_http.connect_host(url).lower()
        semaphore = self._hosts.get(host)
        if semaphore is None:
            semaphore = self._hosts[host] = anyio.Semaphore(self.host_concurrency)
        async with semaphore:
            yield


def _http_url(text: str) -> httpx.URL:
    try:
        url = httpx.URL(text)
    except (httpx.InvalidURL, TypeError) as exc:
        raise FeedFetchError("url", f"not a URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise FeedFetchError("url", f"only http(s) feed URLs are fetched, got {text!r}")
    return url
