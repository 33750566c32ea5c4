"""When a feed is polled next: its schedule, pushed later (never earlier) by what the feed and its
server ask for, and a capped exponential backoff with jitter while it fails.

A server's hints are RSS `<ttl>` (minutes), `Cache-Control: max-age` (else `Expires`) on a normal
answer, and `Retry-After` on 429 and 503. Each hint is capped (`MAX_HINT`), so a far-future
`Expires` or a hostile `Retry-After` delays a feed, never silences it. A failing feed is retried
after `BASE_BACKOFF`, doubling per consecutive failure up to `MAX_BACKOFF`, where it keeps being
polled: there is no hard stop and no one has to re-enable it (Miniflux's complaint); the first
success resets the count. The jitter ("equal jitter": between half and all of the delay) keeps
feeds that failed together, a host going down, from coming back in one burst.

Everything here is a pure function of its arguments (`now` and a `random` callable are passed in),
so the schedule is testable without clocks or sleeps.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

BASE_BACKOFF = dt.timedelta(minutes=1)
MAX_BACKOFF = dt.timedelta(hours=6)
MAX_HINT = dt.timedelta(hours=24)
THROTTLED_STATUSES = frozenset({429, 503})
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)", re.I)
_NO_CACHE = re.compile(r"(?:^|[,\s])(no-cache|no-store)\b", re.I)


@dataclass(frozen=True)
class PollState:
    """What a feed source remembers between polls; `failure_count` and `last_error` are shown on the
    source, `etag` and `last_modified` make the next request conditional."""

    next_poll_at: dt.datetime | None = None
    failure_count: int = 0
    last_error: str | None = None
    etag: str | None = None
    last_modified: str | None = None


def http_not_before(status: int, headers: Mapping[str, str], now: dt.datetime) -> dt.datetime | None:
    """The earliest next request a response asks for: `Retry-After` on 429/503, else
    `Cache-Control: max-age` (not `s-maxage`, which is for shared caches), else `Expires`; None
    when it asks nothing (or says `no-cache` / `no-store`, or the date is unreadable or past)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    if status in THROTTLED_STATUSES:
        return _future(_retry_after(lowered.get("retry-after"), now), now)
    cache_control = lowered.get("cache-control", "")
    if _NO_CACHE.search(cache_control):
        return None
    ages = [int(age) for age in _MAX_AGE.findall(cache_control)]
    if ages:
        return _future(now + dt.timedelta(seconds=max(ages)), now)
    return _future(_http_date(lowered.get("expires")), now)


def backoff_delay(
    failure_count: int,
    random: Callable[[], float],
    *,
    base: dt.timedelta = BASE_BACKOFF,
    cap: dt.timedelta = MAX_BACKOFF,
) -> dt.timedelta:
    """The wait after `failure_count` consecutive failures (1 for the first): `base * 2**(n-1)`,
    capped at `cap`, then scaled by a jitter between 1/2 and 1 drawn from `random()` in [0, 1)."""
    if failure_count < 1:
        raise ValueError(f"failure_count counts failures, from 1; got {failure_count}")
    delay = base
    for _ in range(failure_count - 1):
        if delay >= cap:
            break
        delay *= 2
    return min(delay, cap) * (0.5 + random() / 2)


def next_poll_after_success(
    now: dt.datetime,
    *,
    schedule_due: dt.datetime,
    ttl_minutes: int | None = None,
    not_before: dt.datetime | None = None,
    max_hint: dt.timedelta = MAX_HINT,
) -> dt.datetime:
    """The source's next scheduled time, or later when the feed's TTL or the server's cache headers
    ask for a longer wait (each capped at `max_hint` from now)."""
    hints = [hint for hint in (not_before, _ttl_time(ttl_minutes, now)) if hint is not None]
    if not hints:
        return schedule_due
    return max(schedule_due, min(max(hints), now + max_hint))


def next_poll_after_failure(
    failure_count: int,
    now: dt.datetime,
    random: Callable[[], float],
    *,
    not_before: dt.datetime | None = None,
    base: dt.timedelta = BASE_BACKOFF,
    cap: dt.timedelta = MAX_BACKOFF,
    max_hint: dt.timedelta = MAX_HINT,
) -> dt.datetime:
    """After the `failure_count`-th consecutive failure: now plus the backoff, or the server's
    `Retry-After` when that is later (capped at `max_hint` from now)."""
    retry = now + backoff_delay(failure_count, random, base=base, cap=cap)
    if not_before is None:
        return retry
    return max(retry, min(not_before, now + max_hint))


def after_success(
    state: PollState,
    now: dt.datetime,
    *,
    schedule_due: dt.datetime,
    ttl_minutes: int | None = None,
    not_before: dt.datetime | None = None,
    etag: str | None = None,
    last_modified: str | None = None,
) -> PollState:
    """The state after a good poll (a 200 or a 304): failures forgotten, validators kept (a 304
    sends none, so the previous ones stay), next poll per `next_poll_after_success`."""
    return PollState(
        next_poll_at=next_poll_after_success(
            now, schedule_due=schedule_due, ttl_minutes=ttl_minutes, not_before=not_before
        ),
        failure_count=0,
        last_error=None,
        etag=etag or state.etag,
        last_modified=last_modified or state.last_modified,
    )


def after_failure(
    state: PollState,
    now: dt.datetime,
    error: str,
    random: Callable[[], float],
    *,
    not_before: dt.datetime | None = None,
) -> PollState:
    """The state after a failed poll: one more failure, its reason kept, next poll backed off."""
    failures = state.failure_count + 1
    return replace(
        state,
        next_poll_at=next_poll_after_failure(failures, now, random, not_before=not_before),
        failure_count=failures,
        last_error=error,
    )


def _ttl_time(ttl_minutes: int | None, now: dt.datetime) -> dt.datetime | None:
    return now + dt.timedelta(minutes=ttl_minutes) if ttl_minutes and ttl_minutes > 0 else None


def _retry_after(value: str | None, now: dt.datetime) -> dt.datetime | None:
    """`Retry-After` as seconds or as an HTTP date."""
    if not value or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return now + dt.timedelta(seconds=int(text))
    return _http_date(text)


def _http_date(value: str | None) -> dt.datetime | None:
    if not value or not value.strip():
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _future(moment: dt.datetime | None, now: dt.datetime) -> dt.datetime | None:
    return moment if moment is not None and moment > now else None
