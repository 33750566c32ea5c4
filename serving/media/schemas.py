"""Response bodies of the media API (explicit structs, never ORM objects)."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec


class UploadAccepted(msgspec.Struct):
    media_id: uuid.UUID
    job_id: uuid.UUID
    kind: str
    size: int
    status_url: str


class JobStatus(msgspec.Struct):
    job_id: uuid.UUID
    media_id: uuid.UUID
    kind: str
    status: str
    stage: str
    percent: float
    error: str | None
    queue_position: int | None
    created_at: Any
    started_at: Any
    finished_at: Any


class MediaOut(msgspec.Struct):
    id: uuid.UUID
    content_type: str
    mime_type: str
    original_filename: str
    file_size: int
    sha256: str
    upload_status: str
    language: str | None
    content_item_id: uuid.UUID | None
    metadata: dict[str, Any]
    created_at: Any


class VariantOut(msgspec.Struct):
    id: uuid.UUID
    variant_type: str
    format: str
    quality: str
    width: int | None
    height: int | None
    duration_s: float | None
    file_size: int
    url: str


class VariantsOut(msgspec.Struct):
    media_id: uuid.UUID
    upload_status: str
    variants: list[VariantOut]
