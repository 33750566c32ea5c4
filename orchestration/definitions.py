"""The one `Definitions` of the platform (what `workspace.yaml` loads).

Built by a `@dg.definitions` function, so settings are read and the dbt manifest is prepared when
Dagster loads the code location, never at import. The jobs come from `orchestration.jobs`; every
sensor and schedule is built here from its factory, given the job it runs.
"""

# ruff: noqa: E402

import warnings

import dagster as dg

# Beta Dagster APIs we chose on purpose, which Dagster warns about at every use and every load of the
# code location; silenced once, here, before the asset modules are imported (hence E402 below):
# - `BackfillPolicy.single_run()` on the partitioned warehouse assets (the raw events and ops loads,
#   the dbt event models, the serving tables), so a backfilled range is one run: one `BetaWarning`
#   per such asset;
# - sensors given their job object (`job=`): Definitions copies each such sensor to attach the
#   resources, and Dagster's copy passes the beta `owners` parameter along, one warning per sensor.
for beta_parameter in ("backfill_policy", "owners"):
    warnings.filterwarnings("ignore", message=f"Parameter `{beta_parameter}`", category=dg.BetaWarning)

from assets.analytics import analytics_assets, event_models_assets
from assets.analytics_events import analytics_raw_events, raw_events_match_lake
from assets.analytics_ops import analytics_ops_raw
from assets.analytics_reports import build_report_files_asset
from assets.analytics_serving import analytics_serving_tables, serving_tables_match_marts
from assets.cms import content_items_snapshot, raw_content_items_row_count
from assets.media import media_metadata, media_metadata_is_complete, media_thumbnails
from assets.media_renditions import media_renditions, media_renditions_are_complete
from assets.notifications import build_notification_assets
from domain.settings import Settings
from orchestration import jobs
from orchestration.deployment import build_resources, load_settings, notification_policy
from sensors.analytics import build_analytics_days_sensor, build_analytics_hours_sensor
from sensors.analytics_alerts import build_analytics_alerts_sensor
from sensors.analytics_reports import build_analytics_reports_sensor
from sensors.cms import (
    build_auth_housekeeping_schedule,
    build_content_changes_sensor,
    build_outbox_relay_sensor,
    build_scheduled_content_sensor,
    build_tus_cleanup_schedule,
)
from sensors.media import build_media_uploads_sensor
from sensors.notifications import (
    build_notification_broadcasts_sensor,
    build_notification_deliveries_sensor,
    build_notification_digest_schedule,
    build_notification_events_sensor,
)


def build_definitions(settings: Settings) -> dg.Definitions:
    dbt_models = analytics_assets(settings)
    event_models = event_models_assets(settings)
    dbt_jobs = jobs.build_dbt_jobs(dbt_models, event_models)
    report_files = build_report_files_asset(settings.public_base_url)
    notifications = build_notification_assets(notification_policy(settings))
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
            jobs.publish_due_content_job,
            jobs.outbox_relay_job,
            dbt_jobs.content_analytics,
            jobs.analytics_events_job,
            dbt_jobs.analytics_models,
            jobs.analytics_report_job,
            jobs.analytics_ops_job,
            jobs.analytics_ops_models_job,
            jobs.auth_housekeeping_job,
            jobs.tus_cleanup_job,
            jobs.media_job,
            jobs.notification_events_job,
            jobs.notification_deliveries_job,
            notifications.broadcast_job,
        ],
        schedules=[
            build_auth_housekeeping_schedule(jobs.auth_housekeeping_job),
            build_tus_cleanup_schedule(jobs.tus_cleanup_job),
            build_notification_digest_schedule(jobs.notification_deliveries_job),
            dg.build_schedule_from_partitioned_job(
                jobs.analytics_ops_job,
                name="analytics_ops_hourly_schedule",
                minute_of_hour=5,
                default_status=dg.DefaultScheduleStatus.RUNNING,
            ),
        ],
        sensors=[
            build_scheduled_content_sensor(jobs.publish_due_content_job),
            build_outbox_relay_sensor(jobs.outbox_relay_job),
            build_content_changes_sensor(dbt_jobs.content_analytics),
            build_media_uploads_sensor(jobs.media_job, settings.media_partition_retention_days),
            build_notification_events_sensor(jobs.notification_events_job),
            build_notification_deliveries_sensor(jobs.notification_deliveries_job),
            build_notification_broadcasts_sensor(notifications.broadcast_job),
            build_analytics_hours_sensor(jobs.analytics_events_job),
            build_analytics_days_sensor(
                [
                    (jobs.analytics_events_job, dbt_jobs.analytics_models),
                    (jobs.analytics_ops_job, jobs.analytics_ops_models_job),
                ]
            ),
            build_analytics_alerts_sensor(),
            build_analytics_reports_sensor(jobs.analytics_report_job),
        ],
        resources=build_resources(settings),
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(load_settings())
