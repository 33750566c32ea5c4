"""Generated reports: one dynamic partition per report definition, one materialization per generation.

`analytics_report_files` renders a queued report job (its id in the run config): the document from
the serving tables (`domain.analytics.sections.build_document`), each requested format into the object
store under `reports/<report id>/<job id>/`, then the job completed and `report.ready` in the outbox
in one transaction, which the notification rules turn into in-app and email messages with the link.
"""

import time
import uuid

import dagster as dg
from pydantic import Field

from domain.analytics import report_jobs
from domain.analytics.reports import formats, sections
from resources.database import OperationalDatabase
from resources.object_store import ObjectStore

REPORTS_GROUP = "analytics_reports"
report_partitions = dg.DynamicPartitionsDefinition(name="analytics_reports")


class ReportJobConfig(dg.Config):
    job_id: str = Field(description="The queued report job (analytics_report_runs.id) to render.")


def file_key(report_id: uuid.UUID, job_id: uuid.UUID, fmt: str) -> str:
    """Where a generated file lives: ids only, so no user text reaches the path."""
    return f"reports/{report_id}/{job_id}/report{formats.EXTENSIONS[fmt]}"


def build_report_files_asset(public_base_url: str) -> dg.AssetsDefinition:
    """The asset, with the API's public base URL that the notification's link starts with."""
    base = public_base_url.rstrip("/")

    @dg.asset(
        name="analytics_report_files",
        partitions_def=report_partitions,
        group_name=REPORTS_GROUP,
        kinds={"python", "pdf", "excel", "csv"},
    )
    def analytics_report_files(
        context: dg.AssetExecutionContext,
        config: ReportJobConfig,
        database: dg.ResourceParam[OperationalDatabase],
        object_store: dg.ResourceParam[ObjectStore],
    ) -> dg.MaterializeResult:
        """A report's files for one generation (CSV, Excel and PDF with charts, JSON), rendered from
        the serving tables for the job's period and language, stored in the object store, and announced
        to the recipients through notifications. Each format is rendered and stored on its own: one that
        fails is named with its reason in the job's `error` while the others are stored and announced
        (a warning in the log and `failed_formats` in the metadata). A job whose document cannot be
        built, or whose every format fails, is marked failed with the reason (and the run fails); files
        already stored stay listed nowhere and are overwritten by a retry."""
        job_id = uuid.UUID(config.job_id)
        with database.session() as session:
            run, report = report_jobs.get_run(session, job_id)
            mismatch = None
            if str(report.id) != context.partition_key:
                mismatch = f"job {job_id} belongs to report {report.id}, not {context.partition_key}"
                report_jobs.fail_run(session, run, mismatch)
            else:
                report_jobs.start_run(session, run)
            spec = (report.id, report.name, report.report_type, dict(report.configuration))
            period = (run.period_start.date(), run.period_end.date())
        if mismatch:
            raise dg.Failure(mismatch)
        report_id, name, report_type, configuration = spec
        started = time.perf_counter()
        try:
            with database.engine().connect() as conn:
                document = sections.build_document(
                    conn,
                    report_type,
                    period[0],
                    period[1],
                    configuration.get("language", "en"),
                    top=configuration.get("top", 20),
                )
            built = time.perf_counter() - started
        except Exception as exc:
            with database.session() as session:
                run, _ = report_jobs.get_run(session, job_id)
                report_jobs.fail_run(session, run, f"{type(exc).__name__}: {exc}")
            raise
        files, sizes, failed = {}, {}, {}
        for fmt in configuration.get("formats", report_jobs.DEFAULT_FORMATS):
            try:  # one format's failure loses neither the others nor the job
                data = formats.render(document, fmt)
                key = file_key(report_id, job_id, fmt)
                object_store.put_bytes(key, data, formats.CONTENT_TYPES[fmt])
            except Exception as exc:  # noqa: BLE001 - recorded on the job and in the log
                failed[fmt] = f"{type(exc).__name__}: {exc}"
                context.log.warning(f"{fmt}: not rendered: {failed[fmt]}")
                continue
            files[fmt], sizes[fmt] = key, len(data)
            context.log.info(f"{fmt}: {len(data):,} bytes")
        if not files:
            reason = report_jobs.format_failures(failed)
            with database.session() as session:
                run, _ = report_jobs.get_run(session, job_id)
                report_jobs.fail_run(session, run, reason)
            raise dg.Failure(f"no format of report job {job_id} could be rendered: {reason}")
        url = f"{base}/api/v1/analytics/reports/jobs/{job_id}"
        with database.session() as session:
            run, report = report_jobs.get_run(session, job_id)
            report_jobs.complete_run(session, run, report, files, url, failed=failed)
        kpis = "\n".join(f"| {label} | {value} |" for label, value in document.kpis)
        return dg.MaterializeResult(
            metadata={
                "job_id": str(job_id),
                "report": name,
                "report_type": report_type,
                "period": f"{period[0]} .. {period[1]} (exclusive)",
                "formats": ", ".join(sorted(files)),
                "failed_formats": dg.MetadataValue.json(failed),
                "bytes": dg.MetadataValue.json(sizes),
                "render_seconds": round(time.perf_counter() - started, 3),
                "query_seconds": round(built, 3),
                "url": dg.MetadataValue.url(url),
                "kpis": dg.MetadataValue.md("| KPI | value |\n|---|---|\n" + kpis),
            }
        )

    return analytics_report_files
