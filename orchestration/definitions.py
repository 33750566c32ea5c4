"""The one `Definitions` of the platform (what `workspace.yaml` loads).

Built by a `@dg.definitions` function, so settings are read and the dbt manifest is prepared when
Dagster loads the code location, never at import.
"""

import dagster as dg

from assets.analytics import analytics_assets, event_models_assets
from assets.analytics_events import (
    analytics_raw_events,
    events_daily_partitions,
    events_hourly_partitions,
    raw_events_match_lake,
)
from assets.analytics_ops import OPS_MODELS, analytics_ops_raw
from assets.analytics_reports import ANALYTICS_REPORT_JOB, build_report_files_asset
from assets.analytics_serving import analytics_serving_tables, serving_tables_match_marts
from assets.cms import CMS_GROUP, content_items_snapshot, raw_content_items_row_count
from assets.media import (
    MEDIA_GROUP,
    media_metadata,
    media_metadata_is_complete,
    media_partitions,
    media_thumbnails,
)
from assets.media_renditions import media_renditions, media_renditions_are_complete
from assets.notifications import (
    NOTIFICATION_DELIVERIES_JOB,
    NOTIFICATION_EVENTS_JOB,
    build_notification_assets,
)
from domain.settings import Settings
from orchestration.deployment import build_resources, load_settings, notification_policy
from orchestration.jobs import (
    auth_housekeeping_job,
    outbox_relay_job,
    publish_due_content_job,
    tus_cleanup_job,
)
from sensors.analytics import (
    ANALYTICS_EVENTS_JOB,
    ANALYTICS_MODELS_JOB,
    ANALYTICS_OPS_JOB,
    ANALYTICS_OPS_MODELS_JOB,
    build_analytics_days_sensor,
    build_analytics_hours_sensor,
)
from sensors.analytics_alerts import build_analytics_alerts_sensor
from sensors.analytics_reports import build_analytics_reports_sensor
from sensors.cms import (
    CONTENT_ANALYTICS_JOB,
    auth_housekeeping_schedule,
    content_changes_sensor,
    outbox_relay_sensor,
    scheduled_content_sensor,
    tus_cleanup_schedule,
)
from sensors.media import MEDIA_ANALYSIS_GROUP, MEDIA_JOB, build_media_uploads_sensor
from sensors.notifications import (
    notification_broadcasts_sensor,
    notification_deliveries_sensor,
    notification_digest_schedule,
    notification_events_sensor,
)


def build_definitions(settings: Settings) -> dg.Definitions:
    dbt_models = analytics_assets(settings)
    content_analytics_job = dg.define_asset_job(
        CONTENT_ANALYTICS_JOB,
        selection=dg.AssetSelection.groups(CMS_GROUP) | dg.AssetSelection.assets(dbt_models),
        description="Refreshes the warehouse snapshot of content and the dbt models built on it.",
        tags={"service": "analytics"},
    )
    event_models = event_models_assets(settings)
    analytics_events_job = dg.define_asset_job(
        ANALYTICS_EVENTS_JOB,
        selection=dg.AssetSelection.assets(analytics_raw_events, analytics_ops_raw),
        partitions_def=events_hourly_partitions,
        description="Loads hours of the event lake (and the API's route minutes and finished jobs of "
        "those hours) into the warehouse; analytics_days_sensor then runs analytics_models_job.",
        tags={"service": "analytics"},
    )
    analytics_models_job = dg.define_asset_job(
        ANALYTICS_MODELS_JOB,
        selection=dg.AssetSelection.assets(event_models, analytics_serving_tables),
        partitions_def=events_daily_partitions,
        description="Rebuilds the dbt event marts of some UTC days and publishes those days to the "
        "serving tables the API reads (run by analytics_days_sensor after each load).",
        tags={"service": "analytics"},
    )
    # Route minutes and processing jobs are loaded with each hour of events, and also every hour on
    # the clock: an hour with API traffic but no tracked event still reaches the warehouse.
    analytics_ops_job = dg.define_asset_job(
        ANALYTICS_OPS_JOB,
        selection=dg.AssetSelection.assets(analytics_ops_raw),
        partitions_def=events_hourly_partitions,
        description="Loads the closed hour's API route minutes and finished processing jobs into the "
        "warehouse; analytics_days_sensor then runs analytics_ops_models_job for its day.",
        tags={"service": "analytics"},
    )
    analytics_ops_models_job = dg.define_asset_job(
        ANALYTICS_OPS_MODELS_JOB,
        selection=dg.AssetSelection.assets(*(dg.AssetKey(name) for name in OPS_MODELS)),
        partitions_def=events_daily_partitions,
        description="Rebuilds the system and processing-job metrics marts of some UTC days.",
        tags={"service": "analytics"},
    )
    analytics_ops_schedule = dg.build_schedule_from_partitioned_job(
        analytics_ops_job,
        name="analytics_ops_hourly_schedule",
        minute_of_hour=5,
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    analytics_days_sensor = build_analytics_days_sensor(
        [analytics_events_job, analytics_ops_job], [analytics_models_job, analytics_ops_models_job]
    )
    report_files = build_report_files_asset(settings.public_base_url)
    analytics_report_job = dg.define_asset_job(
        ANALYTICS_REPORT_JOB,
        selection=dg.AssetSelection.assets(report_files),
        description="Renders one report job (CSV, Excel, PDF, JSON) and notifies its recipients "
        "(run by analytics_reports_sensor).",
        tags={"service": "analytics"},
        executor_def=dg.in_process_executor,
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
    notifications = build_notification_assets(notification_policy(settings))
    notification_events_job = dg.define_asset_job(
        NOTIFICATION_EVENTS_JOB,
        selection=dg.AssetSelection.assets(notifications.events),
        description="Turns new outbox events into notifications (run by notification_events_sensor).",
        tags={"service": "notifications"},
        executor_def=dg.in_process_executor,  # one light step: no subprocess per step
    )
    notification_deliveries_job = dg.define_asset_job(
        NOTIFICATION_DELIVERIES_JOB,
        selection=dg.AssetSelection.assets(notifications.deliveries),
        description="Drains due email/push/SMS/webhook deliveries, then checks none is stuck.",
        tags={"service": "notifications"},
        executor_def=dg.in_process_executor,
    )
    return dg.Definitions(
        # Every job runs its steps in the run's own process. A step subprocess costs seconds of
        # imports (and tens of seconds on a loaded 2-core machine), more than these jobs gain from
        # running steps side by side: their steps mostly follow one another, the warehouse ones are
        # serialized by their pool anyway, and the platform scales by runs (partitions), not steps.
        executor=dg.in_process_executor,
        assets=[
            content_items_snapshot,
            dbt_models,
            analytics_raw_events,
            analytics_ops_raw,
            event_models,
            analytics_serving_tables,
            report_files,
            media_metadata,
            media_thumbnails,
            media_renditions,
            *notifications.assets,
        ],
        asset_checks=[
            raw_content_items_row_count,
            raw_events_match_lake,
            serving_tables_match_marts,
            media_metadata_is_complete,
            media_renditions_are_complete,
            notifications.deliveries_not_stuck,
        ],
        jobs=[
            publish_due_content_job,
            outbox_relay_job,
            content_analytics_job,
            analytics_events_job,
            analytics_models_job,
            analytics_report_job,
            analytics_ops_job,
            analytics_ops_models_job,
            auth_housekeeping_job,
            tus_cleanup_job,
            media_job,
            notification_events_job,
            notification_deliveries_job,
            notifications.broadcast_job,
        ],
        schedules=[
            auth_housekeeping_schedule,
            tus_cleanup_schedule,
            notification_digest_schedule,
            analytics_ops_schedule,
        ],
        sensors=[
            scheduled_content_sensor,
            outbox_relay_sensor,
            content_changes_sensor,
            media_sensor,
            notification_events_sensor,
            notification_deliveries_sensor,
            notification_broadcasts_sensor,
            build_analytics_hours_sensor(),
            analytics_days_sensor,
            build_analytics_alerts_sensor(),
            build_analytics_reports_sensor(),
        ],
        resources=build_resources(settings),
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(load_settings())
