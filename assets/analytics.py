"""The dbt models of the warehouse as Dagster assets; dbt tests surface as asset checks.

Built by `analytics_assets(settings)` at Definitions load (never at import): it makes sure the
manifest is current (see `resources.dbt.dbt_manifest`) and returns one `@dbt_assets` definition.
"""

from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets

from assets.cms import RAW_CONTENT_ITEMS_TABLE, content_items_snapshot
from domain.settings import Settings
from resources.dbt import dbt_manifest, dbt_project
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
}


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
    )
    def warehouse_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> Iterator[Any]:
        yield from dbt.cli(["build"], context=context).stream()

    return warehouse_dbt_models
