"""The content snapshot asset against a real SQLite operational DB and a real chDB warehouse."""

from __future__ import annotations

import uuid

import dagster as dg
from sqlalchemy.orm import Session

from assets.cms import RAW_CONTENT_ITEMS_TABLE, content_items_snapshot, raw_content_items_row_count
from domain import content
from domain.content import NewContent
from domain.db import sync_engine
from domain.settings import Settings
from orchestration.deployment import build_client, build_resources


def _raw_rows(resources: dict, settings: Settings) -> dict:
    with build_client(resources["warehouse"]).client() as client:
        rows = client.query(
            "SELECT id, type, status, title_ar, title_en, tags, is_deleted, deleted_at IS NOT NULL,"
            " timezoneOf(created_at)"
            f" FROM `{settings.warehouse_database}`.`{RAW_CONTENT_ITEMS_TABLE}`"
        ).result_rows
        leftovers = client.command(
            f"EXISTS TABLE `{settings.warehouse_database}`.`{RAW_CONTENT_ITEMS_TABLE}__loading`"
        )
    assert leftovers == 0
    return {row[0]: row[1:] for row in rows}


def test_snapshot_loads_every_item_and_replaces_the_previous_one(
    embedded: Settings, seeded: dict[str, uuid.UUID]
):
    resources = build_resources(embedded)
    instance = dg.DagsterInstance.ephemeral()

    result = dg.materialize(
        [content_items_snapshot, raw_content_items_row_count], resources=resources, instance=instance
    )

    assert result.success
    [materialization] = result.asset_materializations_for_node("content_items_snapshot")
    assert materialization.metadata["dagster/row_count"].value == 3
    by_status = materialization.metadata["by_status"].value
    assert "| published | 1 | 0 |" in by_status
    assert "| draft | 1 | 1 |" in by_status
    assert "| video | published | مرحبا بالعالم | Hello world |" in materialization.metadata["preview"].value
    [check] = result.get_asset_check_evaluations()
    assert check.passed and check.metadata["rows_in_warehouse"].value == 3

    rows = _raw_rows(resources, embedded)
    assert rows[seeded["published"]][:5] == (
        "video",
        "published",
        "مرحبا بالعالم",
        "Hello world",
        ["news", "intro"],
    )
    assert rows[seeded["draft"]][2:4] == (None, "Draft notes")
    assert rows[seeded["deleted"]][5:] == (True, True, "UTC")
    assert rows[seeded["published"]][5:] == (False, False, "UTC")

    engine = sync_engine(embedded.database_url)
    with Session(engine) as session, session.begin():
        added = content.create_content(session, NewContent(type="image", title={"en": "Late addition"})).id
    engine.dispose()
    again = dg.materialize(
        [content_items_snapshot, raw_content_items_row_count], resources=resources, instance=instance
    )

    assert again.success
    rows = _raw_rows(resources, embedded)
    assert set(rows) == {seeded["published"], seeded["draft"], seeded["deleted"], added}
