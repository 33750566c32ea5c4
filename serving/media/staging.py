"""Accepting an upload: checked by content, put in the object store under a key built from the new
media id, recorded (asset + job + event). Two ways in:

- `accept`: a multipart body the API streamed to a staging file (hashing as it came);
- `accept_stored`: a completed tus upload, already assembled in the object store from its parts. It
  is checked where it lies (a few ranged reads, ffprobe on a URL of the object), hashed by streaming
  it once, then moved under the media key (a rename on disk, a server-side copy on S3)."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from pathlib import Path

import anyio
from sqlalchemy.orm import Session

from domain.errors import DomainError
from domain.ids import new_id
from domain.media.inspect import filenames, validation
from domain.media.inspect.source import Source
from domain.media.uploads import original_key, record_upload
from resources.object_store import ObjectStore
from serving.db import Database

HASH_BLOCK = 1024 * 1024


@dataclass
class Accepted:
    media_id: uuid.UUID
    job_id: uuid.UUID
    kind: str
    size: int


async def accept(
    db: Database,
    store: ObjectStore,
    staged: Path,
    *,
    sha256: str,
    filename: str,
    content_item_id: str | None,
    language: str | None,
    uploaded_by: uuid.UUID | None,
) -> Accepted:
    """Validate `staged` by content (413/415/422 on refusal), store it, record asset + job + event.
    The staging file is removed whatever happens."""
    try:
        validated = await anyio.to_thread.run_sync(validation.validate, staged)
        media_id = new_id()
        key = original_key(media_id)

        def put() -> None:
            with staged.open("rb") as source:
                store.put_file(key, source, content_type=validated.mime or "application/octet-stream")

        await anyio.to_thread.run_sync(put)
        return await _record(
            db,
            store,
            media_id,
            validated,
            size=staged.stat().st_size,
            sha256=sha256,
            filename=filename,
            content_item_id=content_item_id,
            language=language,
            uploaded_by=uploaded_by,
        )
    finally:
        staged.unlink(missing_ok=True)


async def accept_stored(
    db: Database,
    store: ObjectStore,
    staged_key: str,
    *,
    filename: str,
    content_item_id: str | None,
    language: str | None,
    uploaded_by: uuid.UUID | None,
) -> Accepted:
    """As `accept`, for bytes already in the object store under `staged_key`. Accepted, the staged
    object is moved under the media key; refused (413/415/422), it is deleted; after any other
    failure it stays, so that the caller may try again."""
    try:
        size = await anyio.to_thread.run_sync(store.size, staged_key)
        source = Source(
            size=size,
            open=lambda: store.open_seekable(staged_key),
            url=await anyio.to_thread.run_sync(store.read_url, staged_key),
        )
        validated = await anyio.to_thread.run_sync(validation.validate, source)
        sha256 = await anyio.to_thread.run_sync(_sha256_object, store, staged_key)
        media_id = new_id()
        key = original_key(media_id)
        await anyio.to_thread.run_sync(
            lambda: store.move(staged_key, key, content_type=validated.mime or "application/octet-stream")
        )
        return await _record(
            db,
            store,
            media_id,
            validated,
            size=size,
            sha256=sha256,
            filename=filename,
            content_item_id=content_item_id,
            language=language,
            uploaded_by=uploaded_by,
        )
    except DomainError:
        await anyio.to_thread.run_sync(store.delete, staged_key)
        raise


async def _record(
    db: Database,
    store: ObjectStore,
    media_id: uuid.UUID,
    validated: validation.Validated,
    *,
    size: int,
    sha256: str,
    filename: str,
    content_item_id: str | None,
    language: str | None,
    uploaded_by: uuid.UUID | None,
) -> Accepted:
    """Record the stored original; if that fails, the original is deleted again."""
    key = original_key(media_id)

    def record(session: Session):
        return record_upload(
            session,
            media_id=media_id,
            kind=validated.kind,
            mime=validated.mime or "",
            size=size,
            sha256=sha256,
            filename=filenames.sanitize_filename(filename),
            metadata=validated.summary(),
            content_item_id=content_item_id,
            language=language,
            uploaded_by=uploaded_by,
        )

    try:
        asset, job = await db.write(record)
    except Exception:
        await anyio.to_thread.run_sync(store.delete, key)
        raise
    return Accepted(asset.id, job.id, asset.content_type, size)


def _sha256_object(store: ObjectStore, key: str) -> str:
    digest = hashlib.sha256()
    with store.open(key) as stream:
        while block := stream.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()
