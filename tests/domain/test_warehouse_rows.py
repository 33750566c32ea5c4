"""Content items -> `raw_content_items` rows (pure; no database)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from domain.schema import ContentItem
from domain.warehouse_rows import RAW_CONTENT_ITEMS_COLUMNS, content_item_row

SNAPSHOT_AT = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
RIYADH = timezone(timedelta(hours=3))


def _item(**overrides) -> ContentItem:
    values = dict(
        id=uuid.UUID("01900000-0000-7000-8000-000000000001"),
        type="video",
        title={"ar": "مرحبا", "en": "Hello"},
        description={"en": "  "},
        slug="hello",
        status="published",
        tags=["news"],
        meta={"duration": 61, "source": "يوتيوب"},
        created_by=None,
        updated_by=uuid.UUID("01900000-0000-7000-8000-0000000000aa"),
        created_at=datetime(2026, 11, 1, 9, 0, tzinfo=UTC),
        updated_at=datetime(2026, 11, 1, 12, 30, tzinfo=RIYADH),
        publish_at=None,
        published_at=datetime(2026, 11, 1, 9, 30, tzinfo=UTC),
        deleted_at=None,
        version=3,
    )
    values.update(overrides)
    return ContentItem(**values)


def _row(item: ContentItem) -> dict:
    row = content_item_row(item, SNAPSHOT_AT)
    assert len(row) == len(RAW_CONTENT_ITEMS_COLUMNS)
    return dict(zip((name for name, _ in RAW_CONTENT_ITEMS_COLUMNS), row, strict=True))


def test_languages_become_columns_and_blank_or_missing_text_is_null():
    row = _row(_item(title={"en": "Only English"}))

    assert (row["title_ar"], row["title_en"]) == (None, "Only English")
    assert (row["description_ar"], row["description_en"]) == (None, None)
    assert _row(_item())["title_ar"] == "مرحبا"


def test_timestamps_are_converted_to_utc_and_nulls_kept():
    row = _row(_item())

    assert row["updated_at"] == datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
    assert row["updated_at"].utcoffset() == timedelta(0)
    assert row["publish_at"] is None and row["deleted_at"] is None
    assert row["snapshot_at"] == SNAPSHOT_AT


def test_soft_deleted_items_are_kept_and_flagged():
    deleted_at = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)

    assert _row(_item(deleted_at=deleted_at))["is_deleted"] is True
    assert _row(_item(deleted_at=deleted_at))["deleted_at"] == deleted_at
    assert _row(_item())["is_deleted"] is False


def test_metadata_is_stable_json_text_keeping_arabic_readable():
    assert _row(_item())["metadata_json"] == '{"duration": 61, "source": "يوتيوب"}'
    assert _row(_item(meta={}))["metadata_json"] == "{}"


def test_naive_timestamps_are_refused():
    with pytest.raises(ValueError, match="naive timestamp"):
        content_item_row(_item(created_at=datetime(2026, 11, 1, 9, 0)), SNAPSHOT_AT)
