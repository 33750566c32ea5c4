"""The one owner of import job state: a run of a source from pending through running to completed,
failed or paused, its counters and per-item errors, its resume cursor, and the figures the jobs
API shows (success rate, duration, items per second).

A run commits page by page: the items of a page and `commit_page`'s cursor go in one transaction,
so a run that crashed or paused (a YouTube quota exhausted) resumes after the last committed page
and, items being deduped by source and key, never imports one twice. Finishing a run writes
`import.completed` or `import.failed` to the outbox in the same transaction.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from domain.errors import Conflict, IllegalTransition, InvalidValue, NotFound
from domain.imports import events
from domain.imports.sources import get_source, record_poll
from domain.outbox import record_event
from domain.schema import IMPORT_JOB_TYPES, ImportJob, ImportSource, utcnow

ERROR_LOG_MAX = 200  # per-item errors kept on a job; `error_count` counts every one
ERROR_TEXT_MAX = 1000
ACTIVE = ("pending", "running", "paused")
# Outcomes of one item (domain.imports.records): all but `failed` are successful imports.
OUTCOMES = ("new", "updated", "unchanged", "skipped", "failed")
_COUNTER = {
    "new": "created_items",
    "updated": "updated_items",
    "unchanged": "unchanged_items",
    "skipped": "skipped_items",
}
TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"running", "failed"}),
    "running": frozenset({"completed", "failed", "paused"}),
    "paused": frozenset({"running", "failed"}),
    "completed": frozenset(),
    "failed": frozenset(),
}


def _move(job: ImportJob, target: str) -> None:
    if target not in TRANSITIONS[job.status]:
        allowed = ", ".join(sorted(TRANSITIONS[job.status])) or "none"
        raise IllegalTransition(
            f"import job {job.id} is {job.status}; it cannot become {target} (allowed: {allowed})",
            field="status",
        )
    job.status = target


def get_job(session: Session, job_id: uuid.UUID, *, for_update: bool = False) -> ImportJob:
    query = sa.select(ImportJob).where(ImportJob.id == job_id)
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    job = session.scalar(query)
    if job is None:
        raise NotFound(f"import job {job_id} does not exist")
    return job


def active_job(session: Session, source_id: uuid.UUID) -> ImportJob | None:
    """The source's unfinished run (pending, running or paused), if any."""
    return session.scalar(
        sa.select(ImportJob)
        .where(ImportJob.source_id == source_id, ImportJob.status.in_(ACTIVE))
        .order_by(ImportJob.created_at.desc())
        .limit(1)
    )


def create_job(
    session: Session,
    source_id: uuid.UUID,
    job_type: str,
    *,
    actor: uuid.UUID | None,
    metadata: dict[str, Any] | None = None,
) -> ImportJob:
    """A pending run of a live source. One run at a time per source: Conflict names the unfinished
    one (resume it, or let it finish)."""
    if job_type not in IMPORT_JOB_TYPES:
        raise InvalidValue(f"job_type must be one of {', '.join(IMPORT_JOB_TYPES)}", field="job_type")
    source = get_source(session, source_id, for_update=True)
    running = active_job(session, source.id)
    if running is not None:
        raise Conflict(
            f"source {source.id} already has an unfinished import job {running.id} ({running.status})"
        )
    now = utcnow()
    job = ImportJob(
        source_id=source.id,
        job_type=job_type,
        status="pending",
        meta=dict(metadata or {}),
        error_log=[],
        created_by=actor,
        created_at=now,
        updated_at=now,
    )
    session.add(job)
    session.flush()
    return job


def start(session: Session, job_id: uuid.UUID, *, now: datetime | None = None) -> ImportJob:
    """Running: a pending run starts, a paused one resumes (its cursor and counters kept)."""
    job = get_job(session, job_id, for_update=True)
    _move(job, "running")
    now = now or utcnow()
    job.started_at = job.started_at or now
    job.error, job.updated_at = None, now
    return job


def record_item(
    session: Session,
    job: ImportJob,
    outcome: str,
    *,
    external_id: str = "",
    error: str | None = None,
    kind: str = "invalid",
) -> None:
    """Count one item's outcome on a running job; a failed one joins the error log (the first
    `ERROR_LOG_MAX` are kept with their item and reason)."""
    if outcome not in OUTCOMES:
        raise InvalidValue(f"outcome must be one of {', '.join(OUTCOMES)}", field="outcome")
    if job.status != "running":
        raise IllegalTransition(f"import job {job.id} is {job.status}; only a running job counts items")
    job.processed_items += 1
    if outcome == "failed":
        job.failed_imports += 1
        log_error(job, external_id=external_id, error=error or "failed", kind=kind)
    else:
        job.successful_imports += 1
        counter = _COUNTER[outcome]
        setattr(job, counter, getattr(job, counter) + 1)
    job.updated_at = utcnow()


def log_error(job: ImportJob, *, external_id: str, error: str, kind: str) -> None:
    """An error of the run not tied to a counted item (a page that did not parse) or of one item."""
    job.error_count += 1
    if len(job.error_log) < ERROR_LOG_MAX:
        entry = {
            "external_id": external_id,
            "kind": kind,
            "error": error[:ERROR_TEXT_MAX],
            "at": utcnow().isoformat(),
        }
        job.error_log = [*job.error_log, entry]


def commit_page(
    session: Session,
    job_id: uuid.UUID,
    cursor: dict[str, Any] | None,
    *,
    total_items: int | None = None,
    quota_units: int = 0,
) -> ImportJob:
    """Record that everything up to `cursor` (a page number, token or URL, as the source type keeps
    it) is written, with the quota units the page cost; call it in the page's transaction."""
    job = get_job(session, job_id, for_update=True)
    if job.status != "running":
        raise IllegalTransition(f"import job {job.id} is {job.status}; only a running job commits pages")
    if quota_units < 0:
        raise InvalidValue("quota_units cannot be negative", field="quota_units")
    job.cursor = cursor
    job.quota_units += quota_units
    if total_items is not None:
        job.total_items = total_items
    job.updated_at = utcnow()
    return job


def _source(session: Session, job: ImportJob) -> ImportSource:
    return session.get(ImportSource, job.source_id)


def summary(job: ImportJob, source: ImportSource | None = None) -> dict[str, Any]:
    """The run's figures, as events, the jobs API and the asset metadata report them."""
    return {
        "job_id": str(job.id),
        "source_id": str(job.source_id),
        "source_name": source.name if source is not None else None,
        "source_type": source.source_type if source is not None else None,
        "job_type": job.job_type,
        "status": job.status,
        "total": job.total_items,
        "processed": job.processed_items,
        "created": job.created_items,
        "updated": job.updated_items,
        "unchanged": job.unchanged_items,
        "skipped": job.skipped_items,
        "failed": job.failed_imports,
        "errors": job.error_count,
        "quota_units": job.quota_units,
        "success_rate": success_rate(job),
        "duration_s": duration_s(job),
        "items_per_s": items_per_s(job),
    }


def complete(session: Session, job_id: uuid.UUID, *, now: datetime | None = None) -> ImportJob:
    """Completed: the source's last sync is now and its failure streak ends; `import.completed`."""
    job = get_job(session, job_id, for_update=True)
    _move(job, "completed")
    now = now or utcnow()
    job.completed_at = job.updated_at = now
    job.cursor = None  # a finished run leaves nothing to resume
    source = _source(session, job)
    source.last_sync = now
    record_poll(source, now)
    record_event(session, events.IMPORT_COMPLETED, "import_job", job.id, summary(job, source), at=now)
    return job


def fail(
    session: Session,
    job_id: uuid.UUID,
    reason: str,
    *,
    kind: str = "error",
    retry_after_s: float | None = None,
    now: datetime | None = None,
) -> ImportJob:
    """Failed with `reason`: what was imported stays; the source counts one more failure, shows the
    error and backs off (`retry_after_s`: what the server asked for); `import.failed`."""
    job = get_job(session, job_id, for_update=True)
    _move(job, "failed")
    now = now or utcnow()
    job.error = reason[:ERROR_TEXT_MAX]
    job.completed_at = job.updated_at = now
    job.meta = {**job.meta, "failure_kind": kind}
    source = _source(session, job)
    record_poll(source, now, error=job.error, retry_after_s=retry_after_s)
    record_event(
        session,
        events.IMPORT_FAILED,
        "import_job",
        job.id,
        {**summary(job, source), "reason": job.error},
        at=now,
    )
    return job


def pause(session: Session, job_id: uuid.UUID, reason: str, *, now: datetime | None = None) -> ImportJob:
    """Paused with `reason` (a quota exhausted until tomorrow): the cursor and counters stay for
    `start` to resume from."""
    job = get_job(session, job_id, for_update=True)
    _move(job, "paused")
    job.error = reason[:ERROR_TEXT_MAX]
    job.updated_at = now or utcnow()
    return job


def success_rate(job: ImportJob) -> float | None:
    """Successful imports over items processed (None before any): the spec's >95 % target."""
    return job.successful_imports / job.processed_items if job.processed_items else None


def duration_s(job: ImportJob, *, now: datetime | None = None) -> float | None:
    """Seconds from start to finish (to `now` while it runs); None before it starts."""
    if job.started_at is None:
        return None
    end = job.completed_at or now or utcnow()
    return max(0.0, (end - job.started_at).total_seconds())


def items_per_s(job: ImportJob, *, now: datetime | None = None) -> float | None:
    seconds = duration_s(job, now=now)
    return job.processed_items / seconds if seconds else None
