"""The processing job of a media asset as the pipeline moves it along: stage and percent while it
runs, then completed (with `media.processed`) or failed (with `media.failed` and a readable reason).
The original is never touched here: a failure keeps it.

This module owns the job rows the pipeline writes. A media may have several jobs at once (its
upload's `process` job, then transcode and analyze requests): each Dagster run carries the id of
the job it works on in its `JOB_TAG`, set by the media sensor, and every write names that job."""

from __future__ import annotations

import time
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from domain.media import events
from domain.outbox import record_event
from domain.schema import ContentItem, MediaAsset, MediaJob, utcnow

JOB_TAG = "thmnayah/job_id"  # the run tag naming the job a media run works on


def job_for(session: Session, media_id: uuid.UUID, job_id: str | uuid.UUID | None = None) -> MediaJob | None:
    """The job a run works on: the one named in the run's `JOB_TAG` (None when that is not a job of
    this media: another job is never written instead), else, for a run started by hand without the
    tag, the media's latest."""
    if job_id:
        job = session.get(MediaJob, uuid.UUID(str(job_id)))
        return job if job is not None and job.media_asset_id == media_id else None
    return session.scalar(
        sa.select(MediaJob)
        .where(MediaJob.media_asset_id == media_id)
        .order_by(MediaJob.created_at.desc())
        .limit(1)
    )


def update(session: Session, media_id: uuid.UUID, job_id: str | None = None, **values: Any) -> None:
    """Set `values` (status, stage, percent, ...) on the run's job."""
    job = job_for(session, media_id, job_id)
    if job is not None:
        for name, value in values.items():
            setattr(job, name, value)
        job.updated_at = utcnow()


def complete(session: Session, media_id: uuid.UUID, job_id: str | None, summary: dict[str, Any]) -> None:
    """Job completed, asset completed, `media.processed` and the content item's link, in the caller's
    transaction (the same one that publishes the variant rows)."""
    asset = session.get(MediaAsset, media_id)
    job = job_for(session, media_id, job_id)
    now = utcnow()
    if job is not None:
        job.status, job.stage, job.percent, job.error = "completed", "done", 100.0, None
        job.finished_at = job.updated_at = now
    asset.upload_status, asset.updated_at = "completed", now
    if asset.content_item_id is not None:
        item = session.get(ContentItem, asset.content_item_id)
        if item is not None:
            media = dict((item.meta or {}).get("media") or {})
            media[str(media_id)] = {"kind": asset.content_type, "language": asset.language, **summary}
            item.meta = {**(item.meta or {}), "media": media}
    record_event(
        session,
        events.MEDIA_PROCESSED,
        "media",
        media_id,
        {
            "media_id": str(media_id),
            "job_id": str(job.id) if job else None,
            "kind": asset.content_type,
            "content_item_id": str(asset.content_item_id) if asset.content_item_id else None,
            **summary,
        },
    )


def fail(
    session: Session, media_id: uuid.UUID, job_id: str | None, reason: str, stage: str | None = None
) -> None:
    """Job failed with `reason`, asset failed, `media.failed`. Variants already published stay."""
    asset = session.get(MediaAsset, media_id)
    job = job_for(session, media_id, job_id)
    now = utcnow()
    if job is not None:
        job.status, job.error = "failed", reason
        job.stage = stage or job.stage
        job.finished_at = job.updated_at = now
    if asset is not None:
        asset.upload_status, asset.updated_at = "failed", now
    record_event(
        session,
        events.MEDIA_FAILED,
        "media",
        media_id,
        {
            "media_id": str(media_id),
            "job_id": str(job.id) if job else None,
            "reason": reason,
            "stage": job.stage if job else stage,
        },
    )


class Progress:
    """Maps a step's 0..1 onto the job's percent between `start` and `end`, writing at most once a
    second (and on each whole percent) so a long encode does not hammer the database."""

    def __init__(self, write, start: float, end: float, *, every_s: float = 1.0) -> None:
        self.write, self.start, self.end, self.every_s = write, start, end, every_s
        self._last_at, self._last = 0.0, -1.0

    def __call__(self, fraction: float) -> None:
        percent = round(self.start + (self.end - self.start) * fraction, 1)
        now = time.monotonic()
        if percent >= self._last + 1 and now - self._last_at >= self.every_s:
            self._last, self._last_at = percent, now
            self.write(percent)
