"""Re-processing requests (transcode, analyze) and the bookkeeping the media sensor needs: the job
behind each run it requests, and which media may leave Dagster's `media` partition set.

A request is a `media_jobs` row plus an outbox event, written in one transaction; the media sensor
reads the event and requests the run. Retention only trims Dagster's partition set: the media, its
jobs and variants stay in the operational DB, and a re-process adds the partition back.

A media's jobs are its uploader's business and that of whoever may edit content (`content:update`):
to anyone else a media or job is as unknown as one that does not exist (`visible_job`,
`may_manage`). One job per media and kind is unfinished (pending or processing) at a time.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from domain.errors import Conflict, InvalidValue, NotFound
from domain.media import events, renditions
from domain.outbox import record_event
from domain.schema import MediaAsset, MediaJob, utcnow

FORMATS = renditions.FORMATS  # what media_renditions honours in `requested["formats"]`
ANALYSES = ("transcription", "moderation")
FINISHED = ("completed", "failed")
UNFINISHED = ("pending", "processing")
NO_ANALYSIS_ASSETS = (
    "no analysis assets are installed in this deployment "
    "(transcription and moderation come with their own issue)"
)


def _choose(values: Sequence[str] | None, allowed: tuple[str, ...], field: str) -> list[str]:
    """The requested names in request order, without repeats; None means all of them."""
    if values is None:
        return list(allowed)
    chosen = list(dict.fromkeys(values))
    unknown = [v for v in chosen if v not in allowed]
    if unknown:
        raise InvalidValue(
            f"unknown {field} {', '.join(map(repr, unknown))}; choose from {', '.join(allowed)}", field=field
        )
    if not chosen:
        raise InvalidValue(f"name at least one of {', '.join(allowed)}, or leave {field} out", field=field)
    return chosen


def may_manage(asset: MediaAsset, user_id: uuid.UUID | None, *, may_update_content: bool) -> bool:
    """The uploader, or anyone holding `content:update`; `user_id` None is the platform itself."""
    return (
        user_id is None
        or may_update_content
        or (asset.uploaded_by is not None and asset.uploaded_by == user_id)
    )


def visible_job(
    session: Session, job_id: uuid.UUID, user_id: uuid.UUID, *, may_update_content: bool
) -> MediaJob | None:
    """The job if it exists and `user_id` may watch it (its media's uploader, or `content:update`)."""
    job = session.get(MediaJob, job_id)
    if job is None:
        return None
    asset = session.get(MediaAsset, job.media_asset_id)
    return (
        job
        if asset is not None and may_manage(asset, user_id, may_update_content=may_update_content)
        else None
    )


def _processable(
    session: Session, media_id: uuid.UUID, kind: str, requested_by: uuid.UUID | None, may_update_content: bool
) -> MediaAsset:
    # Locked: two requests racing for the same media queue one job, not two.
    asset = session.get(MediaAsset, media_id, with_for_update=True)
    if asset is None or not may_manage(asset, requested_by, may_update_content=may_update_content):
        raise NotFound(f"media {media_id} does not exist")
    if asset.upload_status == "failed" and _original_refused(session, media_id):
        raise Conflict(
            f"media {media_id} cannot be processed: its original failed validation; upload a new file"
        )
    waiting = session.scalar(
        sa.select(MediaJob)
        .where(MediaJob.media_asset_id == media_id, MediaJob.kind == kind, MediaJob.status.in_(UNFINISHED))
        .order_by(MediaJob.created_at)
        .limit(1)
    )
    if waiting is not None:
        raise Conflict(
            f"a {kind} job of media {media_id} is {waiting.status} already: follow it at "
            f"/api/v1/media/job/{waiting.id}/status, and ask again once it has finished"
        )
    return asset


def _original_refused(session: Session, media_id: uuid.UUID) -> bool:
    """`media_metadata` fails a job at stage `metadata` when the original cannot be read."""
    return (
        session.scalar(
            sa.select(MediaJob.id)
            .where(
                MediaJob.media_asset_id == media_id,
                MediaJob.status == "failed",
                MediaJob.stage == "metadata",
            )
            .limit(1)
        )
        is not None
    )


def _new_job(session: Session, media_id: uuid.UUID, kind: str, requested: dict) -> MediaJob:
    now = utcnow()
    job = MediaJob(
        media_asset_id=media_id,
        kind=kind,
        status="pending",
        stage="queued",
        percent=0.0,
        requested=requested,
        created_at=now,
        updated_at=now,
    )
    session.add(job)
    session.flush()
    return job


def request_transcode(
    session: Session,
    media_id: uuid.UUID,
    formats: Sequence[str] | None = None,
    *,
    requested_by: uuid.UUID | None = None,
    may_update_content: bool = True,
) -> MediaJob:
    """A `transcode` job for the given formats (all when None) and its `media.transcode_requested`
    event. Raises NotFound (unknown media, or not the requester's to manage), InvalidValue (unknown
    format), Conflict (the original failed validation, so there is nothing to transcode; or a
    transcode job of the media is unfinished)."""
    chosen = _choose(formats, FORMATS, "formats")
    _processable(session, media_id, "transcode", requested_by, may_update_content)
    job = _new_job(session, media_id, "transcode", {"formats": chosen})
    record_event(
        session,
        events.MEDIA_TRANSCODE_REQUESTED,
        "media",
        media_id,
        {
            "id": str(media_id),
            "job_id": str(job.id),
            "formats": chosen,
            "requested_by": str(requested_by) if requested_by else None,
        },
    )
    return job


def request_analysis(
    session: Session,
    media_id: uuid.UUID,
    analyses: Sequence[str] | None = None,
    *,
    requested_by: uuid.UUID | None = None,
    may_update_content: bool = True,
) -> MediaJob:
    """An `analyze` job (transcription and/or moderation; both when None) and its
    `media.analyze_requested` event. Same refusals as `request_transcode`; a picture has no speech
    to transcribe."""
    chosen = _choose(analyses, ANALYSES, "analyses")
    asset = _processable(session, media_id, "analyze", requested_by, may_update_content)
    if asset.content_type == "image" and "transcription" in chosen:
        raise InvalidValue(f"media {media_id} is an image: it has no speech to transcribe", field="analyses")
    job = _new_job(session, media_id, "analyze", {"analyses": chosen})
    record_event(
        session,
        events.MEDIA_ANALYZE_REQUESTED,
        "media",
        media_id,
        {
            "id": str(media_id),
            "job_id": str(job.id),
            "analyses": chosen,
            "requested_by": str(requested_by) if requested_by else None,
        },
    )
    return job


def first_jobs(session: Session, media_ids: Iterable[str]) -> dict[str, str]:
    """The first `process` job of each media id (created by `record_upload`), in one query."""
    ids = [uuid.UUID(m) for m in media_ids]
    if not ids:
        return {}
    rows = session.execute(
        sa.select(MediaJob.media_asset_id, MediaJob.id)
        .where(MediaJob.media_asset_id.in_(ids), MediaJob.kind == "process")
        .order_by(MediaJob.created_at.desc())
    )
    found: dict[str, str] = {}
    for media_id, job_id in rows:
        found[str(media_id)] = str(job_id)  # newest first, so the oldest is written last and stays
    return found


def existing_jobs(session: Session, job_ids: Iterable[str]) -> dict[str, str]:
    """Job id -> status for the ids that still exist (a deleted media takes its jobs with it)."""
    ids = [uuid.UUID(j) for j in job_ids]
    if not ids:
        return {}
    rows = session.execute(sa.select(MediaJob.id, MediaJob.status).where(MediaJob.id.in_(ids)))
    return {str(job_id): status for job_id, status in rows}


def fail_pending_jobs(
    session: Session, job_ids: Sequence[str], reason: str, *, now: datetime | None = None
) -> list[str]:
    """Fail the jobs among `job_ids` that are still pending, with `reason` (what the job-status API
    shows), and write `media.failed` for each (the payload of `domain.media.jobs.fail`, plus the
    job's kind). The media asset keeps its status: its original and variants are unaffected. Jobs
    no longer pending are left alone, so repeating the call (a tick evaluated twice) changes nothing."""
    now = now or utcnow()
    ids = [uuid.UUID(j) for j in job_ids]
    if not ids:
        return []
    jobs = list(
        session.scalars(sa.select(MediaJob).where(MediaJob.id.in_(ids), MediaJob.status == "pending"))
    )
    for job in jobs:
        job.status, job.error, job.finished_at, job.updated_at = "failed", reason, now, now
        record_event(
            session,
            events.MEDIA_FAILED,
            "media",
            job.media_asset_id,
            {
                "media_id": str(job.media_asset_id),
                "job_id": str(job.id),
                "kind": job.kind,
                "reason": reason,
                "stage": job.stage,
            },
            at=now,
        )
    return [str(job.id) for job in jobs]


@dataclass(frozen=True)
class Mark:
    """Where a retention pass stopped: the finish time and id of the last job it looked at."""

    finished_at: datetime
    job_id: uuid.UUID

    def dump(self) -> list[str]:
        return [self.finished_at.isoformat(), str(self.job_id)]

    @classmethod
    def load(cls, raw: Sequence[str] | None) -> Mark | None:
        if not raw:
            return None
        return cls(datetime.fromisoformat(raw[0]), uuid.UUID(raw[1]))


@dataclass(frozen=True)
class Expired:
    media_ids: list[str]
    mark: Mark | None  # where the next pass starts
    more: bool  # the batch was full: more may have expired already


def expired_media(
    session: Session, *, now: datetime, days: int, after: Mark | None = None, limit: int = 1000
) -> Expired:
    """Media whose latest job finished (completed or failed) more than `days` days before `now`,
    in order of that finish time, starting after `after`.

    A media whose latest job is still pending or running is never returned. Each finished job is
    looked at once, when it passes the cut-off, so a pass costs its batch and not the whole history;
    a media re-processed later comes back (its new job finishes later) `days` after that."""
    cutoff = now - timedelta(days=days)
    later = aliased(MediaJob)
    query = (
        sa.select(MediaJob.media_asset_id, MediaJob.finished_at, MediaJob.id)
        .where(
            MediaJob.status.in_(FINISHED),
            MediaJob.finished_at.is_not(None),
            MediaJob.finished_at <= cutoff,
            ~sa.exists().where(
                later.media_asset_id == MediaJob.media_asset_id, later.created_at > MediaJob.created_at
            ),
        )
        .order_by(MediaJob.finished_at, MediaJob.id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(
            sa.or_(
                MediaJob.finished_at > after.finished_at,
                sa.and_(MediaJob.finished_at == after.finished_at, MediaJob.id > after.job_id),
            )
        )
    rows = session.execute(query).all()
    mark = Mark(rows[-1].finished_at, rows[-1].id) if rows else after
    return Expired(list(dict.fromkeys(str(r.media_asset_id) for r in rows)), mark, len(rows) == limit)
