"""CMS core: content items, their editorial workflow and the events each change emits.

Functions take a synchronous SQLAlchemy `Session`; the async serving layer calls them through
`AsyncSession.run_sync`, Dagster jobs call them directly, so one implementation serves both.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from domain.auth import audit
from domain.auth.rbac import CONTENT_PUBLISH, effective_permissions
from domain.errors import Conflict, Forbidden, IllegalTransition, InvalidValue, NotFound, PreconditionFailed
from domain.ids import SYSTEM_ACTOR
from domain.outbox import record_event
from domain.schema import CONTENT_STATUSES, CONTENT_TYPES, ContentItem, MediaAsset, utcnow
from domain.text import normalize, search_document

# The outbox event types of content changes (the analytics refresh and the notification rules read them).
CONTENT_CREATED = "content.created"
CONTENT_UPDATED = "content.updated"
CONTENT_PUBLISHED = "content.published"
CONTENT_SCHEDULED = "content.scheduled"
CONTENT_DELETED = "content.deleted"
EVENT_TYPES = (CONTENT_CREATED, CONTENT_UPDATED, CONTENT_PUBLISHED, CONTENT_SCHEDULED, CONTENT_DELETED)

LANGUAGES = ("ar", "en")
TITLE_MAX = 300
DESCRIPTION_MAX = 5000
SLUG_MAX = 200
TAG_MAX = 64
TAGS_MAX = 50

# The editorial workflow. Publishing and scheduling go through their own operations because they
# set timestamps; everything else may be requested as a plain status change.
TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"in_review", "archived"}),
    "in_review": frozenset({"draft", "scheduled", "published", "archived"}),
    "scheduled": frozenset({"draft", "in_review", "published", "archived"}),
    "published": frozenset({"archived"}),
    "archived": frozenset({"draft"}),
}
_SLUG = re.compile(r"^[^\W_]+(?:-[^\W_]+)*$", re.UNICODE)
_SLUG_SEPARATORS = re.compile(r"[\W_]+", re.UNICODE)
_TAG = re.compile(r"^[^|%_\\]{1,64}$")

# Fields a client may set through create/update; everything else is system-managed.
EDITABLE = ("type", "title", "description", "slug", "tags", "metadata", "status")
# What `content:read` covers; every other status needs `content:read_unpublished`.
PUBLISHED = "published"
# Live content: what the public sees or has been promised (embargoed until publish_at). Changing it,
# or attaching media to it, is a publishing decision: it needs `content:publish`, ownership or not.
LIVE = ("published", "scheduled")
NO_ORIGIN = audit.Origin()  # a change made by a job or a script, not an HTTP request


def check_transition(current: str, target: str) -> None:
    if target not in CONTENT_STATUSES:
        raise InvalidValue(f"unknown status {target!r}; one of {', '.join(CONTENT_STATUSES)}", field="status")
    if target not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "none"
        raise IllegalTransition(
            f"cannot move content from {current!r} to {target!r} (allowed: {allowed})", field="status"
        )


def slugify(text: str) -> str:
    # Underscores are word characters to `normalize` but not allowed in slugs (see `_SLUG`).
    words = _SLUG_SEPARATORS.split(normalize(text))
    return "-".join(w for w in words if w)[:SLUG_MAX].strip("-")


def _localized(value: Any, name: str, max_len: int, *, required: bool) -> dict[str, str]:
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise InvalidValue(f"{name} must be an object keyed by language (ar, en)", field=name)
    out: dict[str, str] = {}
    for lang, text in value.items():
        if lang not in LANGUAGES:
            raise InvalidValue(
                f"{name} has unsupported language {lang!r}; use ar or en", field=f"{name}.{lang}"
            )
        if text is None:
            continue
        if not isinstance(text, str):
            raise InvalidValue(f"{name}.{lang} must be a string", field=f"{name}.{lang}")
        text = text.strip()
        if len(text) > max_len:
            raise InvalidValue(f"{name}.{lang} is longer than {max_len} characters", field=f"{name}.{lang}")
        if text:
            out[lang] = text
    if required and not out:
        raise InvalidValue(f"{name} needs text in at least one language (ar or en)", field=name)
    return out


def _tags(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > TAGS_MAX:
        raise InvalidValue(f"tags must be a list of at most {TAGS_MAX} strings", field="tags")
    seen: dict[str, None] = {}
    for tag in value:
        if not isinstance(tag, str) or not _TAG.match(tag.strip()):
            raise InvalidValue(
                f"tag {tag!r} must be 1-{TAG_MAX} characters without | % _ or backslash", field="tags"
            )
        seen.setdefault(tag.strip().lower(), None)
    return list(seen)


def _slug(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > SLUG_MAX or not _SLUG.match(value):
        raise InvalidValue(
            f"slug must be 1-{SLUG_MAX} lowercase letters or digits in words joined by single hyphens",
            field="slug",
        )
    if value != value.lower():
        raise InvalidValue("slug must be lowercase", field="slug")
    return value


def tag_filter(tag: str) -> sa.ColumnElement[bool]:
    # autoescape: a `%` or `_` in a user-supplied tag must match itself, not act as a wildcard.
    return ContentItem.tag_index.contains(f"|{tag.strip().lower()}|", autoescape=True)


def _refresh_derived(item: ContentItem) -> None:
    item.tag_index = "|" + "|".join(item.tags) + "|" if item.tags else ""
    item.search_text = search_document(
        *(item.title or {}).values(),
        *(item.description or {}).values(),
        *item.tags,
        item.slug.replace("-", " "),
    )


def _slug_taken(session: Session, slug: str, except_id: uuid.UUID | None = None) -> bool:
    query = sa.select(ContentItem.id).where(ContentItem.slug == slug, ContentItem.deleted_at.is_(None))
    if except_id is not None:
        query = query.where(ContentItem.id != except_id)
    return session.scalar(query.limit(1)) is not None


def _free_slug(session: Session, base: str) -> str:
    """A derived slug made unique with a numeric suffix (`story`, `story-2`, `story-3`, ...)."""
    base = base[: SLUG_MAX - 6].rstrip("-")
    taken = set(
        session.scalars(
            sa.select(ContentItem.slug).where(
                ContentItem.deleted_at.is_(None),
                sa.or_(ContentItem.slug == base, ContentItem.slug.like(f"{base}-%")),
            )
        )
    )
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def event_payload(item: ContentItem, **extra: Any) -> dict[str, Any]:
    return {
        "id": str(item.id),
        "type": item.type,
        "slug": item.slug,
        "status": item.status,
        "title": item.title,
        "tags": item.tags,
        "version": item.version,
        "published_at": item.published_at.isoformat() if item.published_at else None,
        "publish_at": item.publish_at.isoformat() if item.publish_at else None,
        **extra,
    }


@dataclass
class NewContent:
    type: str
    title: dict[str, str]
    description: dict[str, str] = field(default_factory=dict)
    slug: str | None = None
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


def create_content(session: Session, new: NewContent, *, actor: uuid.UUID | None = None) -> ContentItem:
    if new.type not in CONTENT_TYPES:
        raise InvalidValue(f"type must be one of {', '.join(CONTENT_TYPES)}", field="type")
    title = _localized(new.title, "title", TITLE_MAX, required=True)
    description = _localized(new.description, "description", DESCRIPTION_MAX, required=False)
    slug = _slug(new.slug) if new.slug is not None else slugify(title.get("en") or title.get("ar", ""))
    if not slug:
        raise InvalidValue("cannot derive a slug from the title; give one", field="slug")
    if new.slug is None:
        slug = _free_slug(session, slug)
    elif _slug_taken(session, slug):
        raise Conflict(f"slug {slug!r} is already used by another content item", field="slug")
    if not isinstance(new.metadata, dict):
        raise InvalidValue("metadata must be an object", field="metadata")
    now = utcnow()
    item = ContentItem(
        type=new.type,
        title=title,
        description=description,
        slug=slug,
        status="draft",
        tags=_tags(new.tags),
        meta=new.metadata,
        created_by=actor,
        updated_by=actor,
        created_at=now,
        updated_at=now,
    )
    _refresh_derived(item)
    session.add(item)
    session.flush()
    record_event(session, CONTENT_CREATED, "content", item.id, event_payload(item, actor=_s(actor)), at=now)
    return item


def _s(value: object) -> str | None:
    return None if value is None else str(value)


def check_may_change(item: ContentItem, *, may_publish: bool) -> None:
    """Refuse a change to live content (published or scheduled) by someone who may not publish."""
    if item.status in LIVE and not may_publish:
        raise Forbidden(
            f"content {item.id} is {item.status}: changing it, archiving it or attaching media to it needs"
            f" the {CONTENT_PUBLISH!r} permission"
        )


def check_may_attach(session: Session, item_id: uuid.UUID, actor: uuid.UUID | None) -> None:
    """Media (a dub, a new video) joins live content only from someone holding `content:publish`.
    `actor` None is the platform itself (imports, the demo, jobs)."""
    if actor is None or actor == SYSTEM_ACTOR:
        return
    item = get_live(session, item_id)
    if item.status in LIVE:
        check_may_change(item, may_publish=CONTENT_PUBLISH in effective_permissions(session, actor)[1])


def is_visible(status: str, *, may_read_unpublished: bool) -> bool:
    return status == PUBLISHED or may_read_unpublished


def media_is_public(session: Session, media_id: uuid.UUID) -> bool:
    """Whether anyone with `content:read` may see a media and fetch it through a public link: it is
    not marked private and belongs to a published, not deleted, content item. Media of drafts, items
    in review, scheduled (embargoed) or archived items, and media attached to no item, are private."""
    row = session.execute(
        sa.select(MediaAsset.is_private, ContentItem.status)
        .select_from(MediaAsset)
        .join(ContentItem, ContentItem.id == MediaAsset.content_item_id)
        .where(MediaAsset.id == media_id, ContentItem.deleted_at.is_(None))
    ).first()
    return row is not None and not row.is_private and row.status == PUBLISHED


def _audit(
    session: Session,
    action: str,
    item: ContentItem,
    actor: uuid.UUID | None,
    origin: audit.Origin,
    **meta: Any,
) -> None:
    """A publication decision in the audit trail. The scheduler (the system actor) is no user row."""
    person = None if actor == SYSTEM_ACTOR else actor
    details = {"slug": item.slug, **meta}
    if actor == SYSTEM_ACTOR:
        details["actor"] = "system"
    audit.record(
        session,
        action,
        user_id=person,
        origin=origin,
        resource="content",
        resource_id=str(item.id),
        metadata=details,
    )


def get_live(session: Session, item_id: uuid.UUID, *, for_update: bool = False) -> ContentItem:
    query = sa.select(ContentItem).where(ContentItem.id == item_id, ContentItem.deleted_at.is_(None))
    if for_update:
        # populate_existing: an item already in this session's identity map is refreshed from the
        # locked row, so the version check below sees the current version, not the one read earlier.
        query = query.with_for_update().execution_options(populate_existing=True)
    item = session.scalar(query)
    if item is None:
        raise NotFound(f"content {item_id} does not exist")
    return item


def _flush(session: Session) -> None:
    """Flush; a concurrent writer that bumped the version first turns into PreconditionFailed."""
    try:
        session.flush()
    except StaleDataError as exc:
        raise PreconditionFailed(
            "content changed while you were changing it; fetch it again and reapply your change",
            field="If-Match",
        ) from exc


def _check_version(item: ContentItem, expected_version: int | None, *, required: bool) -> None:
    if expected_version is None:
        if required:
            raise PreconditionFailed(
                "send If-Match with the ETag you read; updates need it", field="If-Match"
            )
        return
    if expected_version != item.version:
        raise PreconditionFailed(
            f"content changed since you read it (your version {expected_version}, current {item.version});"
            " fetch it again and reapply your change",
            field="If-Match",
        )


def update_content(
    session: Session,
    item_id: uuid.UUID,
    changes: Mapping[str, Any],
    *,
    expected_version: int | None,
    actor: uuid.UUID | None = None,
    may_publish: bool = True,
    origin: audit.Origin = NO_ORIGIN,
) -> ContentItem:
    """Apply `changes`. `may_publish` False (an author) refuses changes to live content."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        name = sorted(unknown)[0]
        raise InvalidValue(f"field {name!r} cannot be changed", field=name)
    item = get_live(session, item_id, for_update=True)
    check_may_change(item, may_publish=may_publish)
    _check_version(item, expected_version, required=True)
    before_status = item.status
    if "type" in changes:
        if changes["type"] not in CONTENT_TYPES:
            raise InvalidValue(f"type must be one of {', '.join(CONTENT_TYPES)}", field="type")
        item.type = changes["type"]
    if "title" in changes:
        item.title = {**item.title, **_localized(changes["title"], "title", TITLE_MAX, required=False)}
        for lang, text in (changes["title"] or {}).items():
            if text is None:
                item.title.pop(lang, None)
        if not item.title:
            raise InvalidValue("title needs text in at least one language (ar or en)", field="title")
    if "description" in changes:
        merged = {
            **item.description,
            **_localized(changes["description"], "description", DESCRIPTION_MAX, required=False),
        }
        for lang, text in (changes["description"] or {}).items():
            if text is None:
                merged.pop(lang, None)
        item.description = merged
    if "slug" in changes:
        slug = _slug(changes["slug"])
        if slug != item.slug and _slug_taken(session, slug, except_id=item.id):
            raise Conflict(f"slug {slug!r} is already used by another content item", field="slug")
        item.slug = slug
    if "tags" in changes:
        item.tags = _tags(changes["tags"])
    if "metadata" in changes:
        if not isinstance(changes["metadata"], dict):
            raise InvalidValue("metadata must be an object", field="metadata")
        item.meta = changes["metadata"]
    if "status" in changes and changes["status"] != item.status:
        target = changes["status"]
        if target in ("published", "scheduled"):
            raise InvalidValue(
                f"use POST /api/v1/content/{{id}}/{'publish' if target == 'published' else 'schedule'}"
                f" to make content {target}",
                field="status",
            )
        check_transition(item.status, target)
        item.status = target
        if target != "scheduled":
            item.publish_at = None
    now = utcnow()
    item.updated_at = now
    item.updated_by = actor
    _refresh_derived(item)
    _flush(session)
    if item.status == "archived" and before_status != "archived":
        _audit(session, audit.CONTENT_ARCHIVED, item, actor, origin, previous_status=before_status)
    record_event(
        session,
        CONTENT_UPDATED,
        "content",
        item.id,
        event_payload(item, actor=_s(actor), changed=sorted(changes), previous_status=before_status),
        at=now,
    )
    return item


def publish(
    session: Session,
    item_id: uuid.UUID,
    *,
    expected_version: int | None = None,
    actor: uuid.UUID | None = None,
    now: datetime | None = None,
    origin: audit.Origin = NO_ORIGIN,
) -> ContentItem:
    item = get_live(session, item_id, for_update=True)
    _check_version(item, expected_version, required=False)
    check_transition(item.status, "published")
    return _publish(session, item, actor, now or utcnow(), origin)


def _publish(
    session: Session, item: ContentItem, actor: uuid.UUID | None, now: datetime, origin: audit.Origin
) -> ContentItem:
    scheduled_for = item.publish_at
    item.status = "published"
    item.published_at = now
    item.updated_at = now
    item.updated_by = actor
    _flush(session)
    record_event(
        session,
        CONTENT_PUBLISHED,
        "content",
        item.id,
        event_payload(
            item, actor=_s(actor), scheduled_for=scheduled_for.isoformat() if scheduled_for else None
        ),
        at=now,
    )
    scheduled = scheduled_for.isoformat() if scheduled_for else None
    _audit(session, audit.CONTENT_PUBLISHED, item, actor, origin, scheduled_for=scheduled)
    return item


def schedule(
    session: Session,
    item_id: uuid.UUID,
    publish_at: datetime,
    *,
    expected_version: int | None = None,
    actor: uuid.UUID | None = None,
    now: datetime | None = None,
    origin: audit.Origin = NO_ORIGIN,
) -> ContentItem:
    now = now or utcnow()
    if publish_at.tzinfo is None:
        raise InvalidValue("publish_at must carry a timezone (e.g. 2026-12-01T09:00:00Z)", field="publish_at")
    if publish_at <= now:
        raise InvalidValue("publish_at must be in the future; publish now instead", field="publish_at")
    item = get_live(session, item_id, for_update=True)
    _check_version(item, expected_version, required=False)
    if item.status != "scheduled":
        check_transition(item.status, "scheduled")
    item.status = "scheduled"
    item.publish_at = publish_at
    item.updated_at = now
    item.updated_by = actor
    _flush(session)
    record_event(session, CONTENT_SCHEDULED, "content", item.id, event_payload(item, actor=_s(actor)), at=now)
    _audit(session, audit.CONTENT_SCHEDULED, item, actor, origin, publish_at=publish_at.isoformat())
    return item


def soft_delete(
    session: Session,
    item_id: uuid.UUID,
    *,
    expected_version: int | None = None,
    actor: uuid.UUID | None = None,
    origin: audit.Origin = NO_ORIGIN,
) -> ContentItem:
    item = get_live(session, item_id, for_update=True)
    _check_version(item, expected_version, required=False)
    previous_status = item.status
    now = utcnow()
    item.deleted_at = now
    item.updated_at = now
    item.updated_by = actor
    _flush(session)
    record_event(session, CONTENT_DELETED, "content", item.id, event_payload(item, actor=_s(actor)), at=now)
    _audit(session, audit.CONTENT_DELETED, item, actor, origin, previous_status=previous_status)
    return item


def due_for_publication(session: Session, now: datetime, *, limit: int = 500) -> list[uuid.UUID]:
    query = (
        sa.select(ContentItem.id)
        .where(
            ContentItem.status == "scheduled",
            ContentItem.publish_at <= now,
            ContentItem.deleted_at.is_(None),
        )
        .order_by(ContentItem.publish_at, ContentItem.id)
        .limit(limit)
    )
    return list(session.scalars(query))


def publish_due(
    session: Session, now: datetime | None = None, *, limit: int = 500, actor: uuid.UUID = SYSTEM_ACTOR
) -> list[uuid.UUID]:
    """Publish every scheduled item whose `publish_at` has passed, as `actor` (the system: no person
    made this change). Safe to run twice at once: an item published meanwhile is no longer
    `scheduled` under the row lock and is skipped."""
    now = now or utcnow()
    published = []
    for item_id in due_for_publication(session, now, limit=limit):
        item = session.scalar(
            sa.select(ContentItem)
            .where(
                ContentItem.id == item_id, ContentItem.status == "scheduled", ContentItem.deleted_at.is_(None)
            )
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        )
        if item is not None:
            _publish(session, item, actor, now, NO_ORIGIN)
            published.append(item.id)
    return published
