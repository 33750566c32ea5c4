"""The feed client (resources.feeds) against a real HTTP server in a thread: conditional GET, server
hints, size and time caps, redirects checked hop by hop, private addresses, per-host limits.

The server listens on 127.0.0.1, a loopback address: tests that must reach it allow private
networks; the ones that test the refusal do not."""

from __future__ import annotations

import datetime as dt
import ipaddress
import threading
import time
from typing import Any

import anyio
import pytest

from domain.imports.feeds import parse_feed
from domain.notifications import webhooks
from domain.settings import Settings
from resources.feeds import MIB, FeedFetcher, FeedFetchError
from tests.domain.imports.feed_samples import ARABIC_PODCAST
from tests.resources.conftest import JsonHandler, http_server

NOW = dt.datetime(2026, 12, 8, 12, 0, tzinfo=dt.UTC)
FEED = ARABIC_PODCAST.encode()
ETAG = '"podcast-v1"'
LAST_MODIFIED = "Mon, 07 Dec 2026 10:00:00 GMT"


class FeedHandler(JsonHandler):
    """Routes by path; records each request's path and headers on the server."""

    def do_GET(self) -> None:  # noqa: N802
        server: Any = self.server
        with server.lock:
            server.requests.append((self.path, dict(self.headers)))
        route = getattr(self, "route_" + self.path.strip("/").split("?")[0].replace("-", "_"), None)
        if route is None:
            self.raw(404, b"not here")
        else:
            route()

    def raw(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def route_feed(self) -> None:
        if self.headers.get("If-None-Match") == ETAG:
            self.raw(304, headers={"ETag": ETAG, "Cache-Control": "max-age=300"})
            return
        self.raw(
            200,
            FEED,
            {
                "Content-Type": "application/rss+xml; charset=utf-8",
                "ETag": ETAG,
                "Last-Modified": LAST_MODIFIED,
                "Cache-Control": "public, max-age=300",
            },
        )

    def route_busy(self) -> None:
        self.raw(503, b"try later", {"Retry-After": "120"})

    def route_gone(self) -> None:
        self.raw(410, b"gone")

    def route_slow(self) -> None:
        """Headers at once, then a byte every 0.2 s (for up to 10 s)."""
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.end_headers()
        for _ in range(50):
            try:
                self.wfile.write(b" ")
                self.wfile.flush()
            except OSError:
                return
            time.sleep(0.2)

    def route_big(self) -> None:
        """A 50 MB feed with no Content-Length, counting what got out before the client hung up."""
        server: Any = self.server
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.end_headers()
        chunk = b"<!-- " + b"x" * (64 * 1024 - 9) + b" -->"
        try:
            self.wfile.write(b'<?xml version="1.0"?><rss version="2.0"><channel>')
            while server.big_sent < 50 * MIB:
                self.wfile.write(chunk)
                server.big_sent += len(chunk)
        except OSError:
            pass

    def route_big_declared(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(50 * MIB))
        self.end_headers()
        self.wfile.write(b"<rss")

    def route_moved(self) -> None:
        self.raw(301, headers={"Location": "/moved-again"})

    def route_moved_again(self) -> None:
        self.raw(308, headers={"Location": f"http://127.0.0.1:{self.server.server_port}/feed"})

    def route_found(self) -> None:
        self.raw(302, headers={"Location": "/moved"})

    def route_loop(self) -> None:
        self.raw(302, headers={"Location": "/loop"})

    def route_no_location(self) -> None:
        self.raw(302)

    def route_to_private(self) -> None:
        self.raw(302, headers={"Location": "http://10.20.30.40/feed.xml"})

    def route_held(self) -> None:
        """Holds each request 0.3 s, counting how many are held at once (before answering, so a
        client never sees the answer while its request still counts)."""
        server: Any = self.server
        with server.lock:
            server.held += 1
            server.most_held = max(server.most_held, server.held)
        time.sleep(0.3)
        with server.lock:
            server.held -= 1
        self.raw(200, FEED, {"Content-Type": "application/rss+xml"})


def feed_server(**state: Any):
    defaults = {"lock": threading.Lock(), "big_sent": 0, "held": 0, "most_held": 0}
    return http_server(FeedHandler, **(defaults | state))


def fetcher(**options: Any) -> FeedFetcher:
    return FeedFetcher(**({"allow_private_networks": True, "timeout_seconds": 10.0} | options))


def base(server: Any) -> str:
    return f"http://127.0.0.1:{server.server_port}"


# --- conditional GET and server hints ------------------------------------------------------------


async def test_a_conditional_get_comes_back_not_modified() -> None:
    with feed_server() as server:
        async with fetcher() as client:
            first = await client.fetch(f"{base(server)}/feed", now=NOW)
            second = await client.fetch(
                f"{base(server)}/feed", etag=first.etag, last_modified=first.last_modified, now=NOW
            )
    assert (first.status, first.not_modified, first.body) == (200, False, FEED)
    assert (first.etag, first.last_modified) == (ETAG, LAST_MODIFIED)
    assert first.not_before == NOW + dt.timedelta(seconds=300) and first.moved_to is None
    assert first.content_type == "application/rss+xml; charset=utf-8"
    assert [
        e.key for e in parse_feed(first.body, content_type=first.content_type, url=first.url).entries
    ] == [
        "guid:thmanyah-ep-1",
        "guid:thmanyah-ep-2",
    ]
    assert (second.status, second.not_modified, second.body, second.etag) == (304, True, b"", ETAG)
    assert second.not_before == NOW + dt.timedelta(seconds=300)
    sent = server.requests[1][1]
    assert (sent["If-None-Match"], sent["If-Modified-Since"]) == (ETAG, LAST_MODIFIED)
    assert "If-None-Match" not in server.requests[0][1]


async def test_retry_after_on_503_is_reported_with_the_error() -> None:
    with feed_server() as server:
        async with fetcher() as client:
            with pytest.raises(FeedFetchError) as raised:
                await client.fetch(f"{base(server)}/busy", now=NOW)
            with pytest.raises(FeedFetchError) as gone:
                await client.fetch(f"{base(server)}/gone", now=NOW)
    assert (raised.value.kind, raised.value.status) == ("throttled", 503)
    assert raised.value.not_before == NOW + dt.timedelta(seconds=120)
    assert (gone.value.kind, gone.value.status, gone.value.reason) == (
        "http",
        410,
        "the feed answered HTTP 410",
    )


# --- caps ----------------------------------------------------------------------------------------


async def test_a_slow_feed_is_given_up_at_the_time_cap() -> None:
    with feed_server() as server:
        async with fetcher(timeout_seconds=1.0) as client:
            with pytest.raises(FeedFetchError) as raised:
                await client.fetch(f"{base(server)}/slow")
    assert raised.value.kind == "timeout"
    assert raised.value.reason == "the feed did not arrive in full within 1 s"


async def test_a_50_mb_feed_is_refused_while_streaming() -> None:
    with feed_server() as server:
        async with fetcher() as client:  # the default cap: 10 MiB
            assert client.max_bytes == 10 * MIB
            with pytest.raises(FeedFetchError) as raised:
                await client.fetch(f"{base(server)}/big")
            with pytest.raises(FeedFetchError) as declared:
                await client.fetch(f"{base(server)}/big-declared")
    assert raised.value.kind == "too_large" and "went past it while streaming" in raised.value.reason
    # The client hung up soon after the cap: beyond it, only what socket buffers hold got out.
    assert server.big_sent < 30 * MIB
    assert declared.value.kind == "too_large" and "declares 52,428,800 bytes" in declared.value.reason


def test_the_caps_come_from_the_settings() -> None:
    settings = Settings.from_env(
        {
            "THMNAYAH_IMPORT_FEED_MAX_MB": "3",
            "THMNAYAH_IMPORT_FEED_TIMEOUT_SECONDS": "7",
            "THMNAYAH_IMPORT_FEED_HOST_CONCURRENCY": "4",
            "THMNAYAH_IMPORT_ALLOW_PRIVATE_NETWORKS": "true",
        }
    )
    client = FeedFetcher.from_settings(settings)
    assert (client.max_bytes, client.timeout_seconds, client.host_concurrency) == (3 * MIB, 7, 4)
    assert client.allow_private_networks is True
    assert FeedFetcher.from_settings(Settings()).allow_private_networks is False


# --- redirects and addresses ---------------------------------------------------------------------


async def test_redirects_are_followed_and_a_permanent_move_is_reported() -> None:
    with feed_server() as server:
        async with fetcher() as client:
            moved = await client.fetch(f"{base(server)}/moved")
            found = await client.fetch(f"{base(server)}/found")
    assert moved.body == FEED and moved.url == f"{base(server)}/feed"
    assert moved.moved_to == f"{base(server)}/feed"  # 301 then 308: the source may take the new URL
    assert found.body == FEED and found.moved_to is None  # a 302 on the way: the old URL stays
    paths = [path for path, _ in server.requests]
    assert paths == ["/moved", "/moved-again", "/feed", "/found", "/moved", "/moved-again", "/feed"]


async def test_too_many_redirects_and_a_redirect_without_location() -> None:
    with feed_server() as server:
        async with fetcher(max_redirects=5) as client:
            with pytest.raises(FeedFetchError) as looped:
                await client.fetch(f"{base(server)}/loop")
            with pytest.raises(FeedFetchError) as nowhere:
                await client.fetch(f"{base(server)}/no-location")
    assert (looped.value.kind, looped.value.reason) == ("redirects", "more than 5 redirects")
    assert len(server.requests) == 6 + 1  # the first request and five redirects, then the one without
    assert (nowhere.value.kind, nowhere.value.status) == ("redirects", 302)


async def test_a_feed_url_on_127_0_0_1_is_refused_before_any_connection() -> None:
    with feed_server() as server:
        async with FeedFetcher(allow_private_networks=False) as client:
            with pytest.raises(FeedFetchError) as raised:
                await client.fetch(f"{base(server)}/feed")
            with pytest.raises(FeedFetchError) as named:
                await client.fetch(f"http://localhost:{server.server_port}/feed")
    assert raised.value.kind == "refused" and named.value.kind == "refused"
    assert "the feed URL was refused: its host '127.0.0.1' is or resolves to a non-public address" in (
        raised.value.reason
    )
    assert "THMNAYAH_IMPORT_ALLOW_PRIVATE_NETWORKS=true" in raised.value.reason
    assert server.requests == []


async def test_a_redirect_to_a_private_address_is_refused_at_the_hop(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first hop must pass the check to reach the redirect, and the test server is on loopback:
    for this test only 127.0.0.1 counts as public (the classification itself is tested with the
    webhooks), so the hop to 10.20.30.40 meets the real refusal, before any connection to it."""
    loopback = ipaddress.ip_address("127.0.0.1")
    monkeypatch.setattr(webhooks, "is_public_address", lambda address: address == loopback)
    with feed_server() as server:
        async with FeedFetcher(allow_private_networks=False, timeout_seconds=10.0) as client:
            with pytest.raises(FeedFetchError) as raised:
                await client.fetch(f"{base(server)}/to-private")
    assert raised.value.kind == "refused"
    assert raised.value.reason.startswith(
        "the redirect to http://10.20.30.40/feed.xml was refused: its host '10.20.30.40' is or resolves"
    )
    assert [path for path, _ in server.requests] == ["/to-private"]


async def test_only_http_urls_are_fetched() -> None:
    async with FeedFetcher() as client:
        for url in ("file:///etc/passwd", "ftp://feeds.example/rss", "not a url"):
            with pytest.raises(FeedFetchError) as raised:
                await client.fetch(url)
            assert raised.value.kind == "url"


# --- per-host concurrency ------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 2])
async def test_requests_to_one_host_wait_for_a_slot(limit: int) -> None:
    with feed_server() as server:
        async with fetcher(host_concurrency=limit) as client:
            bodies: list[bytes] = []

            async def one() -> None:
                bodies.append((await client.fetch(f"{base(server)}/held")).body)

            async with anyio.create_task_group() as tasks:
                for _ in range(5):
                    tasks.start_soon(one)
    assert bodies == [FEED] * 5
    assert server.most_held == limit
