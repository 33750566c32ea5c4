"""Operational rows -> warehouse rows: the columns of the raw tables Dagster loads into ClickHouse.

Pure functions over domain objects; the assets stream them into the warehouse. Timestamps become
UTC `DateTime64(6, 'UTC')`, multilingual JSON objects become one column per language (`NULL` when
a language is absent), and soft-deleted items are kept with `is_deleted`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from domain.content import LANGUAGES
from domain.schema import ContentItem

UTC_TIMESTAMP = "DateTime64(6, 'UTC')"

# (column, ClickHouse type), in the order `content_item_row` returns values.
RAW_CONTENT_ITEMS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "UUID"),
    ("type", "LowCardinality(String)"),
    ("status", "LowCardinality(String)"),
    ("slug", "String"),
    *((f"title_{lang}", "Nullable(String)") for lang in LANGUAGES),
    *((f"description_{lang}", "Nullable(String)") for lang in LANGUAGES),
    ("tags", "Array(String)"),
    ("metadata_json", "String"),
    ("created_by", "Nullable(UUID)"),
    ("updated_by", "Nullable(UUID)"),
    ("created_at", UTC_TIMESTAMP),
    ("updated_at", UTC_TIMESTAMP),
    ("publish_at", f"Nullable({UTC_TIMESTAMP})"),
    ("published_at", f"Nullable({UTC_TIMESTAMP})"),
    ("deleted_at", f"Nullable({UTC_TIMESTAMP})"),
    ("is_deleted", "Bool"),
    ("version", "UInt32"),
    ("snapshot_at", UTC_TIMESTAMP),
)
RAW_CONTENT_ITEMS_ORDER_BY = "id"


def utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError(f"naive timestamp {value.isoformat()}; warehouse timestamps must be UTC-aware")
    return value.astimezone(UTC)


def localized(value: Mapping[str, Any] | None, lang: str) -> str | None:
    """The text for `lang`, or None when the language is absent or blank."""
    text = (value or {}).get(lang)
    return text if isinstance(text, str) and text.strip() else None


def content_item_row(item: ContentItem, snapshot_at: datetime) -> tuple[Any, ...]:
    """One `raw_content_items` row, matching `RAW_CONTENT_ITEMS_COLUMNS`."""
    return (
        item.id,
        item.type,
        item.status,
        item.slug,
        *(localized(item.title, lang) for lang in LANGUAGES),
        *(localized(item.description, lang) for lang in LANGUAGES),
        list(item.tags or []),
        json.dumps(item.meta or {}, ensure_ascii=False, sort_keys=True),
        item.created_by,
        item.updated_by,
        utc(item.created_at),
        utc(item.updated_at),
        utc(item.publish_at),
        utc(item.published_at),
        utc(item.deleted_at),
        item.deleted_at is not None,
        item.version,
        utc(snapshot_at),
    )
