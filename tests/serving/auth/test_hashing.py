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


class WaitsForTheLoop(PasswordHashing):
    """Real hashing; each blocking call, once it runs, also waits for the event loop to answer it, so
    it can only finish if the loop is free to run other tasks in the meantime."""

    def __init__(self) -> None:
        super().__init__(1)
        self.running = threading.Event()
        self.answered = threading.Event()

    def _wait_for_the_loop(self) -> None:
        self.running.set()
        if not self.answered.wait(30):
            raise AssertionError("the event loop ran nothing while a hash was being computed")
        self.answered.clear()

    def _hash(self, password: str) -> str:
        stored = super()._hash(password)
        self._wait_for_the_loop()
        return stored

    def _verify(self, stored_hash: str, password: str) -> tuple[bool, str | None]:
        outcome = super()._verify(stored_hash, password)
        self._wait_for_the_loop()
        return outcome

    def _dummy_verify(self, password: str) -> bool:
        outcome = super()._dummy_verify(password)
        self._wait_for_the_loop()
        return outcome


async def test_the_event_loop_stays_responsive_while_hashing():
    hashing = WaitsForTheLoop()
    answers = 0

    async def answer() -> None:
        """On the event loop: answer each blocking call while it runs."""
        nonlocal answers
        while True:
            while not hashing.running.is_set():
                await anyio.sleep(0.001)
            hashing.running.clear()
            hashing.answered.set()
            answers += 1

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(answer)
        stored = await hashing.hash("some password")
        assert await hashing.verify(stored, "some password") == (True, None)
        assert await hashing.verify(None, "some password") == (False, None)
        tasks.cancel_scope.cancel()
    assert answers == 3  # each of the three calls was answered by the loop while it was running


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
