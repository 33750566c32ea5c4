"""The dashboards' serving tables: the event marts of the warehouse copied into the operational DB.

The API never opens the embedded warehouse (chDB allows one process per data path), so what it
serves from analytics is published here, day by day: `analytics_serving_tables` shares the daily
partitions of the marts it reads, and a run replaces its UTC days (the same days dbt just rebuilt)
in one transaction, so a reader sees a day either before or after.
"""

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import dagster as dg
import sqlalchemy as sa

from assets.analytics import day_window
from assets.analytics_events import ANALYTICS_GROUP, events_daily_partitions
from domain.schema import ContentMetricsDaily, SearchAnalyticsDaily, UserEngagementDaily, utcnow
from resources.database import OperationalDatabase
from resources.warehouse import WAREHOUSE_POOL, Warehouse

CONTENT_MART = "fct_content_metrics_daily"
USERS_MART = "fct_user_engagement_daily"
SEARCH_MART = "fct_search_analytics_daily"
MART_KEYS = [dg.AssetKey(name) for name in (CONTENT_MART, USERS_MART, SEARCH_MART)]


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _int(value: Any) -> int:
    return 0 if value is None else int(round(float(value)))


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _content_row(r: Mapping[str, Any], now: datetime) -> dict[str, Any] | None:
    content_id = _uuid(r["content_id"])
    if content_id is None:
        return None
    return {
        "id": uuid.uuid4(),
        "content_id": content_id,
        "date": r["metric_date"],
        "view_count": _int(r["views"]),
        "unique_viewers": _int(r["unique_viewers"]),
        "average_watch_time": _int(r["avg_watch_time_s"]),
        "completion_rate": _float(r["completion_rate"]),
        "engagement_score": float(r["engagement_score"] or 0),
        "share_count": _int(r["shares"]),
        "favorite_count": _int(r["favorites"]),
        "comment_count": _int(r["comments"]),
        "updated_at": now,
    }


def _user_row(r: Mapping[str, Any], now: datetime) -> dict[str, Any] | None:
    user_id = _uuid(r["user_id"])
    if user_id is None:
        return None
    last = r["last_activity_at"]
    return {
        "id": uuid.uuid4(),
        "user_id": user_id,
        "date": r["activity_date"],
        "session_count": _int(r["sessions"]),
        "total_session_time": _int(r["session_time_s"]),
        "page_views": _int(r["page_views"]),
        "content_interactions": _int(r["interactions"]),
        "search_queries": _int(r["searches"]),
        "downloads": _int(r["downloads"]),
        "shares": _int(r["shares"]),
        "last_activity": None if last is None else _utc(last),
        "updated_at": now,
    }


def _search_row(r: Mapping[str, Any], now: datetime) -> dict[str, Any] | None:
    return {
        "id": uuid.uuid4(),
        "query_text": str(r["query_normalized"])[:500],
        "date": r["search_date"],
        "language": r["language"] or "",
        "user_type": r["user_type"],
        "search_count": _int(r["searches"]),
        "result_count": _float(r["avg_result_count"]),
        "click_count": _int(r["clicks"]),
        "click_through_rate": _float(r["click_through_rate"]),
        "average_position": _float(r["avg_clicked_position"]),
        "zero_result_count": _int(r["zero_result_searches"]),
        "zero_result_rate": _float(r["zero_result_rate"]),
        "updated_at": now,
    }


# mart -> (its date column, the serving table, row mapping)
PUBLISHED: Mapping[
    str, tuple[str, sa.Table, Callable[[Mapping[str, Any], datetime], dict[str, Any] | None]]
] = {
    CONTENT_MART: ("metric_date", ContentMetricsDaily.__table__, _content_row),
    USERS_MART: ("activity_date", UserEngagementDaily.__table__, _user_row),
    SEARCH_MART: ("search_date", SearchAnalyticsDaily.__table__, _search_row),
}


def days_of_window(window: dg.TimeWindow) -> tuple[date, date]:
    """[first, last) UTC days touched by a run's partition window."""
    bounds = day_window(window.start, window.end)
    return date.fromisoformat(bounds["min_date"]), date.fromisoformat(bounds["max_date"])


def read_mart(client: Any, database: str, mart: str, date_column: str, first: date, end: date) -> list[dict]:
    result = client.query(
        f"SELECT * FROM `{database}`.`{mart}` WHERE {date_column} >= %(first)s AND {date_column} < %(end)s",
        parameters={"first": first, "end": end},
    )
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


def replace_days(
    conn: sa.Connection, table: sa.Table, first: date, end: date, rows: Sequence[dict[str, Any]]
) -> None:
    conn.execute(sa.delete(table).where(table.c.date >= first, table.c.date < end))
    if rows:
        conn.execute(sa.insert(table), list(rows))


def _mapped(
    mapper: Callable[[Mapping[str, Any], datetime], dict[str, Any] | None], rows: Iterable[Mapping[str, Any]]
) -> tuple[list[dict[str, Any]], int]:
    now, out, skipped = utcnow(), [], 0
    for row in rows:
        mapped = mapper(row, now)
        if mapped is None:
            skipped += 1
        else:
            out.append(mapped)
    return out, skipped


@dg.asset(
    group_name=ANALYTICS_GROUP,
    kinds={"python", "clickhouse", "sql"},
    deps=MART_KEYS,
    pool=WAREHOUSE_POOL,
    partitions_def=events_daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def analytics_serving_tables(
    context: dg.AssetExecutionContext,
    warehouse: dg.ResourceParam[Warehouse],
    database: dg.ResourceParam[OperationalDatabase],
) -> dg.MaterializeResult:
    """ContentMetrics, UserEngagement and SearchAnalytics for the API: the days of this run's hours,
    read from the warehouse marts and written over the same days of `analytics_content_metrics`,
    `analytics_user_engagement` and `analytics_search` in one transaction. Rows whose content or
    user id is not a UUID (no such item in the CMS) are counted and left out."""
    first, end = days_of_window(context.partition_time_window)
    published: dict[str, list[dict[str, Any]]] = {}
    skipped: dict[str, int] = {}
    with warehouse.client() as client:
        for mart, (date_column, _, mapper) in PUBLISHED.items():
            rows = read_mart(client, warehouse.database, mart, date_column, first, end)
            published[mart], skipped[mart] = _mapped(mapper, rows)
    with database.engine().begin() as conn:
        for mart, (_, table, _) in PUBLISHED.items():
            replace_days(conn, table, first, end, published[mart])
    counts = {PUBLISHED[mart][1].name: len(rows) for mart, rows in published.items()}
    context.log.info(f"{first} .. {end} (exclusive): {counts}")
    return dg.MaterializeResult(
        metadata={
            "days": f"{first} .. {end} (exclusive)",
            "dagster/row_count": sum(counts.values()),
            **{f"rows/{name}": n for name, n in counts.items()},
            "skipped_non_uuid_ids": sum(skipped.values()),
        }
    )


@dg.asset_check(asset=analytics_serving_tables, pool=WAREHOUSE_POOL, blocking=True)
def serving_tables_match_marts(
    context: dg.AssetCheckExecutionContext,
    warehouse: dg.ResourceParam[Warehouse],
    database: dg.ResourceParam[OperationalDatabase],
) -> dg.AssetCheckResult:
    """Each serving table holds, for the run's days, as many rows as its mart has publishable rows."""
    if not (context.has_partition_key or context.has_partition_key_range):
        return dg.AssetCheckResult(
            passed=False, severity=dg.AssetCheckSeverity.WARN, description="run without a daily partition"
        )
    first, end = days_of_window(context.partition_time_window)
    mismatched, metadata = [], {}
    with warehouse.client() as client, database.engine().connect() as conn:
        for mart, (date_column, table, mapper) in PUBLISHED.items():
            expected, _ = _mapped(
                mapper, read_mart(client, warehouse.database, mart, date_column, first, end)
            )
            actual = conn.scalar(
                sa.select(sa.func.count()).select_from(table).where(table.c.date >= first, table.c.date < end)
            )
            metadata[table.name] = f"{actual} rows (mart: {len(expected)})"
            if actual != len(expected):
                mismatched.append(table.name)
    return dg.AssetCheckResult(
        passed=not mismatched,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"row counts differ: {', '.join(mismatched)}" if mismatched else None,
        metadata=metadata,
    )
