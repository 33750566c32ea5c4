"""The dbt models on chDB: snapshot -> staging -> marts through Dagster, dbt tests as checks."""

from __future__ import annotations

import uuid

import dagster as dg

from assets.analytics import MARTS_GROUP, STAGING_GROUP, analytics_assets
from assets.cms import content_items_snapshot, raw_content_items_row_count
from domain.settings import Settings
from orchestration.deployment import build_client, build_resources

DIM_CONTENT = dg.AssetKey("dim_content")
STG_CONTENT = dg.AssetKey("stg_cms__content_items")


def test_translator_groups_models_by_folder_and_wires_the_source_to_the_snapshot(embedded: Settings):
    models = analytics_assets(embedded)

    assert {key: models.group_names_by_key[key] for key in models.keys} == {
        STG_CONTENT: STAGING_GROUP,
        DIM_CONTENT: MARTS_GROUP,
    }
    assert models.asset_deps[STG_CONTENT] == {content_items_snapshot.key}
    assert models.asset_deps[DIM_CONTENT] == {STG_CONTENT}
    # Everything that opens the warehouse shares one pool (limit 1 when it is embedded chDB).
    assert (
        models.op.pool == content_items_snapshot.op.pool == raw_content_items_row_count.op.pool == "warehouse"
    )
    assert {check.name for check in models.check_keys if check.asset_key == DIM_CONTENT} >= {
        "unique_dim_content_content_id",
        "not_null_dim_content_display_title",
    }
    # The graph is connected: the dbt source is the snapshot asset, not a dangling external asset.
    defs = dg.Definitions(
        assets=[content_items_snapshot, models],
        asset_checks=[raw_content_items_row_count],
        resources=build_resources(embedded),
    )
    graph = defs.resolve_asset_graph()
    assert graph.get(STG_CONTENT).parent_keys == {content_items_snapshot.key}
    assert not graph.get(content_items_snapshot.key).is_external


def test_dbt_models_build_on_chdb_and_their_tests_pass(embedded: Settings, seeded: dict[str, uuid.UUID]):
    resources = build_resources(embedded)

    result = dg.materialize(
        [content_items_snapshot, raw_content_items_row_count, analytics_assets(embedded)],
        resources=resources,
        instance=dg.DagsterInstance.ephemeral(),
    )

    assert result.success
    materialized = {event.asset_key for event in result.get_asset_materialization_events()}
    assert {content_items_snapshot.key, STG_CONTENT, DIM_CONTENT} <= materialized
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert {
        "raw_content_items_row_count",
        "unique_stg_cms__content_items_content_id",
        "unique_dim_content_content_id",
        "accepted_values_dim_content_status__draft__in_review__scheduled__published__archived",
        "not_null_dim_content_display_title",
    } <= set(checks)
    assert all(checks.values()), checks

    with build_client(resources["warehouse"]).client() as client:
        rows = client.query(
            "SELECT content_id, content_type, status, display_title, tag_count, is_live, is_deleted,"
            " seconds_to_publish IS NOT NULL"
            f" FROM `{embedded.warehouse_database}`.dim_content"
        ).result_rows
    dim = {row[0]: row[1:] for row in rows}
    assert dim == {
        seeded["published"]: ("video", "published", "مرحبا بالعالم", 2, True, False, True),
        seeded["draft"]: ("article", "draft", "Draft notes", 0, False, False, False),
        seeded["deleted"]: ("audio", "draft", "حلقة محذوفة", 0, False, True, False),
    }
