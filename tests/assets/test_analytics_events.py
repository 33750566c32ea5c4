"""The event lake -> `raw_events` -> event marts on chDB, for a known event stream.

The stream (UTC, 2026-03-01), written as Parquet files in the lake's layout with the lake's schema:
hour 10 in two files (one event id in both), hour 11 in one file (with one event that belongs to
hour 12 and must be dropped). Every expected figure below is worked out by hand from it.
"""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from assets.analytics import MARTS_GROUP, analytics_assets, day_window, event_models_assets
from assets.analytics_events import (
    analytics_raw_events,
    events_daily_partitions,
    events_hourly_partitions,
    raw_events_match_lake,
)
from assets.analytics_ops import analytics_ops_raw
from domain.analytics import warehouse_events as events
from domain.settings import Settings
from orchestration.deployment import build_client, build_resources
from resources.object_store import ObjectStore

H10 = datetime(2026, 3, 1, 10, tzinfo=UTC)
H11 = datetime(2026, 3, 1, 11, tzinfo=UTC)
C1, C2 = "content-1", "content-2"


def at(hhmm: str) -> datetime:
    hour, minute = map(int, hhmm.split(":"))
    return datetime(2026, 3, 1, hour, minute, tzinfo=UTC)


def event(event_id: str, event_type: str, when: str, **fields: Any) -> dict[str, Any]:
    row = {name: None for name in events.EVENT_SCHEMA.names}
    row.update(
        event_id=event_id,
        event_type=event_type,
        occurred_at=at(when),
        received_at=at(when),
        platform="web",
        language="en",
        properties="{}",
    )
    row.update(fields)
    return row


def write_events(store: ObjectStore, hour: datetime, rows: list[dict[str, Any]]) -> str:
    """One lake file for `hour` with exactly the lake's schema; returns its key."""
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=events.EVENT_SCHEMA), buffer)
    key = f"{events.hour_prefix(hour)}{uuid.uuid4()}.parquet"
    store.put_bytes(key, buffer.getvalue())
    return key


def u1(**f: Any) -> dict[str, Any]:
    return {"user_id": "u1", "session_id": "s1", **f}


def u2(**f: Any) -> dict[str, Any]:
    return {"user_id": "u2", "session_id": "s2", **f}


FILE_A = [
    event("e01", "view", "10:00", content_id=C1, **u1()),
    event("e02", "media_progress", "10:05", content_id=C1, position_s=60.0, duration_s=300.0, **u1()),
    event("e03", "view", "10:10", content_id=C1, **u2()),
    event("e04", "media_progress", "10:12", content_id=C1, position_s=30.0, duration_s=300.0, **u2()),
    event("e05", "media_complete", "10:20", content_id=C1, position_s=300.0, duration_s=300.0, **u2()),
    event("e06", "favorite", "10:25", content_id=C1, **u1()),
    event("e07", "search", "10:26", query="Quran  Recitation", result_count=5, **u1()),
    event("e08", "search_click", "10:27", query="quran recitation", clicked_position=2, **u1()),
]
FILE_B = [
    event("e03", "view", "10:10", content_id=C1, **u2()),  # sent twice by the client
    event("e09", "view", "10:30", content_id=C2, session_id="s9"),  # anonymous
    event("e10", "search", "10:40", query="xyz", result_count=0, **u2()),
    event("e11", "share", "10:50", content_id=C1, channel="whatsapp", **u1()),
]
FILE_C = [
    event("e12", "view", "11:21", content_id=C1, **u1()),  # 31 min after e11: u1's second session
    event("e13", "comment", "11:25", content_id=C1, **u1()),
    event("e14", "search", "11:00", query="quran recitation", result_count=3, **u2()),
    event("e15", "download", "11:05", content_id=C2, **u2()),
    event("e16", "view", "12:30", content_id=C2, **u2()),  # in hour 11's folder by mistake: dropped
]


def test_lake_helpers():
    assert events.hour_prefix(H10) == "events/dt=2026-03-01/hour=10/"
    assert events.hour_of_key("events/dt=2026-03-01/hour=10/x.parquet") == H10
    assert events.hour_of_key("events/dt=2026-03-01/hour=10/x.json") is None
    assert day_window(H10, H11) == {"min_date": "2026-03-01", "max_date": "2026-03-02"}
    assert day_window(datetime(2026, 3, 1, 23, tzinfo=UTC), datetime(2026, 3, 2, 2, tzinfo=UTC)) == {
        "min_date": "2026-03-01",
        "max_date": "2026-03-03",
    }
    table = events.conform(pa.Table.from_pylist(FILE_A + FILE_B, schema=events.EVENT_SCHEMA))
    late = table.slice(2, 1).set_column(
        3, "received_at", pa.array([at("10:59")], events.EVENT_SCHEMA.field(3).type)
    )
    unique = events.deduplicate(pa.concat_tables([table, late]))
    assert unique.num_rows == 11
    assert sorted(unique.column("event_id").to_pylist()) == sorted({r["event_id"] for r in FILE_A + FILE_B})


def test_event_models_read_the_raw_events_asset_and_are_partitioned_by_its_days(embedded: Settings):
    models = event_models_assets(embedded)
    stg, sessions = dg.AssetKey("stg_events__events"), dg.AssetKey("int_sessions_built")
    marts = {
        dg.AssetKey(name)
        for name in ("fct_content_metrics_daily", "fct_user_engagement_daily", "fct_search_analytics_daily")
    }
    ops = {
        dg.AssetKey(name)
        for name in (
            "stg_ops__route_minutes",
            "stg_ops__processing_jobs",
            "fct_system_metrics_daily",
            "fct_processing_jobs_daily",
        )
    }
    assert set(models.keys) == {stg, sessions, *marts, *ops}
    assert models.asset_deps[stg] == {analytics_raw_events.key}
    assert models.asset_deps[dg.AssetKey("fct_user_engagement_daily")] == {stg, sessions}
    assert (
        {models.group_names_by_key[key] for key in marts}
        == {MARTS_GROUP}
        == {analytics_raw_events.group_names_by_key[analytics_raw_events.key]}
    )
    assert models.partitions_def == events_daily_partitions
    assert analytics_raw_events.partitions_def == events_hourly_partitions
    # A day partition of the models reads the 24 hourly partitions of its day.
    mapped = dg.TimeWindowPartitionMapping().get_upstream_mapped_partitions_result_for_partitions(
        events_daily_partitions.subset_with_partition_keys(["2026-03-01"]),
        events_daily_partitions,
        events_hourly_partitions,
    )
    assert sorted(mapped.partitions_subset.get_partition_keys()) == [
        f"2026-03-01-{hour:02d}:00" for hour in range(24)
    ]
    assert models.op.pool == analytics_raw_events.op.pool == raw_events_match_lake.op.pool == "warehouse"
    # The unpartitioned dbt asset (CMS models) leaves the event models out.
    assert not set(analytics_assets(embedded).keys) & set(models.keys)


def _materialize(assets: list[Any], partition: str, resources: dict[str, Any]) -> dg.ExecuteInProcessResult:
    result = dg.materialize(
        assets, partition_key=partition, resources=resources, instance=dg.DagsterInstance.ephemeral()
    )
    assert result.success
    return result


def _raw_metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    """The load's metadata (a range run records the same metadata on each of its hours)."""
    materializations = [
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.asset_key == analytics_raw_events.key
    ]
    assert materializations
    return {k: v.value for k, v in materializations[0].metadata.items()}


def _marts(warehouse: Any, database: str) -> dict[str, Any]:
    with warehouse.client() as client:

        def rows(sql: str) -> list[tuple[Any, ...]]:
            return [tuple(r) for r in client.query(sql.format(db=database)).result_rows]

        return {
            "raw": rows("SELECT event_type, count() FROM `{db}`.raw_events GROUP BY event_type ORDER BY 1"),
            "content": rows(
                "SELECT toString(metric_date), content_id, views, unique_viewers, avg_watch_time_s, completions,"
                " completion_rate, shares, favorites, comments, engagement_score"
                " FROM `{db}`.fct_content_metrics_daily ORDER BY content_id"
            ),
            "users": rows(
                "SELECT toString(activity_date), user_id, sessions, session_time_s, page_views, interactions,"
                " searches, downloads, shares, toString(last_activity_at)"
                " FROM `{db}`.fct_user_engagement_daily ORDER BY user_id"
            ),
            "search": rows(
                "SELECT toString(search_date), language, user_type, query_normalized, searches, avg_result_count, clicks,"
                " click_through_rate, avg_clicked_position, zero_result_rate"
                " FROM `{db}`.fct_search_analytics_daily ORDER BY query_normalized"
            ),
            "sessions": rows(
                "SELECT session_key, session_time_s, events FROM `{db}`.int_sessions_built ORDER BY 1"
            ),
        }


EXPECTED_RAW = [
    ("comment", 1),
    ("download", 1),
    ("favorite", 1),
    ("media_complete", 1),
    ("media_progress", 2),
    ("search", 3),
    ("search_click", 1),
    ("share", 1),
    ("view", 4),
]
EXPECTED_CONTENT = [
    # c1: views e01 e03 e12 by u1, u2; u2 completed (watch 300 s), u1 reached 60 s -> avg 180;
    # score 3 views + 2 x 1 completion + 3 x 1 favorite + 4 x 1 comment + 5 x 1 share = 17.
    ("2026-03-01", C1, 3, 2, 180.0, 1, 0.5, 1, 1, 1, 17),
    # c2: one anonymous view; the download is not a content metric.
    ("2026-03-01", C2, 1, 1, 0.0, 0, 0.0, 0, 0, 0, 1),
]
EXPECTED_USERS = [
    # u1: 10:00..10:50 (gaps <= 23 min) = 3000 s, then 11:21..11:25 = 240 s after a 31 min gap.
    ("2026-03-01", "u1", 2, 3240, 2, 3, 1, 0, 1, "2026-03-01 11:25:00.000"),
    # u2: 10:10..11:05, no gap over 20 min: one session of 3300 s.
    ("2026-03-01", "u2", 1, 3300, 1, 0, 2, 1, 0, "2026-03-01 11:05:00.000"),
]
EXPECTED_SEARCH = [
    # e07 (5 results) + e14 (3 results), one click at position 2 (e08).
    ("2026-03-01", "en", "registered", "quran recitation", 2, 4.0, 1, 0.5, 2.0, 0.0),
    ("2026-03-01", "en", "registered", "xyz", 1, 0.0, 0, 0.0, None, 1.0),
]
EXPECTED_SESSIONS = [("u1#1", 3000, 6), ("u1#2", 240, 2), ("u2#1", 3300, 6)]


def test_known_stream_loads_into_exact_marts_and_reloading_an_hour_changes_nothing(embedded: Settings):
    resources = build_resources(embedded)
    store = build_client(resources["object_store"])
    write_events(store, H10, FILE_A)
    write_events(store, H10, FILE_B)
    write_events(store, H11, FILE_C)
    models = event_models_assets(embedded)
    raw = [analytics_raw_events, raw_events_match_lake, analytics_ops_raw]  # the ops sources too

    first = _materialize(raw, "2026-03-01-10:00", resources)
    assert _raw_metadata(first) | {"by_event_type": None} == {
        "dagster/row_count": 11,
        "dagster/table_name": f"{embedded.warehouse_database}.raw_events",
        "hours": 1,
        "files": 2,
        "rows_read": 12,
        "duplicates_dropped": 1,
        "outside_hour_dropped": 0,
        "by_event_type": None,
    }
    assert "| view | 3 |" in _raw_metadata(first)["by_event_type"]
    # Hour 11, then the dbt models of its day (the two runs the sensors request).
    second = _materialize(raw, "2026-03-01-11:00", resources)
    assert _raw_metadata(second)["outside_hour_dropped"] == 1
    day = _materialize([models], "2026-03-01", resources)
    checks = {
        e.check_name: e.passed
        for e in [*second.get_asset_check_evaluations(), *day.get_asset_check_evaluations()]
    }
    assert {
        "raw_events_match_lake",
        "unique_stg_events__events_event_id",
        "unique_int_sessions_built_session_key",
        "unique_fct_content_metrics_daily_metric_date_content_id",
        "unique_fct_user_engagement_daily_activity_date_user_id",
        "unique_fct_search_analytics_daily_date_language_query",
    } <= set(checks)
    assert all(checks.values()), checks
    materialized = {e.asset_key.path[-1] for e in day.get_asset_materialization_events()}
    assert {e.partition for e in day.get_asset_materialization_events()} == {"2026-03-01"}
    assert {
        "fct_content_metrics_daily",
        "fct_user_engagement_daily",
        "fct_search_analytics_daily",
    } <= materialized

    marts = _marts(build_client(resources["warehouse"]), embedded.warehouse_database)
    assert marts == {
        "raw": EXPECTED_RAW,
        "content": EXPECTED_CONTENT,
        "users": EXPECTED_USERS,
        "search": EXPECTED_SEARCH,
        "sessions": EXPECTED_SESSIONS,
    }

    # Hour 10 again, then the day's models again (incremental delete+insert this time): no total moves.
    again = _materialize(raw, "2026-03-01-10:00", resources)
    assert _raw_metadata(again)["dagster/row_count"] == 11
    day_again = _materialize([models], "2026-03-01", resources)
    assert all(
        e.passed for e in [*again.get_asset_check_evaluations(), *day_again.get_asset_check_evaluations()]
    )
    assert _marts(build_client(resources["warehouse"]), embedded.warehouse_database) == marts


def test_a_backfilled_range_loads_hour_by_hour_in_one_run_and_reloads_change_nothing(embedded: Settings):
    resources = build_resources(embedded)
    store = build_client(resources["object_store"])
    for hour, rows in ((H10, FILE_A), (H10, FILE_B), (H11, FILE_C)):
        write_events(store, hour, rows)
    raw = [analytics_raw_events, raw_events_match_lake]
    range_tags = {
        "dagster/asset_partition_range_start": "2026-03-01-10:00",
        "dagster/asset_partition_range_end": "2026-03-01-11:00",
    }
    for _ in range(2):
        result = dg.materialize(
            raw, tags=range_tags, resources=resources, instance=dg.DagsterInstance.ephemeral()
        )
        assert result.success
        metadata = _raw_metadata(result)
        loaded = {e.partition for e in result.get_asset_materialization_events()}
        assert loaded == {"2026-03-01-10:00", "2026-03-01-11:00"}
        assert (metadata["hours"], metadata["files"], metadata["dagster/row_count"]) == (2, 3, 15)
        assert (metadata["duplicates_dropped"], metadata["outside_hour_dropped"]) == (1, 1)
        (check,) = result.get_asset_check_evaluations()
        assert check.passed and check.metadata["rows"].value == 15
    with build_client(resources["warehouse"]).client() as client:
        assert client.command(f"SELECT count() FROM `{embedded.warehouse_database}`.raw_events") == 15
        assert (
            client.command(f"SELECT uniqExact(event_id) FROM `{embedded.warehouse_database}`.raw_events")
            == 15
        )
