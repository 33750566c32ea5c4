"""The one `Definitions` of the platform (what `workspace.yaml` loads).

Built by a `@dg.definitions` function, so settings are read and the dbt manifest is prepared when
Dagster loads the code location, never at import.
"""

import dagster as dg

from assets.analytics import analytics_assets
from assets.cms import CMS_GROUP, content_items_snapshot, raw_content_items_row_count
from assets.media import (
    MEDIA_GROUP,
    media_metadata,
    media_metadata_is_complete,
    media_partitions,
    media_thumbnails,
)
from assets.media_renditions import media_renditions, media_renditions_are_complete
from domain.settings import Settings
from orchestration.deployment import build_resources, load_settings
from orchestration.jobs import (
    auth_housekeeping_job,
    outbox_relay_job,
    publish_due_content_job,
    tus_cleanup_job,
)
from sensors.cms import (
    CONTENT_ANALYTICS_JOB,
    auth_housekeeping_schedule,
    content_changes_sensor,
    outbox_relay_sensor,
    scheduled_content_sensor,
    tus_cleanup_schedule,
)
from sensors.media import MEDIA_ANALYSIS_GROUP, MEDIA_JOB, build_media_uploads_sensor


def build_definitions(settings: Settings) -> dg.Definitions:
    dbt_models = analytics_assets(settings)
    content_analytics_job = dg.define_asset_job(
        CONTENT_ANALYTICS_JOB,
        selection=dg.AssetSelection.groups(CMS_GROUP) | dg.AssetSelection.assets(dbt_models),
        description="Refreshes the warehouse snapshot of content and the dbt models built on it.",
        tags={"service": "analytics"},
    )
    media_job = dg.define_asset_job(
        MEDIA_JOB,
        # The analysis group is empty until transcription/moderation assets exist; the sensor
        # requests them (asset_selection) in this job when they do.
        selection=dg.AssetSelection.groups(MEDIA_GROUP, MEDIA_ANALYSIS_GROUP),
        partitions_def=media_partitions,
        description="Processes one uploaded media file (one partition per media id).",
        tags={"service": "media"},
    )
    media_sensor = build_media_uploads_sensor(settings.media_partition_retention_days)
    return dg.Definitions(
        assets=[content_items_snapshot, dbt_models, media_metadata, media_thumbnails, media_renditions],
        asset_checks=[raw_content_items_row_count, media_metadata_is_complete, media_renditions_are_complete],
        jobs=[
            publish_due_content_job,
            outbox_relay_job,
            content_analytics_job,
            auth_housekeeping_job,
            tus_cleanup_job,
            media_job,
        ],
        schedules=[auth_housekeeping_schedule, tus_cleanup_schedule],
        sensors=[scheduled_content_sensor, outbox_relay_sensor, content_changes_sensor, media_sensor],
        resources=build_resources(settings),
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(load_settings())
