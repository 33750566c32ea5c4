"""Progress lands on the run's own job. One media can have several jobs in flight (the upload's
`process` job, then an analyze and a transcode request); the metadata and thumbnail assets of a
run move the job its tag names, and leave the others as they were."""

from __future__ import annotations

import dagster as dg
import pytest
import sqlalchemy as sa

from assets.media import media_metadata, media_partitions, media_thumbnails
from domain.media import processing
from domain.media.jobs import JOB_TAG
from domain.schema import MediaJob
from resources.database import OperationalDatabase
from tests.assets.conftest import store_upload


def jobs_of(database: OperationalDatabase, media_id) -> dict[str, tuple]:
    """kind -> (id, status, stage, percent, started_at, updated_at), oldest job first."""
    with database.session() as session:
        rows = session.scalars(
            sa.select(MediaJob).where(MediaJob.media_asset_id == media_id).order_by(MediaJob.created_at)
        ).all()
        return {j.kind: (str(j.id), j.status, j.stage, j.percent, j.started_at, j.updated_at) for j in rows}


@pytest.mark.parametrize("tagged", ["process", "analyze", "transcode"])  # the oldest, the middle, the newest
def test_progress_moves_only_the_job_the_run_is_tagged_with(env, clip, tagged) -> None:
    database, store = env
    media_id = store_upload(env, clip)
    with database.session() as session:
        processing.request_analysis(session, media_id, ["moderation"])
    with database.session() as session:
        processing.request_transcode(session, media_id, ["hls", "thumbnails"])
    before = jobs_of(database, media_id)
    assert list(before) == ["process", "analyze", "transcode"]
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(media_partitions.name, [str(media_id)])

    result = dg.materialize(
        [media_metadata, media_thumbnails],
        partition_key=str(media_id),
        instance=instance,
        tags={JOB_TAG: before[tagged][0]},
        resources={"database": database, "object_store": store},
    )

    assert result.success
    after = jobs_of(database, media_id)
    job_id, status, stage, percent, started_at, _ = after[tagged]
    assert (job_id, status, stage, percent) == (before[tagged][0], "processing", "thumbnails", 20.0)
    assert started_at is not None
    others = {kind: row for kind, row in after.items() if kind != tagged}
    assert others == {kind: row for kind, row in before.items() if kind != tagged}  # untouched
