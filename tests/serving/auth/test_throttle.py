from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import anyio
import pytest
from litestar.datastructures import Headers
from litestar.stores.memory import MemoryStore
from litestar.stores.redis import RedisStore
from redis.asyncio import Redis

from serving.auth.throttle import LoginThrottle, RequestLimit, client_ip, parse_trusted_proxies


class Clock:
    def __init__(self) -> None:
        self.t = 1_750_000_000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[MemoryStore | RedisStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    redis_store = RedisStore.with_client(
        url=request.getfixturevalue("redis_url"), namespace=f"thmnayah-test-{uuid.uuid4().hex}"
    )
    async with redis_store:
        yield redis_store
        await redis_store.delete_all()


@pytest.fixture
def throttle(store, clock: Clock) -> LoginThrottle:
    return LoginThrottle(store, now=clock)


# --- brute force from one address -------------------------------------------------------------


async def test_brute_force_from_one_ip_is_blocked_with_retry_seconds(throttle: LoginThrottle, clock: Clock):
    ip = "203.0.113.7"
    for i in range(5):
        assert await throttle.check(ip, f"user{i}") is None, f"attempt {i + 1} is allowed"
        await throttle.record_failure(ip, f"user{i}")  # a new account each time: only the IP limit
        clock.advance(1)
    wait = await throttle.check(ip, "someone-else")
    assert wait == pytest.approx(55), "blocked until the first failure is a minute old"
    assert await throttle.check("198.51.100.1", "someone-else") is None, "other addresses are not"

    clock.advance(54.5)
    assert await throttle.check(ip, "someone-else") == pytest.approx(0.5)
    clock.advance(0.5)
    assert await throttle.check(ip, "someone-else") is None, "one failure left the window"
    await throttle.record_failure(ip, "user9")
    assert await throttle.check(ip, "someone-else") == pytest.approx(1), "sliding, not a fixed minute"


async def test_ipv6_addresses_count_per_64(throttle: LoginThrottle):
    for i in range(1, 6):
        await throttle.record_failure(f"2001:db8:1:2::{i:x}", f"user{i}")
    assert await throttle.check("2001:db8:1:2:ffff:ffff:ffff:ffff", "x") is not None
    assert await throttle.check("2001:db8:1:3::1", "x") is None


# --- credential stuffing against one account --------------------------------------------------


async def test_stuffing_one_account_from_many_ips_gets_growing_delays(throttle: LoginThrottle, clock: Clock):
    account = "victim@example.com"
    ips = (f"192.0.2.{i}" for i in range(1, 255))
    for _ in range(2):
        await throttle.record_failure(next(ips), account)
        assert await throttle.check(next(ips), account) is None, "below the threshold"

    waits = []
    for _ in range(40):
        await throttle.record_failure(next(ips), account)
        wait = await throttle.check(next(ips), account)  # a fresh address each time
        assert wait is not None
        waits.append(wait)
        clock.advance(wait)
        assert await throttle.check(next(ips), account) is None, "the delay ends on time"

    assert waits[:4] == [30, 60, 90, 120]
    assert all(b >= a for a, b in zip(waits, waits[1:], strict=False))
    assert max(waits) == waits[-1] == 900, "capped at max_wait_s"


async def test_login_names_are_compared_case_insensitively(throttle: LoginThrottle):
    for ip in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
        await throttle.record_failure(ip, "Alice@Example.COM")
    assert await throttle.check("192.0.2.4", " alice@example.com") == pytest.approx(30)
    assert await throttle.check("192.0.2.4", "bob@example.com") is None


async def test_success_resets_the_account_but_not_the_ip(throttle: LoginThrottle, clock: Clock):
    ip = "203.0.113.9"
    for _ in range(3):
        await throttle.record_failure(ip, "carol")
    assert await throttle.check("192.0.2.50", "carol") == pytest.approx(30)
    clock.advance(30)
    await throttle.record_success("carol")
    await throttle.record_failure("192.0.2.51", "carol")
    assert await throttle.check("192.0.2.52", "carol") is None, "one failure after a success: no delay"

    for _ in range(2):
        await throttle.record_failure(ip, "dave")
    await throttle.record_success("dave")
    assert await throttle.check(ip, "erin") is not None, "5 failures from this IP in the minute"


async def test_consecutive_failures_are_forgotten_after_the_reset_time(store, clock: Clock):
    throttle = LoginThrottle(store, account_reset_s=3600, now=clock)
    for i in range(2):
        await throttle.record_failure(f"192.0.2.{i}", "frank")
    clock.advance(3600)
    await throttle.record_failure("192.0.2.9", "frank")
    assert await throttle.check("192.0.2.10", "frank") is None


async def test_custom_limits(store, clock: Clock):
    throttle = LoginThrottle(
        store, ip_limit=2, ip_window_s=10, account_threshold=1, wait_increment_s=5, max_wait_s=12, now=clock
    )
    await throttle.record_failure("192.0.2.1", "grace")
    assert await throttle.check("192.0.2.2", "grace") == pytest.approx(5)
    await throttle.record_failure("192.0.2.1", "grace")
    assert await throttle.check("192.0.2.1", "heidi") == pytest.approx(10)
    assert await throttle.check("192.0.2.2", "grace") == pytest.approx(10)
    await throttle.record_failure("192.0.2.3", "grace")
    assert await throttle.check("192.0.2.4", "grace") == pytest.approx(12)


async def test_garbage_in_the_store_is_ignored(store: MemoryStore | RedisStore, clock: Clock):
    throttle = LoginThrottle(store, now=clock)
    await store.set("login-ip:192.0.2.1", b"not json")
    await store.set(LoginThrottle._account_key("ivan"), b'{"failures": "many"}')
    assert await throttle.check("192.0.2.1", "ivan") is None
    await throttle.record_failure("192.0.2.1", "ivan")
    assert await throttle.check("192.0.2.1", "ivan") is None


# --- the store's TTLs, on the real clock -----------------------------------------------------


async def test_windows_expire_on_the_real_clock(store):
    throttle = LoginThrottle(store, ip_limit=2, ip_window_s=1, account_threshold=2, wait_increment_s=1)
    await throttle.record_failure("192.0.2.1", "judy")
    await throttle.record_failure("192.0.2.1", "judy")
    wait = await throttle.check("192.0.2.1", "judy")
    assert wait is not None and 0 < wait <= 2
    await anyio.sleep(wait + 0.2)
    assert await throttle.check("192.0.2.1", "judy") is None


@pytest.mark.redis
async def test_redis_keys_carry_ttls_and_no_raw_login_names(redis_url: str):
    namespace = f"thmnayah-test-{uuid.uuid4().hex}"
    store = RedisStore.with_client(url=redis_url, namespace=namespace)
    raw = Redis.from_url(redis_url)
    try:
        async with store:
            throttle = LoginThrottle(store, ip_window_s=1, account_reset_s=1)
            await throttle.record_failure("192.0.2.77", "Mallory@Example.com")
            keys = [key.decode() for key in await raw.keys(f"{namespace}:*")]
            assert len(keys) == 2
            assert not any("mallory" in key.lower() or "example" in key.lower() for key in keys)
            assert [0 < await raw.ttl(key) <= 1 for key in keys] == [True, True], "every key expires"
            start = time.monotonic()
            while await raw.keys(f"{namespace}:*") and time.monotonic() - start < 3:
                await anyio.sleep(0.1)
            assert await raw.keys(f"{namespace}:*") == [], "Redis dropped the expired windows"
            await store.delete_all()
    finally:
        await raw.aclose()


# --- the client address -----------------------------------------------------------------------

PROXIES = "10.0.0.0/8, 192.168.1.1, 2001:db8:ffff::/48"


def test_untrusted_peer_cannot_spoof_forwarded_for():
    headers = {"x-forwarded-for": "1.2.3.4"}
    assert client_ip("203.0.113.7", headers, PROXIES) == "203.0.113.7"
    assert client_ip("203.0.113.7", headers, "") == "203.0.113.7"
    assert client_ip("10.0.0.2", headers, "") == "10.0.0.2", "no proxies configured: nobody trusted"


def test_trusted_proxy_chain_is_resolved_from_the_right():
    # client 198.51.100.9 claims to be 6.6.6.6; the edge proxy appends what it saw, the inner
    # proxy appends the edge's address.
    headers = {"x-forwarded-for": "6.6.6.6, 198.51.100.9, 192.168.1.1"}
    assert client_ip("10.1.2.3", headers, PROXIES) == "198.51.100.9"
    v6 = {"X-Forwarded-For": "2001:db8:aaaa::5, 2001:db8:ffff::1"}
    assert client_ip("2001:db8:ffff::2", v6, PROXIES) == "2001:db8:aaaa::5"


def test_forwarded_for_spread_over_several_header_lines():
    headers = Headers([(b"x-forwarded-for", b"6.6.6.6"), (b"x-forwarded-for", b"198.51.100.9, 10.0.0.1")])
    assert client_ip("10.0.0.2", headers, PROXIES) == "198.51.100.9"
    spoof_last = Headers([(b"x-forwarded-for", b"198.51.100.9"), (b"x-forwarded-for", b"10.9.9.9")])
    assert client_ip("10.0.0.2", spoof_last, PROXIES) == "198.51.100.9"


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("10.0.0.2", None, "10.0.0.2"),  # no header: the proxy itself
        ("10.0.0.2", "", "10.0.0.2"),
        ("10.0.0.2", "10.0.0.9", "10.0.0.9"),  # only proxies: the farthest one
        ("10.0.0.2", "198.51.100.9, garbage", "10.0.0.2"),  # the proxy wrote nonsense
        ("10.0.0.2", "garbage, 198.51.100.9", "198.51.100.9"),  # the client wrote nonsense
        ("10.0.0.2", "unknown, , ,", "10.0.0.2"),
        ("10.0.0.2", "198.51.100.9:4711", "198.51.100.9"),
        ("10.0.0.2", "[2001:db8::7]:443", "2001:db8::7"),
        ("10.0.0.2", '"[2001:db8::7]"', "2001:db8::7"),
        ("10.0.0.2", "::ffff:198.51.100.9", "198.51.100.9"),
        ("::ffff:10.0.0.2", "198.51.100.9", "198.51.100.9"),  # mapped peer, trusted as 10/8
        ("10.0.0.2", "x" * 100_000, "10.0.0.2"),
        ("10.0.0.2", ",".join(["10.0.0.1"] * 5000), "10.0.0.1"),
        ("testclient", "198.51.100.9", "testclient"),  # not an address: taken as it is
        ("", "198.51.100.9", ""),
    ],
)
def test_client_ip_tolerates_odd_input(peer, forwarded, expected):
    headers = {} if forwarded is None else {"x-forwarded-for": forwarded}
    assert client_ip(peer, headers, PROXIES) == expected


def test_bad_trusted_proxy_setting_is_an_error():
    assert len(parse_trusted_proxies(" 10.0.0.0/8 ,, ::1 ")) == 2
    with pytest.raises(ValueError, match="not-an-ip"):
        parse_trusted_proxies("10.0.0.0/8, not-an-ip")


# --- per-attempt limits of the flows that hash or mail (registration, reset) --------------------


async def test_request_limit_counts_attempts_per_ip_and_per_target(store, clock: Clock):
    limit = RequestLimit(store, "signup", per_ip=3, per_target=2, window_s=3600, now=clock)
    assert await limit.hit("203.0.113.1", "a@example.test") is None
    clock.advance(10)
    assert await limit.hit("203.0.113.2", "A@Example.test ") is None, "another IP: only the target counts"
    wait = await limit.hit("203.0.113.3", "a@example.test")
    assert wait == pytest.approx(3590), "the target's first attempt leaves the window in 3590 s"
    assert await limit.hit("203.0.113.1", "b@example.test") is None
    assert await limit.hit("203.0.113.1", "c@example.test") is None
    assert await limit.hit("203.0.113.1", "d@example.test") == pytest.approx(3590), "the IP's limit"
    clock.advance(3600)
    assert await limit.hit("203.0.113.1", "d@example.test") is None, "refusals did not extend it"
    assert await limit.hit("2001:db8::1", "e@example.test") is None
    assert await limit.hit("2001:db8::2", "f@example.test") is None
    assert await limit.hit("2001:db8::3", "g@example.test") is None
    assert await limit.hit("2001:db8::ffff", "h@example.test") is not None, "IPv6 counts per /64"
