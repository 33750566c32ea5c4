"""Turn new uploads into partitioned runs of the media assets."""

import dagster as dg

from assets.media import media_partitions
from domain import outbox
from resources.database import OperationalDatabase

MEDIA_JOB = "media_job"
BATCH = 10_000


@dg.sensor(
    job_name=MEDIA_JOB,
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Adds a `media` partition per new upload (from `media.uploaded` outbox events) and requests its run.",
)
def media_uploads_sensor(context: dg.SensorEvaluationContext, database: OperationalDatabase):
    after = int(context.cursor or 0)
    with database.session() as session:
        events = outbox.events_after(session, after, limit=BATCH, types=("media.uploaded",))
    if not events:
        return dg.SkipReason(f"no uploads after outbox seq {after}")
    media_ids = list(dict.fromkeys(e.aggregate_id for e in events))
    return dg.SensorResult(
        # One request adds the whole burst; each run key is the media id, so a re-tick never doubles a run.
        dynamic_partitions_requests=[media_partitions.build_add_request(media_ids)],
        run_requests=[dg.RunRequest(partition_key=m, run_key=f"media-{m}") for m in media_ids],
        cursor=str(events[-1].seq),
    )
