"""Every job of the platform, in one place: the asset jobs (what each sensor and schedule runs) and
the op jobs that are not asset materializations (publishing due content, relaying the outbox,
housekeeping).

Asset jobs name their partitions through the assets they select (Dagster infers them). The two jobs
over the dbt models are built with the models (`build_dbt_jobs`), which exist once the manifest is
read at Definitions load; every other job is defined here at import.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING

import dagster as dg

from assets.analytics_events import analytics_raw_events
from assets.analytics_ops import OPS_MODELS, analytics_ops_raw
from assets.analytics_reports import REPORTS_GROUP
from assets.analytics_serving import analytics_serving_tables
from assets.cms import CMS_GROUP
from assets.media import MEDIA_GROUP
from domain import content
from domain.auth import sessions as auth_sessions
from domain.media import uploads as media_uploads
from resources.database import OperationalDatabase
from resources.event_bus import EventBus
from resources.object_store import ObjectStore
from resources.upload_staging import UploadStaging
from sensors.media import MEDIA_ANALYSIS_GROUP

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition


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


@dg.job(
    name="publish_due_content_job", description="Publishes due scheduled content.", tags={"service": "cms"}
)
def publish_due_content_job() -> None:
    publish_due_content()


@dg.job(
    name="outbox_relay_job", description="Relays the outbox to the event bus.", tags={"service": "events"}
)
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
    name="auth_housekeeping_job",
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
    name="tus_cleanup_job",
    description="Removes expired, unfinished resumable uploads.",
    tags={"service": "media"},
)
def tus_cleanup_job() -> None:
    purge_expired_uploads()


media_job = dg.define_asset_job(
    "media_job",
    # The analysis group is empty until transcription/moderation assets exist; the media sensor
    # requests them (asset_selection) in this job when they do.
    selection=dg.AssetSelection.groups(MEDIA_GROUP, MEDIA_ANALYSIS_GROUP),
    description="Processes one uploaded media file (one partition per media id).",
    tags={"service": "media"},
)

analytics_events_job = dg.define_asset_job(
    "analytics_events_job",
    selection=dg.AssetSelection.assets(analytics_raw_events, analytics_ops_raw),
    description="Loads hours of the event lake (and the API's route minutes and finished jobs of "
    "those hours) into the warehouse; analytics_days_sensor then runs analytics_models_job.",
    tags={"service": "analytics"},
)

# Route minutes and processing jobs are loaded with each hour of events, and also every hour on the
# clock: an hour with API traffic but no tracked event still reaches the warehouse.
analytics_ops_job = dg.define_asset_job(
    "analytics_ops_job",
    selection=dg.AssetSelection.assets(analytics_ops_raw),
    description="Loads the closed hour's API route minutes and finished processing jobs into the "
    "warehouse; analytics_days_sensor then runs analytics_ops_models_job for its day.",
    tags={"service": "analytics"},
)

analytics_ops_models_job = dg.define_asset_job(
    "analytics_ops_models_job",
    selection=dg.AssetSelection.assets(*(dg.AssetKey(name) for name in OPS_MODELS)),
    description="Rebuilds the system and processing-job metrics marts of some UTC days.",
    tags={"service": "analytics"},
)

analytics_report_job = dg.define_asset_job(
    "analytics_report_job",
    selection=dg.AssetSelection.groups(REPORTS_GROUP),
    description="Renders one report job (CSV, Excel, PDF, JSON) and notifies its recipients "
    "(run by analytics_reports_sensor).",
    tags={"service": "analytics"},
    executor_def=dg.in_process_executor,
)

notification_events_job = dg.define_asset_job(
    "notification_events_job",
    selection=dg.AssetSelection.assets(dg.AssetKey("notification_events")),
    description="Turns new outbox events into notifications (run by notification_events_sensor).",
    tags={"service": "notifications"},
    executor_def=dg.in_process_executor,  # one light step: no subprocess per step
)

notification_deliveries_job = dg.define_asset_job(
    "notification_deliveries_job",
    selection=dg.AssetSelection.assets(dg.AssetKey("notification_deliveries")),
    description="Drains due email/push/SMS/webhook deliveries, then checks none is stuck.",
    tags={"service": "notifications"},
    executor_def=dg.in_process_executor,
)


@dataclass(frozen=True)
class DbtJobs:
    """The jobs over the dbt models, which exist only once the manifest is read."""

    content_analytics: "UnresolvedAssetJobDefinition"
    analytics_models: "UnresolvedAssetJobDefinition"


def build_dbt_jobs(dbt_models: dg.AssetsDefinition, event_models: dg.AssetsDefinition) -> DbtJobs:
    return DbtJobs(
        content_analytics=dg.define_asset_job(
            "content_analytics_job",
            selection=dg.AssetSelection.groups(CMS_GROUP) | dg.AssetSelection.assets(dbt_models),
            description="Refreshes the warehouse snapshot of content and the dbt models built on it.",
            tags={"service": "analytics"},
        ),
        analytics_models=dg.define_asset_job(
            "analytics_models_job",
            selection=dg.AssetSelection.assets(event_models, analytics_serving_tables),
            description="Rebuilds the dbt event marts of some UTC days and publishes those days to the "
            "serving tables the API reads (run by analytics_days_sensor after each load).",
            tags={"service": "analytics"},
        ),
    )
