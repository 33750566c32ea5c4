"""System and job metrics: the API's route minutes and finished processing jobs of an hour go from the
operational DB to the warehouse (`analytics_ops_raw`) and through the dbt models into
`fct_system_metrics_daily` and `fct_processing_jobs_daily`, with exact figures; reloading the hour
changes nothing; the dbt macro's bucket bounds are the ones the middleware uses."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
from sqlalchemy.orm import Session

from assets.analytics import event_models_assets
from assets.analytics_events import analytics_raw_events
from assets.analytics_ops import analytics_ops_raw
from domain.analytics.health import LATENCY_BUCKETS_MS
from domain.analytics.live import RouteFigures, add_routes
from domain.db import sync_engine
from domain.settings import Settings
from orchestration.deployment import build_client, build_resources
from tests.conftest import record_test_upload

H10 = datetime(2026, 3, 1, 10, tzinfo=UTC)
MACROS = Path(__file__).resolve().parents[2] / "dbt_project" / "macros" / "latency_buckets.sql"


def test_the_dbt_bucket_bounds_are_the_middlewares():
    listed = re.search(r"latency_bucket_bounds\(\) -%}\s*\[([^\]]*)\]", MACROS.read_text()).group(1)
    assert tuple(float(v) for v in listed.split(",")) == LATENCY_BUCKETS_MS


def _seed(url: str) -> None:
    engine = sync_engine(url)
    with Session(engine) as session, session.begin():
        fast, slow = RouteFigures(), RouteFigures()
        for ms in (2.0, 2.0, 4.0):
            fast.record(200, ms)
        slow.record(500, 40.0)
        add_routes(
            session,
            {
                (H10 + timedelta(minutes=1), "GET /api/v1/content/{content_id}"): fast,
                (H10 + timedelta(minutes=2), "GET /api/v1/content/{content_id}"): slow,
                (H10 + timedelta(hours=1), "GET /api/v1/content/{content_id}"): fast,  # the next hour
            },
        )
        for n, (kind, status, seconds) in enumerate(
            [
                ("video", "completed", 30),
                ("video", "completed", 90),
                ("video", "failed", 5),
                ("image", "completed", 2),
            ]
        ):
            _, job = record_test_upload(session, kind=kind, mime="", size=1, filename=f"f{n}")
            job.status, job.started_at = status, H10 + timedelta(minutes=10 + n)
            job.finished_at = job.started_at + timedelta(seconds=seconds)
    engine.dispose()


def _marts(resources: dict[str, Any], database: str) -> dict[str, list[tuple]]:
    with build_client(resources["warehouse"]).client() as client:

        def rows(sql: str) -> list[tuple]:
            return [tuple(r) for r in client.query(sql.format(db=database)).result_rows]

        return {
            "system": rows(
                "SELECT toString(metric_date), route, method, requests, client_errors, server_errors,"
                " server_error_rate, avg_latency_ms, max_latency_ms, p50_latency_ms, p95_latency_ms"
                " FROM `{db}`.fct_system_metrics_daily ORDER BY route"
            ),
            "jobs": rows(
                "SELECT toString(job_date), job_source, job_kind, media_kind, jobs, completed, failed,"
                " success_rate, avg_duration_s, p95_duration_s FROM `{db}`.fct_processing_jobs_daily"
                " ORDER BY media_kind"
            ),
        }


def test_an_hour_of_route_minutes_and_jobs_reaches_the_marts_exactly_once(embedded: Settings):
    _seed(embedded.database_url)
    resources = build_resources(embedded)
    for _ in range(2):  # the second load of the hour changes nothing
        result = dg.materialize(
            [analytics_raw_events, analytics_ops_raw],
            partition_key="2026-03-01-10:00",
            resources=resources,
            instance=dg.DagsterInstance.ephemeral(),
        )
        assert result.success
        day = dg.materialize(
            [event_models_assets(embedded)],
            partition_key="2026-03-01",
            resources=resources,
            instance=dg.DagsterInstance.ephemeral(),
        )
        assert day.success
        checks = {e.check_name: e.passed for e in day.get_asset_check_evaluations()}
        assert checks["unique_fct_system_metrics_daily_metric_date_route"], checks
        assert all(checks.values()), checks
        meta = {
            e.asset_key.path[-1]: {k: v.value for k, v in e.materialization.metadata.items()}
            for e in result.get_asset_materialization_events()
        }
        routes, jobs = meta["analytics_raw_route_minutes"], meta["analytics_raw_processing_jobs"]
        assert (routes["dagster/row_count"], routes["requests"]) == (2, 4)
        assert (jobs["dagster/row_count"], jobs["failed_jobs"]) == (4, 1)
        marts = _marts(resources, embedded.warehouse_database)
        # 4 requests: 2, 2, 4 ms and one 500 in 40 ms -> p50 in the 2 ms bucket, p95 in the 50 ms one;
        # the next hour's minute is not part of this hour's load.
        assert marts["system"] == [
            ("2026-03-01", "GET /api/v1/content/{content_id}", "GET", 4, 0, 1, 0.25, 12.0, 40.0, 2.0, 50.0)
        ]
        assert marts["jobs"] == [
            ("2026-03-01", "media", "process", "image", 1, 1, 0, 1.0, 2.0, 2.0),
            ("2026-03-01", "media", "process", "video", 3, 2, 1, 2 / 3, (30 + 90 + 5) / 3, 90.0),
        ]


def test_the_hourly_ops_job_loads_an_hour_without_any_tracked_event(embedded: Settings):
    """The schedule's job: route minutes and jobs only, no lake needed; when it succeeds,
    analytics_days_sensor requests the ops models (a subset of the dbt models) of the hour's day."""
    from orchestration.definitions import build_definitions

    _seed(embedded.database_url)
    definitions = build_definitions(embedded)
    schedule = definitions.resolve_schedule_def("analytics_ops_hourly_schedule")
    assert schedule.job_name == "analytics_ops_job" and schedule.cron_schedule == "5 * * * *"
    with dg.DagsterInstance.ephemeral() as instance:
        result = definitions.resolve_job_def("analytics_ops_job").execute_in_process(
            partition_key="2026-03-01-10:00", instance=instance
        )
        assert result.success
        sensor = definitions.resolve_sensor_def("analytics_days_sensor")
        request = sensor(
            dg.build_run_status_sensor_context(
                sensor_name=sensor.name,
                dagster_event=result.get_run_success_event(),
                dagster_instance=instance,
                dagster_run=result.dagster_run,
            )
        )
        assert isinstance(request, dg.RunRequest)
        assert (request.job_name, request.partition_key) == ("analytics_ops_models_job", "2026-03-01")
        assert request.run_key == f"days-{result.run_id}"
        models = definitions.resolve_job_def(request.job_name).execute_in_process(
            partition_key=request.partition_key, instance=instance
        )
    assert models.success
    built = {e.asset_key.path[-1] for e in models.get_asset_materialization_events()}
    assert "fct_system_metrics_daily" in built and "fct_content_metrics_daily" not in built
    marts = _marts(build_resources(embedded), embedded.warehouse_database)
    assert [row[3] for row in marts["system"]] == [4] and sum(row[4] for row in marts["jobs"]) == 4
