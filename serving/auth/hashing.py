"""Password hashing off the event loop, a bounded number at a time.

An argon2id hash costs ~40 ms of CPU and 19 MiB. Every hash and verification runs in a worker
thread through one `anyio.CapacityLimiter` per API process (`THMNAYAH_PASSWORD_HASH_CONCURRENCY`),
so a flood of logins queues on the limiter instead of taking every core and the default thread pool
that the rest of the API needs.
"""

from __future__ import annotations

import anyio
import anyio.to_thread

from domain.auth import passwords


class PasswordHashing:
    def __init__(self, concurrency: int) -> None:
        if concurrency < 1:
            raise ValueError(f"password hash concurrency must be at least 1, got {concurrency}")
        self.limiter = anyio.CapacityLimiter(concurrency)

    async def hash(self, password: str) -> str:
        return await anyio.to_thread.run_sync(self._hash, password, limiter=self.limiter)

    async def verify(self, stored_hash: str | None, password: str) -> tuple[bool, str | None]:
        """`(ok, new_hash)` as `passwords.verify_password`; with no stored hash (unknown account, or
        one that only signs in through SSO) the same work is done against a dummy hash and the answer
        is `(False, None)`, so timing does not tell the two cases apart."""
        if stored_hash is None:
            await anyio.to_thread.run_sync(self._dummy_verify, password, limiter=self.limiter)
            return False, None
        return await anyio.to_thread.run_sync(self._verify, stored_hash, password, limiter=self.limiter)

    # The blocking calls, one per method so that a test can observe what runs in the threads.
    def _hash(self, password: str) -> str:
        return passwords.hash_password(password)

    def _verify(self, stored_hash: str, password: str) -> tuple[bool, str | None]:
        return passwords.verify_password(stored_hash, password)

    def _dummy_verify(self, password: str) -> bool:
        return passwords.dummy_verify(password)
