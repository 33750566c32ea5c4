"""Import jobs: their states, counters and success rate, the capped error log, the resume cursor,
and the events and source state a finished run leaves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from domain.errors import Conflict, IllegalTransition, InvalidValue
from domain.imports import events, jobs
from domain.schema import ImportJob, ImportSource, OutboxEvent, utcnow


def started(db, source_id, editor, job_type="full_sync"):
    with db.session() as session:
        job = jobs.create_job(session, source_id, job_type, actor=editor)
        assert (job.status, job.created_by) == ("pending", editor)
        jobs.start(session, job.id)
        return job.id


def test_counters_success_rate_and_completion_event(db, editor, make_source) -> None:
    source_id = make_source(name="Podcast")
    job_id = started(db, source_id, editor)
    with db.session() as session:
        job = jobs.get_job(session, job_id)
        for outcome in ["new"] * 15 + ["updated"] * 2 + ["unchanged"] + ["skipped"] + ["failed"]:
            jobs.record_item(
                session, job, outcome, external_id="x", error="no title" if outcome == "failed" else None
            )
        jobs.commit_page(session, job_id, {"page": 1}, total_items=20, quota_units=3)
    with db.session() as session:
        job = jobs.complete(session, job_id)
        assert job.cursor is None and job.completed_at is not None
        figures = jobs.summary(job)
    assert (figures["processed"], figures["created"], figures["updated"], figures["unchanged"]) == (
        20,
        15,
        2,
        1,
    )
    assert (figures["skipped"], figures["failed"], figures["quota_units"], figures["total"]) == (1, 1, 3, 20)
    assert figures["success_rate"] == pytest.approx(19 / 20)
    assert figures["duration_s"] >= 0
    with db.session() as session:
        job = session.get(ImportJob, job_id)
        assert (job.successful_imports, job.failed_imports) == (19, 1)
        assert job.error_log[0]["error"] == "no title" and job.error_log[0]["kind"] == "invalid"
        source = session.get(ImportSource, source_id)
        assert source.last_sync == job.completed_at and source.failure_count == 0
        event = session.scalars(
            sa.select(OutboxEvent).where(OutboxEvent.event_type == events.IMPORT_COMPLETED)
        ).one()
    assert event.aggregate_id == str(job_id)
    assert (event.payload["source_name"], event.payload["created"], event.payload["failed"]) == (
        "Podcast",
        15,
        1,
    )


def test_a_failed_run_counts_on_its_source_and_emits_import_failed(db, editor, make_source) -> None:
    source_id = make_source()
    job_id = started(db, source_id, editor)
    with db.session() as session:
        jobs.fail(session, job_id, "feed is not XML", kind="parse")
    with db.session() as session:
        job = session.get(ImportJob, job_id)
        assert (job.status, job.error, job.meta["failure_kind"]) == ("failed", "feed is not XML", "parse")
        source = session.get(ImportSource, source_id)
        assert (source.failure_count, source.last_error) == (1, "feed is not XML")
        failed = session.scalars(
            sa.select(OutboxEvent).where(OutboxEvent.event_type == events.IMPORT_FAILED)
        ).one()
        assert failed.payload["reason"] == "feed is not XML"
    job_id = started(db, source_id, editor)  # the next success ends the streak
    with db.session() as session:
        jobs.complete(session, job_id)
    with db.session() as session:
        source = session.get(ImportSource, source_id)
        assert (source.failure_count, source.last_error) == (0, None)


def test_a_paused_run_resumes_from_its_committed_cursor(db, editor, make_source) -> None:
    source_id = make_source(source_type="rss")
    job_id = started(db, source_id, editor)
    with db.session() as session:
        job = jobs.get_job(session, job_id)
        jobs.record_item(session, job, "new")
        jobs.commit_page(session, job_id, {"page_token": "CAUQAA"}, quota_units=2)
    with db.session() as session:
        jobs.pause(session, job_id, "quotaExceeded: resumes tomorrow")
    with db.session() as session, pytest.raises(IllegalTransition):
        jobs.record_item(session, jobs.get_job(session, job_id), "new")
    with db.session() as session:
        job = jobs.start(session, job_id)
        assert (job.status, job.cursor, job.processed_items, job.quota_units, job.error) == (
            "running",
            {"page_token": "CAUQAA"},
            1,
            2,
            None,
        )


def test_one_unfinished_run_per_source_and_transitions_are_checked(db, editor, make_source) -> None:
    source_id = make_source()
    job_id = started(db, source_id, editor)
    with db.session() as session, pytest.raises(Conflict):
        jobs.create_job(session, source_id, "incremental", actor=editor)
    with db.session() as session, pytest.raises(InvalidValue) as caught:
        jobs.create_job(session, make_source(), "nightly", actor=editor)
    assert caught.value.field == "job_type"
    with db.session() as session:
        jobs.complete(session, job_id)
    for move in (jobs.complete, jobs.start, lambda s, j: jobs.pause(s, j, "why")):
        with db.session() as session, pytest.raises(IllegalTransition):
            move(session, job_id)
    started(db, source_id, editor, "incremental")  # a finished run frees the source


def test_the_error_log_is_capped_but_every_error_is_counted(db, editor, make_source) -> None:
    job_id = started(db, make_source(), editor)
    with db.session() as session:
        job = jobs.get_job(session, job_id)
        for n in range(jobs.ERROR_LOG_MAX + 25):
            jobs.record_item(session, job, "failed", external_id=f"item-{n}", error="x" * 5000)
    with db.session() as session:
        job = session.get(ImportJob, job_id)
        assert len(job.error_log) == jobs.ERROR_LOG_MAX and job.error_count == jobs.ERROR_LOG_MAX + 25
        assert job.error_log[-1]["external_id"] == f"item-{jobs.ERROR_LOG_MAX - 1}"
        assert len(job.error_log[0]["error"]) == jobs.ERROR_TEXT_MAX
        assert jobs.success_rate(job) == 0.0


def test_figures_before_and_while_running(db, editor, make_source) -> None:
    with db.session() as session:
        job = jobs.create_job(session, make_source(), "manual", actor=editor)
        assert (
            jobs.success_rate(job) is None and jobs.duration_s(job) is None and jobs.items_per_s(job) is None
        )
        start = utcnow()
        jobs.start(session, job.id, now=start)
        jobs.record_item(session, job, "new")
        jobs.record_item(session, job, "new")
        assert jobs.duration_s(job, now=start + timedelta(seconds=4)) == 4.0
        assert jobs.items_per_s(job, now=start + timedelta(seconds=4)) == 0.5


def test_a_failed_run_backs_its_source_off_and_a_completed_one_reschedules_it(
    db, editor, make_source
) -> None:
    source_id = make_source(schedule="0 * * * *")
    now = datetime(2026, 12, 8, 10, 30, tzinfo=UTC)
    job_id = started(db, source_id, editor)
    with db.session() as session:
        jobs.fail(session, job_id, "HTTP 503", retry_after_s=7200, now=now)
    with db.session() as session:
        source = session.get(ImportSource, source_id)
        assert source.is_active and source.next_poll_at == now + timedelta(hours=2)
    job_id = started(db, source_id, editor)
    with db.session() as session:
        jobs.complete(session, job_id, now=now)
    with db.session() as session:
        assert session.get(ImportSource, source_id).next_poll_at == datetime(2026, 12, 8, 11, 0, tzinfo=UTC)
