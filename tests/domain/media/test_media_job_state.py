"""Which job a media run writes: the one its tag names, and never another media's or a stand-in."""

from __future__ import annotations

import uuid

from domain.media import jobs
from domain.schema import MediaJob
from resources.database import OperationalDatabase
from tests.conftest import record_test_upload


def uploaded(db: OperationalDatabase) -> tuple[uuid.UUID, uuid.UUID]:
    """A recorded upload: (media id, its `process` job id)."""
    with db.session() as session:
        asset, job = record_test_upload(session)
        return asset.id, job.id


def state(db: OperationalDatabase, job_id: uuid.UUID) -> tuple:
    with db.session() as session:
        job = session.get(MediaJob, job_id)
        return job.status, job.stage, job.percent


def test_a_tag_naming_another_media_s_job_writes_no_job(db) -> None:
    media_a, job_a = uploaded(db)
    _, job_b = uploaded(db)
    with db.session() as session:
        jobs.update(session, media_a, str(job_b), status="processing", stage="metadata", percent=10.0)
    assert state(db, job_a) == state(db, job_b) == ("pending", "queued", 0.0)
    with db.session() as session:  # without a tag (a run started by hand): the media's latest job
        jobs.update(session, media_a, None, status="processing", stage="metadata", percent=10.0)
    assert state(db, job_a) == ("processing", "metadata", 10.0)
