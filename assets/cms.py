"""CMS core in the warehouse: snapshots of the operational content tables, the dbt sources."""

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping

import dagster as dg
import sqlalchemy as sa

from domain.markdown import markdown_table
from domain.schema import ContentItem, utcnow
from domain.warehouse_rows import RAW_CONTENT_ITEMS_COLUMNS, RAW_CONTENT_ITEMS_ORDER_BY, content_item_row
from resources.database import OperationalDatabase
from resources.warehouse import WAREHOUSE_POOL, Warehouse

CMS_GROUP = "cms"
RAW_CONTENT_ITEMS_TABLE = "raw_content_items"
PREVIEW_ROWS = 5
READ_BATCH = 2_000


def _tallied(
    items: Iterable[ContentItem], statuses: Counter[tuple[str, bool]], preview: list[ContentItem]
) -> Iterator[ContentItem]:
    for item in items:
        statuses[item.status, item.deleted_at is not None] += 1
        if len(preview) < PREVIEW_ROWS:
            preview.append(item)
        yield item


@dg.asset(group_name=CMS_GROUP, kinds={"python", "clickhouse"}, pool=WAREHOUSE_POOL)
def content_items_snapshot(
    context: dg.AssetExecutionContext,
    database: dg.ResourceParam[OperationalDatabase],
    warehouse: dg.ResourceParam[Warehouse],
) -> dg.MaterializeResult:
    """Every content item of the operational DB, soft-deleted ones included (`is_deleted`), loaded
    into the warehouse table `raw_content_items` (one column per title/description language, UTC
    timestamps). Each run replaces the previous snapshot atomically; dbt's `cms` source reads it."""
    snapshot_at = utcnow()
    statuses: Counter[tuple[str, bool]] = Counter()
    preview: list[ContentItem] = []
    with database.session() as session:
        items = session.scalars(
            sa.select(ContentItem)
            .order_by(ContentItem.created_at, ContentItem.id)
            .execution_options(yield_per=READ_BATCH)
        )
        loaded = warehouse.replace_table(
            RAW_CONTENT_ITEMS_TABLE,
            RAW_CONTENT_ITEMS_COLUMNS,
            (content_item_row(item, snapshot_at) for item in _tallied(items, statuses, preview)),
            order_by=RAW_CONTENT_ITEMS_ORDER_BY,
        )
    context.log.info(f"loaded {loaded} content items into {warehouse.database}.{RAW_CONTENT_ITEMS_TABLE}")
    return dg.MaterializeResult(
        metadata={
            # Dagster's standard table metadata: row count plot and table name in the UI.
            "dagster/row_count": loaded,
            "dagster/table_name": f"{warehouse.database}.{RAW_CONTENT_ITEMS_TABLE}",
            "snapshot_at": dg.MetadataValue.timestamp(snapshot_at),
            "by_status": dg.MetadataValue.md(
                markdown_table(
                    ("status", "live", "deleted"),
                    (
                        (status, statuses[status, False], statuses[status, True])
                        for status in sorted({status for status, _ in statuses})
                    ),
                )
            ),
            "preview": dg.MetadataValue.md(
                markdown_table(
                    ("id", "type", "status", "title (ar)", "title (en)"),
                    (
                        (item.id, item.type, item.status, item.title.get("ar"), item.title.get("en"))
                        for item in preview
                    ),
                )
            ),
        }
    )


def _latest_metadata(instance: dg.DagsterInstance, key: dg.AssetKey) -> Mapping[str, dg.MetadataValue] | None:
    event = instance.get_latest_materialization_event(key)
    if event is None or event.asset_materialization is None:
        return None
    return event.asset_materialization.metadata


@dg.asset_check(asset=content_items_snapshot, pool=WAREHOUSE_POOL, blocking=True)
def raw_content_items_row_count(
    context: dg.AssetCheckExecutionContext, warehouse: dg.ResourceParam[Warehouse]
) -> dg.AssetCheckResult:
    """The warehouse table holds exactly as many rows as the latest snapshot read from the
    operational DB (a short load or a concurrent writer would show up here)."""
    metadata = _latest_metadata(context.instance, content_items_snapshot.key)
    if metadata is None or "dagster/row_count" not in metadata:
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description="content_items_snapshot has not been materialized yet",
        )
    expected = int(metadata["dagster/row_count"].value)  # type: ignore[arg-type]
    with warehouse.client() as client:
        actual = client.command(f"SELECT count() FROM `{warehouse.database}`.`{RAW_CONTENT_ITEMS_TABLE}`")
    return dg.AssetCheckResult(
        passed=int(actual) == expected,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"rows_read": expected, "rows_in_warehouse": int(actual)},
    )
