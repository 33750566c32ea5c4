"""The dbt models of the warehouse as Dagster assets; dbt tests surface as asset checks.

Built by `analytics_assets(settings)` / `event_models_assets(settings)` at Definitions load (never
at import): they make sure the manifest is current (see `resources.dagster.dbt.dbt_manifest`) and return
one `@dbt_assets` definition each. The models tagged `events` (over the event lake) are partitioned
by UTC day over the hourly `analytics_raw_events`; each run rebuilds its days, passed to dbt as
`--vars '{min_date, max_date}'` (incremental delete+insert of those days).
"""

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets

from assets.analytics_events import analytics_raw_events, events_daily_partitions
from assets.analytics_ops import PROCESSING_JOBS_KEY, ROUTE_MINUTES_KEY
from assets.cms import RAW_CONTENT_ITEMS_TABLE, content_items_snapshot
from domain.analytics.warehouse_events import RAW_EVENTS_TABLE
from domain.analytics.warehouse_ops import RAW_PROCESSING_JOBS_TABLE, RAW_ROUTE_MINUTES_TABLE
from domain.settings import Settings
from resources.dagster.dbt import dbt_manifest, dbt_project
from resources.warehouse import WAREHOUSE_POOL

STAGING_GROUP = "warehouse_staging"
INTERMEDIATE_GROUP = "warehouse_intermediate"
MARTS_GROUP = "analytics"

# Top-level folder under dbt_project/models -> Dagster group.
FOLDER_GROUPS: Mapping[str, str] = {
    "staging": STAGING_GROUP,
    "intermediate": INTERMEDIATE_GROUP,
    "marts": MARTS_GROUP,
}

# dbt sources loaded by Dagster assets: (source name, table) -> the asset that loads it.
SOURCE_ASSETS: Mapping[tuple[str, str], dg.AssetKey] = {
    ("cms", RAW_CONTENT_ITEMS_TABLE): content_items_snapshot.key,
    ("events", RAW_EVENTS_TABLE): analytics_raw_events.key,
    ("ops", RAW_ROUTE_MINUTES_TABLE): ROUTE_MINUTES_KEY,
    ("ops", RAW_PROCESSING_JOBS_TABLE): PROCESSING_JOBS_KEY,
}
# dbt tag of the models built over the event lake (partitioned by hour, run with a date window).
EVENTS_TAG = "events"


class AnalyticsTranslator(DagsterDbtTranslator):
    """Groups models by folder and wires dbt sources to the Dagster assets that load them."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            loaded_by = SOURCE_ASSETS.get((dbt_resource_props["source_name"], dbt_resource_props["name"]))
            if loaded_by is not None:
                return loaded_by
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        fqn = dbt_resource_props.get("fqn", [])
        # fqn = [project, folder, ..., name] for models under a folder of models/.
        if len(fqn) > 2 and fqn[1] in FOLDER_GROUPS:
            return FOLDER_GROUPS[fqn[1]]
        return super().get_group_name(dbt_resource_props)


@cache
def analytics_assets(settings: Settings) -> dg.AssetsDefinition:
    """The dbt models (and their tests, as checks), in the `warehouse` pool.

    Runs `dbt parse` first if the manifest is missing or stale; call it when building Definitions.
    """

    @dbt_assets(
        manifest=dbt_manifest(settings),
        project=dbt_project(settings.deployment),
        dagster_dbt_translator=AnalyticsTranslator(),
        pool=WAREHOUSE_POOL,
        name="warehouse_dbt_models",
        exclude=f"tag:{EVENTS_TAG}",
    )
    def warehouse_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> Iterator[Any]:
        yield from dbt.cli(["build"], context=context).stream()

    return warehouse_dbt_models


def day_window(start: datetime, end: datetime) -> dict[str, str]:
    """The dbt vars of a run over [start, end): the whole UTC days it touches, `max_date` exclusive."""
    first = start.astimezone(UTC).date()
    last = (end.astimezone(UTC) - timedelta(microseconds=1)).date()
    return {"min_date": first.isoformat(), "max_date": (last + timedelta(days=1)).isoformat()}


@cache
def event_models_assets(settings: Settings) -> dg.AssetsDefinition:
    """The models tagged `events`, partitioned by UTC day over the hourly raw events they read: a
    run rebuilds its days (a backfill of a range is one dbt run)."""

    @dbt_assets(
        manifest=dbt_manifest(settings),
        project=dbt_project(settings.deployment),
        dagster_dbt_translator=AnalyticsTranslator(),
        pool=WAREHOUSE_POOL,
        name="event_dbt_models",
        select=f"tag:{EVENTS_TAG}",
        partitions_def=events_daily_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def event_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> Iterator[Any]:
        window = context.partition_time_window
        dbt_vars = day_window(window.start, window.end)
        yield from dbt.cli(["build", "--vars", json.dumps(dbt_vars)], context=context).stream()

    return event_dbt_models
