"""Turn report schedules and report requests into runs of the report job.

Every 30 s: scheduled reports whose cron time has come get a queued job (`report_jobs.queue_due`),
then every queued job becomes a run of the report job on its report's partition. The run
key is the job id, so a job still queued at the next tick is not launched twice.
"""

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

import dagster as dg

from assets.analytics_reports import report_partitions
from domain.analytics import report_jobs
from domain.schema import utcnow
from resources.database import OperationalDatabase

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition


def build_analytics_reports_sensor(
    job: "UnresolvedAssetJobDefinition", clock: Callable[[], datetime] = utcnow
) -> dg.SensorDefinition:
    @dg.sensor(
        name="analytics_reports_sensor",
        job=job,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Queues a job for each scheduled report whose cron time has come, and launches a "
        "report run for every queued job (from the schedule or POST /api/v1/analytics/reports/generate).",
    )
    def analytics_reports_sensor(
        context: dg.SensorEvaluationContext, database: dg.ResourceParam[OperationalDatabase]
    ):
        with database.session() as session:
            now = clock()
            stale = report_jobs.fail_stale(session, now)
            scheduled = report_jobs.queue_due(session, now)
            queued = [(str(run.report_id), str(run.id)) for run in report_jobs.queued_runs(session)]
        if not queued:
            return dg.SkipReason("no report is due and no report job is queued")
        if scheduled or stale:
            context.log.info(f"{len(scheduled)} scheduled report job(s) queued, {stale} stale one(s) failed")
        known = set(context.instance.get_dynamic_partitions(report_partitions.name))
        new = sorted({report_id for report_id, _ in queued} - known)
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=job_id,
                    partition_key=report_id,
                    run_config={"ops": {"analytics_report_files": {"config": {"job_id": job_id}}}},
                    tags={"thmnayah/report_job_id": job_id},
                )
                for report_id, job_id in queued
            ],
            dynamic_partitions_requests=[report_partitions.build_add_request(new)] if new else [],
        )

    return analytics_reports_sensor
