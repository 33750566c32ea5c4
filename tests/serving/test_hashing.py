from __future__ import annotations

import threading

import anyio
import bcrypt
import pytest

from domain.auth.passwords import hash_password
from serving.auth.hashing import PasswordHashing


class CountingHashing(PasswordHashing):
    """Real hashing, plus a record of how many blocking computations overlap."""

    def __init__(self, concurrency: int) -> None:
        super().__init__(concurrency)
        self._lock = threading.Lock()
        self.active = 0
        self.max_active = 0
        self.threads: set[int] = set()

    def _enter(self) -> None:
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            self.threads.add(threading.get_ident())

    def _exit(self) -> None:
        with self._lock:
            self.active -= 1

    def _hash(self, password: str) -> str:
        self._enter()
        try:
            return super()._hash(password)
        finally:
            self._exit()

    def _verify(self, stored_hash: str, password: str) -> tuple[bool, str | None]:
        self._enter()
        try:
            return super()._verify(stored_hash, password)
        finally:
            self._exit()

    def _dummy_verify(self, password: str) -> bool:
        self._enter()
        try:
            return super()._dummy_verify(password)
        finally:
            self._exit()


async def test_hash_and_verify_round_trip():
    hashing = PasswordHashing(2)
    stored = await hashing.hash("correct horse battery staple")
    assert stored.startswith("$argon2id$")
    assert await hashing.verify(stored, "correct horse battery staple") == (True, None)
    assert await hashing.verify(stored, "wrong horse battery staple") == (False, None)
    assert await hashing.verify(None, "correct horse battery staple") == (False, None)
    assert await hashing.verify("not a hash", "correct horse battery staple") == (False, None)


async def test_imported_bcrypt_hash_comes_back_rehashed():
    hashing = PasswordHashing(1)
    legacy = bcrypt.hashpw(b"imported-secret-1", bcrypt.gensalt(rounds=4)).decode()
    ok, new_hash = await hashing.verify(legacy, "imported-secret-1")
    assert ok and new_hash is not None and new_hash.startswith("$argon2id$")


@pytest.mark.parametrize("limit", [1, 2])
async def test_a_flood_queues_on_the_limiter(limit):
    hashing = CountingHashing(limit)
    stored = hash_password("the real password")
    main_thread = threading.get_ident()
    results: list[tuple[bool, str | None]] = []

    async def attempt(i: int) -> None:
        if i % 3 == 0:
            results.append(await hashing.verify(None, f"guess {i}"))
        elif i % 3 == 1:
            results.append(await hashing.verify(stored, f"guess {i}"))
        else:
            await hashing.hash(f"new password {i}")

    async with anyio.create_task_group() as tasks:
        for i in range(3 * limit + 2):
            tasks.start_soon(attempt, i)

    assert hashing.max_active == limit, "never more than the limit at once, and the limit is used"
    assert hashing.active == 0
    assert main_thread not in hashing.threads, "hashing never runs on the event loop's thread"
    assert results and all(result == (False, None) for result in results)


async def test_the_event_loop_stays_responsive_while_hashing():
    hashing = PasswordHashing(1)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.sleep(0.005)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(ticker)
        for _ in range(3):
            await hashing.hash("some password")
        tasks.cancel_scope.cancel()
    # three ~40 ms hashes: a blocked loop would tick about once.
    assert ticks >= 5


async def test_unknown_account_does_the_same_work_as_a_wrong_password():
    """No timing here (the suite asserts no timings): the unknown-account path verifies against a
    real argon2id hash made with exactly the parameters of stored hashes, so it costs the same."""
    from domain.auth import passwords

    hashing = PasswordHashing(1)
    stored = await hashing.hash("the real password")
    assert await hashing.verify(None, "a wrong guess") == (False, None)
    assert await hashing.verify(stored, "a wrong guess") == (False, None)
    dummy = passwords._dummy_hash()
    params = lambda h: h.split("$")[1:4]  # noqa: E731  (algorithm, version, m/t/p)
    assert params(dummy) == params(stored) and dummy.startswith("$argon2id$")


def test_concurrency_must_be_positive():
    with pytest.raises(ValueError):
        PasswordHashing(0)
