"""Recording an accepted upload: the media asset, its processing job and the event, in one
transaction; and the tus 1.0 bookkeeping that needs no HTTP."""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from domain.content import check_may_attach
from domain.errors import DomainError, InvalidValue, NotFound
from domain.ids import new_id
from domain.media import events
from domain.outbox import record_event
from domain.schema import ContentItem, MediaAsset, MediaJob, TusUpload, utcnow
from domain.settings import Settings

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,creation-with-upload,expiration,checksum,termination"
TUS_EXPIRY = timedelta(hours=24)
MAX_UPLOAD_BYTES = 5 * 1024**3
# Each PATCH carries at most this much: below common proxy body caps (nginx's is often 100 MB).
MAX_CHUNK_BYTES = 64 * 1024**2
# tus bytes reach the object store as multipart-upload parts of this size (S3 wants >= 5 MiB but the
# last; 5 GiB is 640 parts, under S3's 10,000). The API host keeps only the unfilled tail of a part.
PART_BYTES = 8 * 1024**2
LANGUAGES = ("ar", "en")


def original_key(media_id: uuid.UUID) -> str:
    """Storage keys come from ids, never from client filenames."""
    return f"media/{media_id}/original"


def tus_staging_key(upload_id: uuid.UUID) -> str:
    """Where a tus upload's parts are assembled in the object store before it is checked."""
    return f"uploads/tus/{upload_id}"


def check_length(length: int) -> None:
    if length <= 0 or length > MAX_UPLOAD_BYTES:
        raise InvalidValue(
            f"Upload-Length must be between 1 and {MAX_UPLOAD_BYTES} (an empty file is not media)",
            field="Upload-Length",
        )


def stored_bytes(upload: TusUpload) -> int:
    """How many of the upload's bytes are parts in the object store; the rest of `offset` is the tail
    the API host keeps until it fills a part."""
    return sum(part["size"] for part in upload.parts or [])


def parse_upload_metadata(header: str | None) -> dict[str, str]:
    """tus `Upload-Metadata`: comma-separated `key base64value` pairs (value optional)."""
    result: dict[str, str] = {}
    if not header:
        return result
    for pair in header.split(","):
        parts = pair.strip().split(" ")
        if not parts[0] or len(parts) > 2:
            raise InvalidValue(
                "Upload-Metadata must be `key base64value` pairs separated by commas", field="Upload-Metadata"
            )
        try:
            value = base64.b64decode(parts[1], validate=True).decode() if len(parts) == 2 else ""
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise InvalidValue(
                f"Upload-Metadata value of {parts[0]!r} is not base64 UTF-8", field="Upload-Metadata"
            ) from exc
        result[parts[0]] = value
    return result


def parse_checksum(header: str | None) -> bytes | None:
    """tus checksum extension: `Upload-Checksum: sha256 <base64 digest>`."""
    if header is None:
        return None
    algorithm, _, digest = header.strip().partition(" ")
    if algorithm.lower() != "sha256":
        raise InvalidValue("Upload-Checksum supports sha256 only", field="Upload-Checksum")
    try:
        raw = base64.b64decode(digest, validate=True)
    except binascii.Error as exc:
        raise InvalidValue("Upload-Checksum digest is not base64", field="Upload-Checksum") from exc
    if len(raw) != 32:
        raise InvalidValue("Upload-Checksum digest is not a sha256 digest", field="Upload-Checksum")
    return raw


def check_link(
    session: Session, content_item_id: str | None, language: str | None, *, actor: uuid.UUID | None = None
) -> tuple[uuid.UUID | None, str | None]:
    """The content item and language an upload joins. Joining live (published or scheduled) content
    needs `content:publish` (`domain.content.check_may_attach`): a dub changes what the public hears."""
    item_id = None
    if content_item_id:
        try:
            item_id = uuid.UUID(content_item_id)
        except ValueError as exc:
            raise InvalidValue("content_item_id is not a UUID", field="content_item_id") from exc
        if (
            session.scalar(
                sa.select(ContentItem.id).where(ContentItem.id == item_id, ContentItem.deleted_at.is_(None))
            )
            is None
        ):
            raise NotFound(f"content {item_id} does not exist")
        check_may_attach(session, item_id, actor)
    if language is not None and language not in LANGUAGES:
        raise InvalidValue("language must be ar or en", field="language")
    return item_id, language or None


def new_tus_upload(
    session: Session,
    *,
    length: int,
    metadata: dict[str, str],
    owner_id: uuid.UUID | None,
    staging_key: str,
    upload_id: uuid.UUID | None = None,
    multipart_upload_id: str | None = None,
    now: datetime | None = None,
) -> TusUpload:
    check_length(length)
    check_link(session, metadata.get("content_item_id"), metadata.get("language"), actor=owner_id)
    now = now or utcnow()
    upload = TusUpload(
        id=upload_id or new_id(),
        length=length,
        offset=0,
        meta=metadata,
        staging_key=staging_key,
        multipart_upload_id=multipart_upload_id,
        parts=[],
        owner_id=owner_id,
        created_at=now,
        expires_at=now + TUS_EXPIRY,
    )
    session.add(upload)
    session.flush()
    return upload


def record_upload(
    session: Session,
    *,
    media_id: uuid.UUID,
    kind: str,
    mime: str,
    size: int,
    sha256: str,
    filename: str,
    metadata: dict[str, Any],
    content_item_id: str | None,
    language: str | None,
    uploaded_by: uuid.UUID | None,
) -> tuple[MediaAsset, MediaJob]:
    item_id, language = check_link(session, content_item_id, language, actor=uploaded_by)
    now = utcnow()
    asset = MediaAsset(
        id=media_id,
        content_item_id=item_id,
        original_filename=filename,
        content_type=kind,
        mime_type=mime,
        file_size=size,
        sha256=sha256,
        s3_key=original_key(media_id),
        upload_status="pending",
        language=language,
        meta=metadata,
        uploaded_by=uploaded_by,
        created_at=now,
        updated_at=now,
    )
    session.add(asset)
    session.flush()
    job = MediaJob(
        media_asset_id=media_id,
        kind="process",
        status="pending",
        stage="queued",
        created_at=now,
        updated_at=now,
    )
    session.add(job)
    session.flush()
    record_event(
        session,
        events.MEDIA_UPLOADED,
        "media",
        media_id,
        {
            "id": str(media_id),
            "kind": kind,
            "size": size,
            "content_item_id": str(item_id) if item_id else None,
            "job_id": str(job.id),
            "language": language,
        },
    )
    return asset, job


def queue_position(session: Session, job: MediaJob) -> int | None:
    """How many jobs wait ahead of this one (None once it has started)."""
    if job.status != "pending":
        return None
    return (
        session.scalar(
            sa.select(sa.func.count())
            .select_from(MediaJob)
            .where(MediaJob.status == "pending", MediaJob.created_at < job.created_at)
        )
        or 0
    )


def expired_uploads(session: Session, now: datetime | None = None, limit: int = 1000) -> list[TusUpload]:
    now = now or utcnow()
    return list(
        session.scalars(
            sa.select(TusUpload)
            .where(TusUpload.completed_at.is_(None), TusUpload.expires_at < now)
            .limit(limit)
        )
    )


# --- limits per user: uploads in progress, bytes a day, free disk -------------------------------------


class TooManyUploads(DomainError):
    status = 429
    title = "Too many uploads in progress"


class UploadQuotaExceeded(DomainError):
    status = 413
    title = "Daily upload quota exceeded"


class InsufficientStorage(DomainError):
    status = 507
    title = "Insufficient storage"


@dataclass(frozen=True)
class UploadLimits:
    """Per user: uploads in progress at once and bytes per UTC day; for the host: the free space the
    uploads directory's file system keeps (settings `THMNAYAH_UPLOAD_*`)."""

    max_concurrent: int = 4
    daily_bytes: int = 50 * 1024**3
    min_free_bytes: int = 1024**3

    @classmethod
    def from_settings(cls, settings: Settings) -> UploadLimits:
        return cls(
            max_concurrent=settings.upload_max_concurrent,
            daily_bytes=settings.upload_daily_quota_mb * 1024**2,
            min_free_bytes=settings.upload_min_free_mb * 1024**2,
        )


def _mib(n: int) -> str:
    return f"{n / 1024**2:.1f} MiB"


def check_concurrency(in_progress: int, limits: UploadLimits) -> None:
    """Refuse a new upload (429) when the user already has `max_concurrent` in progress."""
    if in_progress >= limits.max_concurrent:
        raise TooManyUploads(
            f"you have {in_progress} uploads in progress, the most at once is {limits.max_concurrent}; "
            "finish one, or terminate an unfinished tus upload (DELETE its URL), then try again"
        )


def check_daily_quota(used: int, adding: int, limits: UploadLimits, *, field: str | None = None) -> None:
    """Refuse (413) when `adding` more bytes would pass the daily quota, `used` being the bytes the
    user sent today (and, at a tus creation, what their unfinished uploads still have to send)."""
    if used + adding > limits.daily_bytes:
        left = max(0, limits.daily_bytes - used)
        raise UploadQuotaExceeded(
            f"this upload would pass your daily upload quota of {_mib(limits.daily_bytes)} "
            f"({_mib(left)} left today, UTC); try again tomorrow",
            field=field,
        )


def check_free_space(free: int, adding: int, limits: UploadLimits) -> None:
    """Refuse (507) when taking `adding` more bytes would leave less than the margin free."""
    if free - adding < limits.min_free_bytes:
        raise InsufficientStorage(
            "the server is short of disk space for uploads; try again later (operators: free space "
            "under <data_dir>/uploads or lower THMNAYAH_UPLOAD_MIN_FREE_MB)"
        )


def day_key(now: datetime | None = None) -> str:
    """The UTC day a byte counts towards."""
    return (now or utcnow()).strftime("%Y-%m-%d")


def open_tus_uploads(session: Session, owner_id: uuid.UUID, now: datetime | None = None) -> tuple[int, int]:
    """The user's unfinished, unexpired tus uploads: how many, and the bytes they still have to send."""
    now = now or utcnow()
    count, remaining = session.execute(
        sa.select(
            sa.func.count(), sa.func.coalesce(sa.func.sum(TusUpload.length - TusUpload.offset), 0)
        ).where(TusUpload.owner_id == owner_id, TusUpload.completed_at.is_(None), TusUpload.expires_at > now)
    ).one()
    return int(count), int(remaining)
