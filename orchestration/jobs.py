"""Jobs that are not asset materializations: publishing due content and relaying the outbox."""

import dagster as dg

from domain import content
from domain.auth import sessions as auth_sessions
from domain.media import uploads as media_uploads
from resources.database import OperationalDatabase
from resources.event_bus import EventBus
from resources.object_store import ObjectStore
from resources.upload_staging import UploadStaging
from sensors.cms import AUTH_HOUSEKEEPING_JOB, OUTBOX_RELAY_JOB, PUBLISH_DUE_JOB, TUS_CLEANUP_JOB


@dg.op(
    description="Publish every scheduled item whose publish_at has passed, with its content.published event."
)
def publish_due_content(
    context: dg.OpExecutionContext, database: dg.ResourceParam[OperationalDatabase]
) -> dg.Output:
    with database.session() as session:
        published = content.publish_due(session)
    context.log.info("published %d scheduled item(s)", len(published))
    return dg.Output(
        len(published),
        metadata={"published": len(published), "ids": dg.MetadataValue.json([str(i) for i in published])},
    )


@dg.op(
    description="Relay unrelayed outbox events to the event bus (NATS JetStream, de-duplicated by event id)."
)
def relay_outbox(
    context: dg.OpExecutionContext,
    database: dg.ResourceParam[OperationalDatabase],
    event_bus: dg.ResourceParam[EventBus],
) -> dg.Output:
    result = event_bus.relay(database)
    if result.skipped_reason:
        context.log.info(result.skipped_reason)
    return dg.Output(
        result.published,
        metadata={"published": result.published, "duplicates": result.duplicates, "pending": result.pending},
    )


@dg.job(name=PUBLISH_DUE_JOB, description="Publishes due scheduled content.", tags={"service": "cms"})
def publish_due_content_job() -> None:
    publish_due_content()


@dg.job(name=OUTBOX_RELAY_JOB, description="Relays the outbox to the event bus.", tags={"service": "events"})
def outbox_relay_job() -> None:
    relay_outbox()


@dg.op(description="Delete ended sessions, spent refresh tokens and expired emailed-link tokens.")
def purge_expired_auth_rows(
    context: dg.OpExecutionContext, database: dg.ResourceParam[OperationalDatabase]
) -> dg.Output:
    with database.session() as session:
        counts = auth_sessions.purge_expired(session)
    context.log.info("purged %s", counts)
    return dg.Output(sum(counts.values()), metadata=counts)


@dg.job(
    name=AUTH_HOUSEKEEPING_JOB,
    description="Purges ended sessions and expired tokens.",
    tags={"service": "users"},
)
def auth_housekeeping_job() -> None:
    purge_expired_auth_rows()


@dg.op(
    description="Delete tus uploads that expired before completing: abort their object-store multipart "
    "uploads (the parts sent so far) and delete the tails the API host kept."
)
def purge_expired_uploads(
    context: dg.OpExecutionContext,
    database: dg.ResourceParam[OperationalDatabase],
    upload_staging: dg.ResourceParam[UploadStaging],
    object_store: dg.ResourceParam[ObjectStore],
) -> dg.Output:
    removed = aborted = freed = 0
    with database.session() as session:
        for upload in media_uploads.expired_uploads(session):
            if upload.multipart_upload_id:
                object_store.abort_multipart(upload.staging_key, upload.multipart_upload_id)
                object_store.delete(upload.staging_key)  # assembled by a finish that failed midway
                freed += media_uploads.stored_bytes(upload)
                aborted += 1
            freed += upload_staging.held_bytes(upload.id)
            upload_staging.remove(upload.id)
            session.delete(upload)
            removed += 1
    context.log.info("removed %d expired upload(s) (%d multipart aborted), %d bytes", removed, aborted, freed)
    return dg.Output(
        removed, metadata={"uploads_removed": removed, "multipart_aborted": aborted, "bytes_freed": freed}
    )


@dg.job(
    name=TUS_CLEANUP_JOB,
    description="Removes expired, unfinished resumable uploads.",
    tags={"service": "media"},
)
def tus_cleanup_job() -> None:
    purge_expired_uploads()
