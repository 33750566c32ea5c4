"""Accepting an upload: bytes are streamed to a staging file (hashing as they come), checked by
content, then moved into the object store under a key built from the new media id."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from pathlib import Path

import anyio
from sqlalchemy.orm import Session

from domain.ids import new_id
from domain.media import inspect
from domain.media.uploads import original_key, record_upload
from resources.object_store import ObjectStore
from serving.db import Database


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
        validated = await anyio.to_thread.run_sync(inspect.validate, staged)
        media_id = new_id()
        key = original_key(media_id)

        def put() -> None:
            with staged.open("rb") as source:
                store.put_file(key, source, content_type=validated.mime or "application/octet-stream")

        await anyio.to_thread.run_sync(put)
        size = staged.stat().st_size

        def record(session: Session):
            return record_upload(
                session,
                media_id=media_id,
                kind=validated.kind,
                mime=validated.mime or "",
                size=size,
                sha256=sha256,
                filename=inspect.sanitize_filename(filename),
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
    finally:
        staged.unlink(missing_ok=True)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()
