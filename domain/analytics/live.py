"""Live minute counters, shared by every API process through the operational DB.

Each process counts in memory (`MinuteCounters`) and adds its counts to the minute rows every couple
of seconds (`add_live`, `add_routes`): an upsert that adds, so processes never overwrite each
other, and a flush that fails leaves the counts in memory for the next one. The dashboard's live
numbers and the alert rules read these rows; they are at most a flush interval behind.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from domain.analytics.health import BUCKET_COUNT, add_buckets, bucket_index
from domain.schema import LiveMinute, RouteMinute


@dataclass
class RouteFigures:
    requests: int = 0
    client_errors: int = 0
    server_errors: int = 0
    latency_sum_ms: float = 0.0
    latency_max_ms: float = 0.0
    latency_buckets: list[int] = field(default_factory=lambda: [0] * BUCKET_COUNT)

    @classmethod
    def of_minute(cls, row: Any) -> RouteFigures:
        """The figures of one stored route minute (a `RouteMinute`, or a row of its columns)."""
        return cls(
            row.requests,
            row.client_errors,
            row.server_errors,
            row.latency_sum_ms,
            row.latency_max_ms,
            list(row.latency_buckets or []),
        )

    def record(self, status: int, latency_ms: float) -> None:
        self.requests += 1
        if 400 <= status < 500:
            self.client_errors += 1
        elif status >= 500:
            self.server_errors += 1
        self.latency_sum_ms += latency_ms
        if latency_ms > self.latency_max_ms:
            self.latency_max_ms = latency_ms
        self.latency_buckets[bucket_index(latency_ms)] += 1

    def merge(self, other: RouteFigures) -> None:
        self.requests += other.requests
        self.client_errors += other.client_errors
        self.server_errors += other.server_errors
        self.latency_sum_ms += other.latency_sum_ms
        self.latency_max_ms = max(self.latency_max_ms, other.latency_max_ms)
        self.latency_buckets = add_buckets(self.latency_buckets, other.latency_buckets)


def _insert(session: Session, table: sa.Table) -> sa.Insert:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"live counters on {dialect}")


def add_live(session: Session, counts: Mapping[tuple[datetime, str], float]) -> None:
    """Add `counts` ((minute, metric) -> amount) to the live minute rows."""
    if not counts:
        return
    table = LiveMinute.__table__
    statement = _insert(session, table)
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.minute, table.c.metric],
        set_={"value": table.c.value + statement.excluded.value},
    )
    session.execute(
        statement,
        [{"minute": minute, "metric": metric, "value": value} for (minute, metric), value in counts.items()],
    )


def add_routes(session: Session, figures: Mapping[tuple[datetime, str], RouteFigures]) -> None:
    """Add per-route figures ((minute, route) -> figures) to the route minute rows. The scalar
    columns add up in the upsert; the histogram is a JSON list, so it is added under a row lock
    (`FOR UPDATE` on PostgreSQL; SQLite serializes writers)."""
    if not figures:
        return
    table = RouteMinute.__table__
    new_rows = _insert(session, table).on_conflict_do_nothing(index_elements=[table.c.minute, table.c.route])
    session.execute(
        new_rows,
        [
            {
                "minute": minute,
                "route": route,
                "requests": 0,
                "client_errors": 0,
                "server_errors": 0,
                "latency_sum_ms": 0.0,
                "latency_max_ms": 0.0,
                "latency_buckets": [],
            }
            for minute, route in sorted(figures)
        ],
    )
    keys = sorted(figures)
    rows = session.execute(
        sa.select(table.c.minute, table.c.route, table.c.latency_buckets)
        .where(sa.tuple_(table.c.minute, table.c.route).in_(keys))
        .order_by(table.c.minute, table.c.route)
        .with_for_update()
    ).all()
    for minute, route, buckets in rows:
        f = figures[(minute, route)]
        session.execute(
            sa.update(table)
            .where(table.c.minute == minute, table.c.route == route)
            .values(
                requests=table.c.requests + f.requests,
                client_errors=table.c.client_errors + f.client_errors,
                server_errors=table.c.server_errors + f.server_errors,
                latency_sum_ms=table.c.latency_sum_ms + f.latency_sum_ms,
                latency_max_ms=sa.case(
                    (table.c.latency_max_ms < f.latency_max_ms, f.latency_max_ms),
                    else_=table.c.latency_max_ms,
                ),
                latency_buckets=add_buckets(list(buckets or []), f.latency_buckets),
            )
        )
