"""Failed-login limits, kept in a Litestar `Store` (memory when embedded, Redis in production).

Two independent limits, as OWASP's Authentication Cheat Sheet recommends:

- **per client IP** (brute force from one place): `ip_limit` failures within a sliding
  `ip_window_s` block that address until the oldest of them leaves the window. IPv6 clients are
  counted per /64, the block one subscriber usually gets, or every address of it would be new.
- **per account** (credential stuffing from many places), Keycloak-style progressive delay: from
  the `account_threshold`-th consecutive failure on, the account waits `wait_increment_s` after its
  last failure, one increment more for each further failure (30 s, 60 s, 90 s, ... by default),
  capped at `max_wait_s`, whatever the IP. A success resets it; `account_reset_s` after the last failure the
  count is forgotten (Keycloak's "failure reset time").

The login handler calls `check` before touching the password and answers 429 with `Retry-After`
when it returns a number; otherwise it verifies the password and calls `record_failure` or
`record_success`. Attempts rejected by `check` are not failures and do not extend a lockout.

Times come from `now` (wall clock by default, injectable for tests); the store's TTLs only
garbage-collect keys whose window is over. Limits of this design: a `Store` has no atomic
increment, so failures recorded concurrently for the same key can overwrite each other and count
once; and attempts already past `check` when the limit is reached still get their password verified
(a burst of parallel requests is bounded by the hashing limiter's queue, not here).

The account is named by the caller: `account_key(user_id)` for an existing account, so failures
through the username, the email address and the current-password checks of signed-in requests
(password change, MFA setup) all count in one bucket; the login name itself for an unknown one.
Either way a name gets the same limits and the same answers, so the limits do not tell existing
accounts from unknown names. (Who already knows both a username and an address can see whether
they share a bucket, by locking that account: the price of not giving each name its own budget.)

`RequestLimit` caps how often a flow that hashes a password or sends mail may run at all (not only
its failures): registration and password-reset requests, per client IP and per target address,
checked before any hashing or mail (`signup` and `reset` on the throttle, in the same store).
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
import math
import time
import unicodedata
from collections.abc import Callable, Mapping

from litestar.stores.base import Store

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=16)
def parse_trusted_proxies(trusted_proxies: str) -> tuple[IPNetwork, ...]:
    """`THMNAYAH_TRUSTED_PROXIES` as networks; raises ValueError on a bad entry (check at startup)."""
    networks = []
    for entry in trusted_proxies.split(","):
        entry = entry.strip()
        if entry:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError as exc:
                raise ValueError(f"trusted proxy {entry!r} is not an IP address or CIDR network") from exc
    return tuple(networks)


def _parse_ip(text: str) -> IPAddress | None:
    """An address from a peer host or an X-Forwarded-For entry (`1.2.3.4:5678` and `[::1]:443`
    included), IPv4-mapped IPv6 unwrapped; None for anything else."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _forwarded_for(headers: Mapping[str, str]) -> list[str]:
    getall = getattr(headers, "getall", None)
    if getall is not None:  # Litestar's Headers: a proxy may add its own header line
        values = getall("x-forwarded-for", [])
    else:
        values = [value for key, value in headers.items() if key.lower() == "x-forwarded-for"]
    return [entry for value in values for entry in value.split(",")]


def client_ip(scope_client_host: str, headers: Mapping[str, str], trusted_proxies: str) -> str:
    """The address the request came from.

    The TCP peer, unless the peer is a trusted proxy: then X-Forwarded-For is read from the right,
    skipping trusted proxies, and the first other address is the client. Entries left of it were
    written by the client and are never believed. A peer that is not a trusted proxy is the answer
    whatever headers it sends. If the header is missing, or the nearest untrusted entry is not an
    address, the answer is the last trusted hop (so such requests share one bucket).
    """
    peer = _parse_ip(scope_client_host or "")
    if peer is None:
        return scope_client_host or ""
    trusted = parse_trusted_proxies(trusted_proxies)

    def is_trusted(address: IPAddress) -> bool:
        return any(address.version == net.version and address in net for net in trusted)

    if not is_trusted(peer):
        return str(peer)
    hop = peer
    for entry in reversed(_forwarded_for(headers)):
        address = _parse_ip(entry)
        if address is None:
            break
        hop = address
        if not is_trusted(address):
            break
    return str(hop)


def _ip_bucket(ip: str) -> str:
    """The address an IP limit counts: IPv6 per /64 (one subscriber's block), IPv4 as it is."""
    address = _parse_ip(ip)
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address) if address is not None else ip


def _folded_hash(name: str) -> str:
    """A login name or address as a key: NFKC, trimmed, case-folded, hashed (no address in the store)."""
    folded = unicodedata.normalize("NFKC", name).strip().casefold()
    return hashlib.sha256(folded.encode()).hexdigest()


def account_key(user_id: object) -> str:
    """The throttle's account name of an existing account: its id, whichever login name was typed."""
    return f"user:{user_id}"


# Attempts per hour (sliding): a shared office or campus address may register a handful of people
# in an hour; nobody needs more than a few reset mails.
SIGNUP_PER_IP = 10
SIGNUP_PER_TARGET = 3
RESET_PER_IP = 10
RESET_PER_TARGET = 3
REQUEST_WINDOW_S = 3600.0


class RequestLimit:
    """At most `per_ip` attempts per client IP and `per_target` per target (an email address) within
    a sliding `window_s`. `hit` checks both and, only when both have room, counts the attempt: a
    refused attempt does not extend the wait. Same store, same clock and same caveat (no atomic
    increment) as `LoginThrottle`."""

    def __init__(
        self,
        store: Store,
        name: str,
        *,
        per_ip: int,
        per_target: int,
        window_s: float = REQUEST_WINDOW_S,
        now: Callable[[], float] = time.time,
    ) -> None:
        if per_ip < 1 or per_target < 1:
            raise ValueError("per_ip and per_target must be at least 1")
        self.store, self.name = store, name
        self.per_ip, self.per_target, self.window_s, self.now = per_ip, per_target, window_s, now

    async def _times(self, key: str, now: float) -> list[float]:
        raw = await self.store.get(key)
        try:
            value = json.loads(raw) if raw is not None else []
        except ValueError:
            value = []
        if not isinstance(value, list):
            return []
        return sorted(t for t in value if isinstance(t, int | float) and t > now - self.window_s)

    async def hit(self, ip: str, target: str) -> float | None:
        """Seconds to wait (for Retry-After) when the IP or the target is at its limit, else None
        after counting this attempt against both."""
        now = self.now()
        keys = (
            (f"{self.name}-ip:{_ip_bucket(ip)}", self.per_ip),
            (f"{self.name}-target:{_folded_hash(target)}", self.per_target),
        )
        seen = [(key, limit, await self._times(key, now)) for key, limit in keys]
        waits = [times[-limit] + self.window_s - now for _, limit, times in seen if len(times) >= limit]
        if waits:
            return max(max(waits), 1.0)
        for key, limit, times in seen:
            kept = (times + [now])[-limit:]
            await self.store.set(key, json.dumps(kept), expires_in=math.ceil(self.window_s))
        return None


class LoginThrottle:
    def __init__(
        self,
        store: Store,
        *,
        ip_limit: int = 5,
        ip_window_s: float = 60,
        account_threshold: int = 3,
        wait_increment_s: float = 30,
        max_wait_s: float = 900,
        account_reset_s: float = 12 * 3600,
        now: Callable[[], float] = time.time,
    ) -> None:
        if ip_limit < 1 or account_threshold < 1:
            raise ValueError("ip_limit and account_threshold must be at least 1")
        self.store = store
        self.ip_limit = ip_limit
        self.ip_window_s = ip_window_s
        self.account_threshold = account_threshold
        self.wait_increment_s = wait_increment_s
        self.max_wait_s = max_wait_s
        self.account_reset_s = account_reset_s
        self.now = now
        # Flows that hash a password or send mail, limited per attempt (not per failure).
        self.signup = RequestLimit(
            store, "signup", per_ip=SIGNUP_PER_IP, per_target=SIGNUP_PER_TARGET, now=now
        )
        self.reset = RequestLimit(store, "reset", per_ip=RESET_PER_IP, per_target=RESET_PER_TARGET, now=now)

    # --- keys and stored values -------------------------------------------------------------

    @staticmethod
    def _ip_key(ip: str) -> str:
        return f"login-ip:{_ip_bucket(ip)}"

    @staticmethod
    def _account_key(account: str) -> str:
        return f"login-account:{_folded_hash(account)}"

    async def _load(self, key: str) -> object:
        raw = await self.store.get(key)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return None

    async def _ip_failures(self, ip: str, now: float) -> list[float]:
        value = await self._load(self._ip_key(ip))
        if not isinstance(value, list):
            return []
        # No upper bound: another API machine's clock may run a little ahead of ours.
        return sorted(t for t in value if isinstance(t, int | float) and t > now - self.ip_window_s)

    async def _account_state(self, account: str, now: float) -> tuple[int, float]:
        """(consecutive failures, time of the last one); (0, 0) when forgotten."""
        value = await self._load(self._account_key(account))
        if not isinstance(value, dict):
            return 0, 0.0
        failures, last = value.get("failures"), value.get("last")
        if not isinstance(failures, int) or not isinstance(last, int | float):
            return 0, 0.0
        if now - last >= self.account_reset_s:
            return 0, 0.0
        return failures, float(last)

    def account_wait(self, failures: int) -> float:
        """Seconds an account waits after its last failure, given its consecutive failures."""
        if failures < self.account_threshold:
            return 0.0
        return min(self.max_wait_s, self.wait_increment_s * (failures - self.account_threshold + 1))

    # --- the API ----------------------------------------------------------------------------

    async def check(self, ip: str, account: str) -> float | None:
        """Seconds to wait before this IP may try this account again (for Retry-After), or None."""
        now = self.now()
        waits = []
        ip_failures = await self._ip_failures(ip, now)
        if len(ip_failures) >= self.ip_limit:
            waits.append(ip_failures[-self.ip_limit] + self.ip_window_s - now)
        failures, last = await self._account_state(account, now)
        if failures:
            waits.append(last + self.account_wait(failures) - now)
        wait = max(waits, default=0.0)
        return wait if wait > 0 else None

    async def record_failure(self, ip: str, account: str) -> None:
        now = self.now()
        ip_failures = (await self._ip_failures(ip, now) + [now])[-self.ip_limit :]
        await self.store.set(
            self._ip_key(ip), json.dumps(ip_failures), expires_in=math.ceil(self.ip_window_s)
        )
        failures, _ = await self._account_state(account, now)
        failures += 1
        keep = max(self.account_reset_s, self.account_wait(failures))
        await self.store.set(
            self._account_key(account),
            json.dumps({"failures": failures, "last": now}),
            expires_in=math.ceil(keep),
        )

    async def record_success(self, account: str) -> None:
        """Forget the account's consecutive failures; the IP's window stays as it is."""
        await self.store.delete(self._account_key(account))
