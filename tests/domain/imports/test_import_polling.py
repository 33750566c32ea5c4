"""When a feed is polled next (domain.imports.polling): server hints, schedule, backoff with jitter."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from domain.imports.polling import (
    BASE_BACKOFF,
    MAX_BACKOFF,
    MAX_HINT,
    PollState,
    after_failure,
    after_success,
    backoff_delay,
    http_not_before,
    next_poll_after_failure,
    next_poll_after_success,
)

NOW = dt.datetime(2026, 12, 8, 12, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def low() -> float:
    return 0.0


def high() -> float:
    return 0.999999


# --- server hints --------------------------------------------------------------------------------


def test_retry_after_on_429_and_503_in_seconds_or_as_a_date() -> None:
    assert http_not_before(429, {"Retry-After": "120"}, NOW) == NOW + dt.timedelta(seconds=120)
    assert http_not_before(503, {"retry-after": "Tue, 08 Dec 2026 13:30:00 GMT"}, NOW) == NOW + 1.5 * HOUR
    assert http_not_before(503, {"Retry-After": "whenever"}, NOW) is None
    assert http_not_before(503, {"Retry-After": "Tue, 08 Dec 2026 11:00:00 GMT"}, NOW) is None  # past
    # Retry-After means nothing on a normal answer; cache headers mean nothing on a throttled one.
    assert http_not_before(200, {"Retry-After": "120"}, NOW) is None
    assert http_not_before(429, {"Cache-Control": "max-age=600"}, NOW) is None


def test_cache_control_max_age_wins_over_expires() -> None:
    expires = {"Expires": "Tue, 08 Dec 2026 14:00:00 GMT"}
    assert http_not_before(200, expires, NOW) == NOW + 2 * HOUR
    assert http_not_before(
        200, {**expires, "Cache-Control": "public, max-age=600"}, NOW
    ) == NOW + dt.timedelta(minutes=10)
    assert http_not_before(304, {"cache-control": 's-maxage="900", max-age="60"'}, NOW) == NOW + dt.timedelta(
        minutes=1
    )
    assert http_not_before(200, {**expires, "Cache-Control": "no-cache"}, NOW) is None
    assert http_not_before(200, {"Expires": "0"}, NOW) is None
    assert http_not_before(200, {"Cache-Control": "max-age=0"}, NOW) is None
    assert http_not_before(200, {}, NOW) is None


def test_after_success_the_schedule_moves_only_later_and_hints_are_capped() -> None:
    due = NOW + dt.timedelta(minutes=15)
    assert next_poll_after_success(NOW, schedule_due=due) == due
    assert next_poll_after_success(NOW, schedule_due=due, ttl_minutes=5) == due  # never earlier
    assert next_poll_after_success(NOW, schedule_due=due, ttl_minutes=60) == NOW + HOUR
    assert next_poll_after_success(NOW, schedule_due=due, ttl_minutes=60, not_before=NOW + 2 * HOUR) == (
        NOW + 2 * HOUR
    )
    # A hint of a year is capped: the feed is still polled within a day.
    assert next_poll_after_success(NOW, schedule_due=due, not_before=NOW + 365 * 24 * HOUR) == NOW + MAX_HINT
    # A schedule slower than the cap is the schedule.
    weekly = NOW + 7 * 24 * HOUR
    assert next_poll_after_success(NOW, schedule_due=weekly, ttl_minutes=60) == weekly


# --- backoff -------------------------------------------------------------------------------------


def test_backoff_doubles_from_the_base_to_the_cap_with_equal_jitter() -> None:
    assert backoff_delay(1, high) == pytest.approx(BASE_BACKOFF, abs=dt.timedelta(milliseconds=1))
    assert backoff_delay(1, low) == BASE_BACKOFF / 2
    assert [backoff_delay(n, high).total_seconds() // 1 for n in range(1, 6)] == [59, 119, 239, 479, 959]
    assert backoff_delay(9, high) <= MAX_BACKOFF
    assert backoff_delay(10, low) == MAX_BACKOFF / 2
    with pytest.raises(ValueError):
        backoff_delay(0, high)


def test_a_feed_failing_forever_keeps_being_polled_at_the_cap() -> None:
    rng = random.Random(16)
    for failures in (20, 1_000, 10**9):  # no overflow, no hard stop
        delay = backoff_delay(failures, rng.random)
        assert MAX_BACKOFF / 2 <= delay <= MAX_BACKOFF


def test_jitter_spreads_feeds_that_failed_together() -> None:
    rng = random.Random(7)
    delays = {next_poll_after_failure(5, NOW, rng.random) for _ in range(50)}
    assert len(delays) == 50
    assert all(NOW + 8 * BASE_BACKOFF <= d <= NOW + 16 * BASE_BACKOFF for d in delays)


def test_retry_after_longer_than_the_backoff_is_honoured_and_capped() -> None:
    assert next_poll_after_failure(1, NOW, high, not_before=NOW + HOUR) == NOW + HOUR
    assert (
        next_poll_after_failure(1, NOW, low, not_before=NOW + dt.timedelta(seconds=5))
        == NOW + BASE_BACKOFF / 2
    )
    assert next_poll_after_failure(1, NOW, low, not_before=NOW + 1000 * HOUR) == NOW + MAX_HINT


def test_the_state_counts_failures_and_resets_on_success() -> None:
    state = PollState(etag='"v1"', last_modified="Mon, 07 Dec 2026 10:00:00 GMT")
    for expected in (1, 2, 3):
        state = after_failure(state, NOW, "HTTP 500", low)
        assert state.failure_count == expected and state.last_error == "HTTP 500"
    assert state.next_poll_at == NOW + 2 * BASE_BACKOFF  # third failure: 4 minutes, low jitter halves it
    assert state.etag == '"v1"'  # a failure forgets nothing the next conditional GET needs
    due = NOW + dt.timedelta(minutes=15)
    state = after_success(state, NOW, schedule_due=due)  # a 304 brings no new validators
    assert state == PollState(due, 0, None, '"v1"', "Mon, 07 Dec 2026 10:00:00 GMT")
    state = after_success(state, NOW, schedule_due=due, ttl_minutes=30, etag='"v2"')
    assert (state.next_poll_at, state.etag) == (NOW + dt.timedelta(minutes=30), '"v2"')
