"""Content queries and commands over the async session.

Writes run the domain functions (sync Session API) through `Database.write`, inside one transaction
that also holds their outbox events.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from domain import content
from domain.errors import InvalidValue, NotFound
from domain.schema import ContentItem
from domain.text import tokens
from serving.content.schemas import ContentOut
from serving.db import Database
from serving.pagination import decode_cursor, encode_cursor

_ETAG = re.compile(r'^(?:W/)?"v(\d+)"$')
_COLUMNS = [c for c in ContentItem.__table__.c if c.key not in {"search_text", "tag_index"}]
# Built once: constructing a 16-column select and its cache key costs more than the lookup itself.
_GET = sa.select(*_COLUMNS).where(ContentItem.id == sa.bindparam("item_id"), ContentItem.deleted_at.is_(None))


def etag(version: int) -> str:
    return f'"v{version}"'


def parse_if_match(header: str | None) -> int | None:
    """The version an `If-Match` header names; None when absent. `*` matches any version."""
    if header is None or header.strip() == "*":
        return None
    match = _ETAG.match(header.strip())
    if not match:
        raise InvalidValue('If-Match must be an ETag this API returned, like "v3"', field="If-Match")
    return int(match.group(1))


def to_out(row: Any) -> ContentOut:
    return ContentOut(
        id=row.id,
        type=row.type,
        title=row.title,
        description=row.description,
        slug=row.slug,
        status=row.status,
        tags=row.tags,
        metadata=row.meta if isinstance(row, ContentItem) else row.metadata,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
        publish_at=row.publish_at,
        published_at=row.published_at,
        created_by=row.created_by,
        updated_by=row.updated_by,
    )


async def get(db: Database, item_id: uuid.UUID, *, may_read_unpublished: bool) -> ContentOut:
    """The item; 404 for an unpublished one unless `may_read_unpublished` (the same answer as for an
    item that does not exist, so its existence does not leak)."""
    row = await db.first(_GET, {"item_id": item_id})
    if row is None or not content.is_visible(row.status, may_read_unpublished=may_read_unpublished):
        raise NotFound(f"content {item_id} does not exist")
    return to_out(row)


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def list_page(
    db: Database,
    *,
    status: str | None,
    type_: str | None,
    tag: str | None,
    language: str | None,
    q: str | None,
    limit: int,
    cursor: str | None,
    may_read_unpublished: bool,
    published_after: datetime | None = None,
) -> tuple[list[ContentOut], str | None]:
    """Newest first. Ids are UUIDv7, so ordering by id is ordering by creation time, and the last
    id of a page is an exact, stable cursor. Without `may_read_unpublished` only published items
    are listed (a filter on another status then finds nothing)."""
    query = sa.select(*_COLUMNS).where(ContentItem.deleted_at.is_(None))
    if not may_read_unpublished:
        query = query.where(ContentItem.status == content.PUBLISHED)
    if status:
        query = query.where(ContentItem.status == status)
    if type_:
        query = query.where(ContentItem.type == type_)
    if tag:
        query = query.where(content.tag_filter(tag))
    if language:
        query = query.where(ContentItem.title[language].as_string().is_not(None))
    if published_after:
        query = query.where(ContentItem.published_at >= published_after)
    if q:
        words = tokens(q)
        if not words:
            raise InvalidValue("q has no searchable words", field="q")
        for word in words[:8]:
            query = query.where(ContentItem.search_text.like(f"% {_like_escape(word)}%", escape="\\"))
    if cursor:
        query = query.where(ContentItem.id < decode_cursor(cursor))
    rows = await db.all(query.order_by(ContentItem.id.desc()).limit(limit + 1))
    items = [to_out(r) for r in rows[:limit]]
    next_cursor = encode_cursor(items[-1].id) if len(rows) > limit else None
    return items, next_cursor
