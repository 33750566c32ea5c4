"""The reports sensor against a real operational DB and Dagster instance: a scheduled report whose
cron time has come gets a queued job, every queued job becomes one run of the report job on its
report's partition (keyed by the job id), and nothing queued is a skip that says so. The whole flow
(API request -> sensor -> rendered files) is in tests/assets/test_analytics_reports_asset.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from assets.analytics_reports import report_partitions
from domain.analytics import report_jobs
from domain.migrate import upgrade
from orchestration.jobs import analytics_report_job
from resources.database import OperationalDatabase
from sensors.analytics_reports import build_analytics_reports_sensor

T0 = datetime(2026, 3, 2, 5, 59, tzinfo=UTC)  # a Monday, a minute before the 06:00 schedule


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def database(sqlite_url: str) -> OperationalDatabase:
    upgrade(sqlite_url)
    return OperationalDatabase(url=sqlite_url)


def test_due_and_requested_reports_become_one_run_per_job(database: OperationalDatabase) -> None:
    clock = Clock(T0)
    sensor = build_analytics_reports_sensor(analytics_report_job, clock)
    assert sensor.job_name == "analytics_report_job"
    with database.session() as session:
        weekly = report_jobs.create_report(
            session,
            report_jobs.NewReport(name="Weekly", report_type="content", schedule="0 6 * * 1"),
            None,
            T0,
        )
        adhoc = report_jobs.create_report(
            session, report_jobs.NewReport(name="Now", report_type="content"), None
        )
        requested = report_jobs.request_run(session, adhoc, trigger="api", now=T0)
        ids = {"weekly": str(weekly.id), "adhoc": str(adhoc.id), "requested": str(requested.id)}

    with dg.DagsterInstance.ephemeral() as instance:
        with dg.build_sensor_context(instance=instance, resources={"database": database}) as context:
            first = sensor(context)
        assert [(r.partition_key, r.run_key) for r in first.run_requests] == [
            (ids["adhoc"], ids["requested"])
        ]
        assert first.run_requests[0].run_config == {
            "ops": {"analytics_report_files": {"config": {"job_id": ids["requested"]}}}
        }
        [add] = first.dynamic_partitions_requests
        assert (add.partitions_def_name, list(add.partition_keys)) == (report_partitions.name, [ids["adhoc"]])

        clock.now = T0 + timedelta(minutes=2)  # the weekly report's cron time has come
        with dg.build_sensor_context(instance=instance, resources={"database": database}) as context:
            second = sensor(context)
        by_report = {r.partition_key: r.run_key for r in second.run_requests}
        assert by_report[ids["adhoc"]] == ids["requested"]  # still queued: the same key, never doubled
        assert set(by_report) == {ids["adhoc"], ids["weekly"]}

    with database.session() as session:
        for run in report_jobs.queued_runs(session):
            report_jobs.fail_run(session, run, "stopped by the test", now=clock.now)
    with dg.build_sensor_context(resources={"database": database}) as context:
        idle = sensor(context)
    assert isinstance(idle, dg.SkipReason)
    assert idle.skip_message == "no report is due and no report job is queued"
