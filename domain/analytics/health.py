"""API health figures: the latency histogram the request middleware fills per route and minute, and
the percentiles read back from summed histograms (any number of processes and minutes add up)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

# Upper bounds (ms, inclusive) of the latency buckets; a last, open bucket holds anything slower.
LATENCY_BUCKETS_MS: tuple[float, ...] = (
    1,
    2,
    3,
    5,
    7.5,
    10,
    15,
    20,
    30,
    50,
    75,
    100,
    150,
    200,
    300,
    500,
    750,
    1000,
    2000,
    5000,
    10000,
)
BUCKET_COUNT = len(LATENCY_BUCKETS_MS) + 1


def bucket_index(latency_ms: float) -> int:
    """The bucket a latency falls in: the first whose upper bound is >= it."""
    return bisect_left(LATENCY_BUCKETS_MS, latency_ms)


def add_buckets(total: list[int], more: Sequence[int]) -> list[int]:
    """`total` plus `more`, bucket by bucket (a shorter list counts as zeros)."""
    if len(total) < len(more):
        total = total + [0] * (len(more) - len(total))
    for i, n in enumerate(more):
        total[i] += n
    return total


def percentile(buckets: Sequence[int], q: float) -> float | None:
    """The latency (ms) under which a fraction `q` of the requests fell, read as the upper bound of
    the bucket holding that rank (the open last bucket reports the largest bound); None without
    requests."""
    total = sum(buckets)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, n in enumerate(buckets):
        seen += n
        if seen >= rank and n:
            return LATENCY_BUCKETS_MS[min(i, len(LATENCY_BUCKETS_MS) - 1)]
    return LATENCY_BUCKETS_MS[-1]
