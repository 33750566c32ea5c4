"""Reports end to end: POST /reports/generate -> the sensor's run request -> `analytics_report_files`
-> CSV, Excel and PDF in the object store, downloadable through the API, and a `report.ready`
notification with the link for the recipients; a cron schedule queues jobs on a controlled clock;
bad definitions are 422s naming the field."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import openpyxl
import pypdfium2
import sqlalchemy as sa
from litestar.testing import AsyncTestClient
from sqlalchemy.orm import Session, sessionmaker

from assets.analytics_reports import build_report_files_asset, report_partitions
from domain import content
from domain.analytics import report_jobs
from domain.analytics.reports import formats
from domain.analytics.reports.document import ReportDocument
from domain.content import NewContent
from domain.db import sync_engine
from domain.migrate import upgrade
from domain.notifications import rules
from domain.schema import ContentMetricsDaily, Notification, OutboxEvent, Report, ReportRun
from domain.settings import Settings
from orchestration.deployment import build_client, build_resources
from orchestration.jobs import analytics_report_job
from sensors.analytics_reports import build_analytics_reports_sensor
from serving.app import create_app
from tests.serving.conftest import bearer, make_user, mint_token

API = "/api/v1/analytics"


def _seed(url: str) -> uuid.UUID:
    engine = sync_engine(url)
    with Session(engine) as session, session.begin():
        item = content.create_content(
            session, NewContent(type="video", title={"ar": "وثائقي رمضان", "en": "Ramadan"})
        )
        today = datetime.now(UTC).date()
        for back in range(1, 8):
            session.add(
                ContentMetricsDaily(
                    content_id=item.id,
                    date=today - timedelta(days=back),
                    view_count=10 * back,
                    unique_viewers=5,
                    average_watch_time=120,
                    completion_rate=0.4,
                    engagement_score=float(10 * back),
                    share_count=1,
                    favorite_count=2,
                    comment_count=0,
                )
            )
        item_id = item.id
    engine.dispose()
    return item_id


def _pdf_pages_not_blank(data: bytes) -> int:
    pdf = pypdfium2.PdfDocument(data)
    try:
        image = pdf[0].render(scale=1).to_pil().convert("L")
        dark = sum(1 for v in image.get_flattened_data() if v < 200)
        assert dark > 500, "the first page is blank"
        return len(pdf)
    finally:
        pdf.close()


async def test_a_generated_report_is_rendered_stored_downloadable_and_notified(
    data_dir: Path, sqlite_url: str
):
    upgrade(sqlite_url)
    settings = Settings(deployment="local", data_dir=data_dir, database_url=sqlite_url)
    _seed(sqlite_url)
    manager = make_user(sqlite_url, "manager-1", ["editor"], preferences={"locale": "ar"})
    app = create_app(settings)
    async with AsyncTestClient(app=app) as client:
        token = mint_token(app, sqlite_url, manager)
        bad = await client.post(
            f"{API}/reports/generate",
            json={"name": "Weekly", "report_type": "content", "schedule": "0 25 * * *"},
            headers=bearer(token),
        )
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "schedule", bad.text
        bad = await client.post(
            f"{API}/reports/generate",
            json={"name": "Weekly", "report_type": "content", "configuration": {"formats": ["docx"]}},
            headers=bearer(token),
        )
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "configuration.formats"
        res = await client.post(
            f"{API}/reports/generate",
            json={
                "name": "Weekly content",
                "report_type": "content",
                "configuration": {
                    "formats": ["csv", "xlsx", "pdf"],
                    "language": "ar",
                    "period": "last_7_days",
                },
                "schedule": "0 6 * * 1",
                "recipients": ["manager-1@example.test"],
            },
            headers=bearer(token),
        )
        assert res.status_code == 202, res.text
        queued = res.json()
        assert queued["status"] == "queued" and queued["next_run_at"]

    # The sensor turns the queued job into a run on the report's partition.
    resources = build_resources(settings)
    instance = dg.DagsterInstance.ephemeral()
    sensor = build_analytics_reports_sensor(analytics_report_job)
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        result = sensor(context)
    (request,) = result.run_requests
    assert (request.partition_key, request.run_key) == (queued["report_id"], queued["job_id"])
    instance.add_dynamic_partitions(report_partitions.name, [queued["report_id"]])
    done = dg.materialize(
        [build_report_files_asset("https://cms.example.test")],
        partition_key=request.partition_key,
        run_config=request.run_config,
        resources=resources,
        instance=instance,
    )
    assert done.success
    (materialization,) = done.get_asset_materialization_events()
    assert materialization.materialization.metadata["formats"].value == "csv, pdf, xlsx"

    async with AsyncTestClient(app=create_app(settings)) as client:
        job = (await client.get(f"{API}/reports/jobs/{queued['job_id']}", headers=bearer(token))).json()
        assert job["status"] == "completed" and set(job["files"]) == {"csv", "xlsx", "pdf"}
        files = {}
        for fmt, path in job["files"].items():
            res = await client.get(path, headers=bearer(token))
            assert res.status_code == 200 and "attachment" in res.headers["content-disposition"]
            files[fmt] = res.content
        missing = await client.get(f"{API}/reports/jobs/{queued['job_id']}/files/json", headers=bearer(token))
        assert missing.status_code == 404

    text = files["csv"].decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert any("وثائقي رمضان" in cell for row in rows for cell in row)  # the Arabic title, in Arabic
    assert any("280" in row for row in rows)  # 10 + 20 + ... + 70 views over the 7 days
    book = openpyxl.load_workbook(io.BytesIO(files["xlsx"]))
    assert len(book.sheetnames) >= 2 and book.worksheets[0].sheet_view.rightToLeft
    assert _pdf_pages_not_blank(files["pdf"]) >= 2

    # report.ready reached the outbox for the recipient; the notification rules make it a message.
    engine = sync_engine(sqlite_url)
    with Session(engine) as session:
        (event,) = session.scalars(
            sa.select(OutboxEvent).where(OutboxEvent.event_type == "report.ready")
        ).all()
        assert event.payload["recipients"] == [str(manager)]
        assert (
            event.payload["url"]
            == f"https://cms.example.test/api/v1/analytics/reports/jobs/{queued['job_id']}"
        )
    rules.process_events(sessionmaker(engine, expire_on_commit=False).begin, after=0, now=datetime.now(UTC))
    with Session(engine) as session:
        notes = session.scalars(
            sa.select(Notification).where(
                Notification.recipient_id == manager, Notification.category == "report.ready"
            )
        ).all()
        assert notes and all(queued["job_id"] in n.content for n in notes)
    engine.dispose()


def test_a_cron_schedule_queues_one_job_per_due_time_on_a_controlled_clock(sqlite_url: str):
    upgrade(sqlite_url)
    engine = sync_engine(sqlite_url)
    monday_0559 = datetime(2026, 11, 30, 5, 59, tzinfo=UTC)
    with Session(engine) as session, session.begin():
        report = report_jobs.create_report(
            session,
            report_jobs.NewReport(
                name="Monthly",
                report_type="search",
                schedule="0 6 1 * *",
                configuration={"period": "previous_month"},
            ),
            created_by=None,
            now=monday_0559,
        )
        assert report.next_run_at == datetime(2026, 12, 1, 6, tzinfo=UTC)
        assert report_jobs.queue_due(session, datetime(2026, 12, 1, 5, 59, tzinfo=UTC)) == []
        # Down for two days: the missed slot runs once, and the next one is next month.
        (run,) = report_jobs.queue_due(session, datetime(2026, 12, 3, 9, 0, tzinfo=UTC))
        assert (run.trigger, run.period_start.date(), run.period_end.date()) == (
            "schedule",
            date(2026, 11, 1),
            date(2026, 12, 1),
        )
        assert report.next_run_at == datetime(2027, 1, 1, 6, tzinfo=UTC)
        assert report_jobs.queue_due(session, datetime(2026, 12, 3, 9, 1, tzinfo=UTC)) == []
    with Session(engine) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(ReportRun)) == 1
        assert session.scalar(sa.select(Report.last_generated)) is None
    engine.dispose()


def _queue_job(url: str, formats: list[str]) -> tuple[str, str, uuid.UUID]:
    owner = make_user(url, f"owner-{uuid.uuid4().hex[:6]}", ["editor"])
    engine = sync_engine(url)
    with Session(engine) as session, session.begin():
        report = report_jobs.create_report(
            session,
            report_jobs.NewReport(name="Daily", report_type="content", configuration={"formats": formats}),
            created_by=owner,
        )
        run = report_jobs.request_run(session, report, trigger="manual", requested_by=owner)
        ids = (str(report.id), str(run.id))
    engine.dispose()
    return *ids, owner


def _render_job(settings: Settings, report_id: str, job_id: str) -> dg.ExecuteInProcessResult:
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(report_partitions.name, [report_id])
    return dg.materialize(
        [build_report_files_asset("https://cms.example.test")],
        partition_key=report_id,
        run_config={"ops": {"analytics_report_files": {"config": {"job_id": job_id}}}},
        resources=build_resources(settings),
        instance=instance,
        raise_on_error=False,
    )


def test_a_format_that_fails_loses_neither_the_others_nor_the_notification(
    data_dir: Path, sqlite_url: str, monkeypatch
):
    """The PDF renderer failing (fault injected: since math text is off no known input fails it)
    leaves the CSV and the workbook stored, downloadable and announced, and the job names the PDF's
    failure; when every format fails the job is failed with each reason."""
    upgrade(sqlite_url)
    settings = Settings(deployment="local", data_dir=data_dir, database_url=sqlite_url)
    _seed(sqlite_url)

    def broken(doc: ReportDocument) -> bytes:
        raise ValueError("the PDF cannot be drawn")

    monkeypatch.setattr(formats, "render_pdf", broken)
    report_id, job_id, owner = _queue_job(sqlite_url, ["csv", "pdf", "xlsx"])
    done = _render_job(settings, report_id, job_id)
    assert done.success
    (materialization,) = done.get_asset_materialization_events()
    metadata = materialization.materialization.metadata
    assert metadata["formats"].value == "csv, xlsx"
    assert metadata["failed_formats"].value == {"pdf": "ValueError: the PDF cannot be drawn"}
    engine = sync_engine(sqlite_url)
    with Session(engine) as session:
        run = session.get(ReportRun, uuid.UUID(job_id))
        assert (run.status, sorted(run.files)) == ("completed", ["csv", "xlsx"])
        assert run.error == "pdf failed: ValueError: the PDF cannot be drawn"
        (event,) = session.scalars(sa.select(OutboxEvent).where(OutboxEvent.event_type == "report.ready"))
        assert (event.payload["formats"], event.payload["failed_formats"]) == (["csv", "xlsx"], ["pdf"])
        assert event.payload["recipients"] == [str(owner)]
    store = build_client(build_resources(settings)["object_store"])
    rows = list(csv.reader(io.StringIO(store.get_bytes(run.files["csv"]).decode("utf-8-sig"))))
    assert any("Ramadan" in cell for row in rows for cell in row)
    assert openpyxl.load_workbook(io.BytesIO(store.get_bytes(run.files["xlsx"]))).sheetnames

    report_id, job_id, _ = _queue_job(sqlite_url, ["pdf"])
    done = _render_job(settings, report_id, job_id)
    assert not done.success
    with Session(engine) as session:
        run = session.get(ReportRun, uuid.UUID(job_id))
        assert (run.status, run.files) == ("failed", {})
        assert run.error == "pdf failed: ValueError: the PDF cannot be drawn"
    engine.dispose()
