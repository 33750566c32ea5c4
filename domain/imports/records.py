"""Imported records -> content items: dedupe, change detection and the conflict policy.

Each external item is one `ImportedContent` row per source and dedupe key (e.g. `youtube:<id>`),
so a re-run finds it instead of creating it again. Its `content_hash` (of the mapped record) tells
an unchanged item from an updated one; `transformed_data` is what the content item was last written
from, which is how a hand edit is recognised: a field whose current value differs from it was
changed by an editor.

The outcome of one record is `new`, `updated`, `unchanged`, `skipped` or `failed`:
- skip: a changed record leaves its content item alone (`skipped`);
- overwrite: every mapped field is written, hand edits included;
- merge: field by field (`title.en`, `description.ar`, `tags`, `type`, `metadata.<key>`), the
  source's value is written unless an editor changed that field by hand and did not unlock it.
Content items are made and changed through `domain.content`, so the workflow, version checks and
events (`content.created`, `content.updated`, `content.published`) are the usual ones. A content
item an editor deleted is never brought back (`skipped`).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from domain import content
from domain.errors import DomainError, IllegalTransition, InvalidValue, NotFound
from domain.ids import SYSTEM_ACTOR
from domain.imports import jobs
from domain.schema import ContentItem, ImportedContent, ImportJob, ImportSource, utcnow

# The fields a mapped record may carry: those of a content item an import sets.
MAPPED_FIELDS = ("type", "title", "description", "tags", "metadata", "slug")
# Keys of a content item's metadata the platform owns (its origin, its processed media): never mapped.
RESERVED_METADATA = ("import", "media")
KEY_MAX = 500
STATUS_OF = {"new": "success", "updated": "success", "unchanged": "success", "skipped": "skipped"}


@dataclass
class Record:
    """One item as fetched (`original`) and as mapped onto content fields (`transformed`)."""

    dedupe_key: str
    external_id: str
    original: dict[str, Any]
    transformed: dict[str, Any]
    url: str | None = None


@dataclass
class Outcome:
    outcome: str  # new | updated | unchanged | skipped | failed
    imported: ImportedContent | None
    content_id: uuid.UUID | None = None
    kept: list[str] = field(default_factory=list)  # fields whose hand edit won under merge
    error: str | None = None


def content_hash(transformed: dict[str, Any]) -> str:
    """sha256 of the mapped record in a canonical JSON form (keys sorted)."""
    text = json.dumps(transformed, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _check(record: Record) -> None:
    for name in ("dedupe_key", "external_id"):
        value = getattr(record, name)
        if not isinstance(value, str) or not value.strip() or len(value) > KEY_MAX:
            raise InvalidValue(f"{name} must be 1-{KEY_MAX} characters", field=name)
    if not isinstance(record.transformed, dict):
        raise InvalidValue("the mapped record must be an object", field="transformed")
    unknown = sorted(set(record.transformed) - set(MAPPED_FIELDS))
    if unknown:
        raise InvalidValue(
            f"mapped field {unknown[0]!r} is not a content field ({', '.join(MAPPED_FIELDS)})",
            field=f"transformed.{unknown[0]}",
        )
    metadata = record.transformed.get("metadata", {})
    if not isinstance(metadata, dict):
        raise InvalidValue("metadata must be an object", field="transformed.metadata")
    for key in RESERVED_METADATA:
        if key in metadata:
            raise InvalidValue(
                f"metadata.{key} is the platform's, not mappable", field=f"transformed.metadata.{key}"
            )


def _flatten(values: dict[str, Any]) -> dict[str, Any]:
    """Content fields as merge compares them: one per language of title and description, one per
    metadata key, and type and tags whole."""
    flat: dict[str, Any] = {}
    for name in ("type", "tags"):
        if name in values:
            flat[name] = values[name]
    for name in ("title", "description"):
        for lang, text in (values.get(name) or {}).items():
            flat[f"{name}.{lang}"] = text
    for key, value in (values.get("metadata") or {}).items():
        if key not in RESERVED_METADATA:
            flat[f"metadata.{key}"] = value
    return flat


def _current(item: ContentItem) -> dict[str, Any]:
    return _flatten(
        {
            "type": item.type,
            "tags": item.tags,
            "title": item.title,
            "description": item.description,
            "metadata": item.meta,
        }
    )


def _changes(item: ContentItem, fields: dict[str, Any]) -> dict[str, Any]:
    """`update_content` changes that set the flattened `fields` on `item`."""
    changes: dict[str, Any] = {}
    for name, value in fields.items():
        group, _, key = name.partition(".")
        if not key:
            changes[group] = value
        elif group == "metadata":
            changes.setdefault("metadata", dict(item.meta or {}))[key] = value
        else:
            changes.setdefault(group, {})[key] = value
    return changes


def find(session: Session, source_id: uuid.UUID, dedupe_key: str) -> ImportedContent | None:
    return session.scalar(
        sa.select(ImportedContent).where(
            ImportedContent.source_id == source_id, ImportedContent.dedupe_key == dedupe_key
        )
    )


def _origin_metadata(source: ImportSource, record: Record) -> dict[str, Any]:
    return {
        "source_id": str(source.id),
        "source_type": source.source_type,
        "external_id": record.external_id,
        "dedupe_key": record.dedupe_key,
        "url": record.url,
    }


def _create(session: Session, source: ImportSource, record: Record, actor: uuid.UUID) -> ContentItem:
    data = record.transformed
    metadata = {**(data.get("metadata") or {}), "import": _origin_metadata(source, record)}
    new = content.NewContent(
        type=data.get("type", ""),
        title=data.get("title") or {},
        description=data.get("description") or {},
        slug=data.get("slug"),
        tags=data.get("tags") or [],
        metadata=metadata,
    )
    item = content.create_content(session, new, actor=actor)
    if source.publish_policy == "published":
        content.update_content(
            session, item.id, {"status": "in_review"}, expected_version=item.version, actor=actor
        )
        item = content.publish(session, item.id, actor=actor)
    return item


def _apply(
    session: Session,
    source: ImportSource,
    imported: ImportedContent,
    item: ContentItem,
    record: Record,
    actor: uuid.UUID,
) -> tuple[str, list[str]]:
    """Write the changed record onto its content item under the source's conflict policy."""
    if source.conflict_policy == "skip":
        return "skipped", []
    new, current = _flatten(record.transformed), _current(item)
    last = _flatten(imported.transformed_data or {})
    unlocked = set(imported.unlocked_fields or [])
    writes: dict[str, Any] = {}
    kept: list[str] = []
    for name, value in new.items():
        if current.get(name) == value:
            continue
        edited = current.get(name) != last.get(name)
        if source.conflict_policy == "merge" and edited and name not in unlocked:
            if value != last.get(name):  # a conflict only where the source changed the field too
                kept.append(name)
            continue
        writes[name] = value
    if writes:
        content.update_content(
            session, item.id, _changes(item, writes), expected_version=item.version, actor=actor
        )
    if source.conflict_policy == "merge" and kept and not writes:
        return "skipped", kept
    return "updated", kept


def upsert(
    session: Session, job: ImportJob, source: ImportSource, record: Record, *, actor: uuid.UUID | None = None
) -> Outcome:
    """Import one record in the job's run and count its outcome on the job. A record the content
    rules refuse (no title, an unknown type) is a failed item, recorded with its reason; it never
    aborts the run."""
    if job.status != "running" or job.source_id != source.id:
        raise IllegalTransition(f"import job {job.id} is not a running job of source {source.id}")
    actor = actor or job.created_by or SYSTEM_ACTOR
    try:
        with session.begin_nested():
            outcome = _upsert(session, job, source, record, actor)
    except DomainError as exc:
        return record_failure(session, job, source, record=record, error=exc.detail, kind="invalid")
    jobs.record_item(session, job, outcome.outcome, external_id=record.external_id)
    return outcome


def _upsert(
    session: Session, job: ImportJob, source: ImportSource, record: Record, actor: uuid.UUID
) -> Outcome:
    _check(record)
    digest = content_hash(record.transformed)
    imported = find(session, source.id, record.dedupe_key)
    item = session.get(ContentItem, imported.content_id) if imported and imported.content_id else None
    now = utcnow()
    if imported is not None and item is not None and item.deleted_at is not None:
        outcome, kept = "skipped", []  # an editor deleted it: not brought back
    elif item is None:
        item = _create(session, source, record, actor)
        outcome, kept = "new", []
    elif imported.content_hash == digest:
        outcome, kept = "unchanged", []
    else:
        outcome, kept = _apply(session, source, imported, item, record, actor)
    if imported is None:
        imported = ImportedContent(source_id=source.id, dedupe_key=record.dedupe_key, created_at=now)
        session.add(imported)
    imported.import_job_id = job.id
    imported.external_id = record.external_id
    imported.external_url = record.url
    imported.content_id = item.id
    imported.import_status = STATUS_OF[outcome]
    imported.error_message = None
    written = outcome in ("new", "updated") or (outcome == "skipped" and kept)
    if written:
        imported.original_data, imported.transformed_data = record.original, record.transformed
        imported.content_hash, imported.imported_at = digest, now
    session.flush()
    return Outcome(outcome, imported, item.id, kept)


def record_failure(
    session: Session,
    job: ImportJob,
    source: ImportSource,
    *,
    record: Record | None = None,
    external_id: str = "",
    error: str,
    kind: str = "invalid",
) -> Outcome:
    """A failed item: counted on the job with its reason, and, when it has a dedupe key, marked
    failed on its imported row (what it imported before, and its content item, stay)."""
    external_id = record.external_id if record is not None else external_id
    jobs.record_item(session, job, "failed", external_id=str(external_id or ""), error=error, kind=kind)
    key = record.dedupe_key if record is not None else None
    if not isinstance(key, str) or not key.strip() or len(key) > KEY_MAX:
        return Outcome("failed", None, error=error)
    imported = find(session, source.id, key)
    if imported is None:
        imported = ImportedContent(
            source_id=source.id,
            dedupe_key=key,
            external_id=str(external_id)[:KEY_MAX],
            external_url=record.url,
            original_data=record.original if isinstance(record.original, dict) else {},
            transformed_data={},
        )
        session.add(imported)
    imported.import_job_id, imported.import_status, imported.error_message = job.id, "failed", error
    session.flush()
    return Outcome("failed", imported, imported.content_id, error=error)


def unlock(session: Session, content_id: uuid.UUID, fields: list[str]) -> ImportedContent:
    """Give fields an editor changed by hand back to the source: the next merge writes them."""
    imported = origin(session, content_id)
    if imported is None:
        raise NotFound(f"content {content_id} was not imported")
    imported.unlocked_fields = sorted({*(imported.unlocked_fields or []), *fields})
    return imported


def origin(session: Session, content_id: uuid.UUID) -> ImportedContent | None:
    """Where a content item came from: its imported row (source, external id and URL), if any."""
    return session.scalar(sa.select(ImportedContent).where(ImportedContent.content_id == content_id).limit(1))


def by_external_id(
    session: Session, external_id: str, *, source_id: uuid.UUID | None = None
) -> list[ImportedContent]:
    """The imported rows of an external id (one per source that imports it)."""
    query = sa.select(ImportedContent).where(ImportedContent.external_id == external_id)
    if source_id is not None:
        query = query.where(ImportedContent.source_id == source_id)
    return list(session.scalars(query.order_by(ImportedContent.created_at)))
