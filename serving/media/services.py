"""The media API's work behind its handlers: the streamed multipart upload, the upload limits of the
deployment, a job's status as its viewer may see it, and a media's row and variants with their URLs
(private media only for those who may read unpublished content)."""

from __future__ import annotations

import hashlib
import uuid

import sqlalchemy as sa
from litestar import Request
from litestar.exceptions import ClientException, NotFoundException
from multipart import MultipartSegment, ParserError, PushMultipartParser
from sqlalchemy.orm import Session

from domain import content
from domain.auth.keys import Keyring
from domain.errors import InvalidValue
from domain.media import processing, uploads, urls
from domain.schema import MediaAsset, MediaVariant
from domain.settings import Settings
from resources.upload_staging import UploadStaging
from serving.auth.principal import Principal
from serving.db import Database
from serving.deployment import Backends
from serving.media.limits import HeadCheck, Meter, UploadGate
from serving.media.schemas import JobStatus, MediaOut, UploadAccepted, VariantOut, VariantsOut
from serving.media.staging import accept
from serving.permissions import CONTENT_UPDATE

# What a variant's bytes are served as, by its format.
MEDIA_TYPES = {
    "jpg": "image/jpeg",
    "webp": "image/webp",
    "mp4": "video/mp4",
    "m3u8": "application/vnd.apple.mpegurl",
    "mp3": "audio/mpeg",
    "m4a": "audio/mp4",
}


def accepted(result) -> UploadAccepted:
    """The 201 answer to a stored upload, pointing at its job's status."""
    return UploadAccepted(
        media_id=result.media_id,
        job_id=result.job_id,
        kind=result.kind,
        size=result.size,
        status_url=f"/api/v1/media/job/{result.job_id}/status",
    )


async def receive_multipart(
    request: Request[Principal, object, object],
    boundary: str,
    db: Database,
    backends: Backends,
    staging: UploadStaging,
    meter: Meter,
) -> UploadAccepted:
    """Stream the multipart body: the file to a staging file (its head sniffed first, every byte
    metered), the other fields (4 KB each) to memory; then check and store it (`accept`)."""
    staged = staging.path(uuid.uuid4())
    fields: dict[str, str] = {}
    filename, digest, size, seen_file = "", hashlib.sha256(), 0, False
    head = HeadCheck()  # the file's first 64 KB are sniffed before anything after them is written
    try:
        with staged.open("wb") as out, PushMultipartParser(boundary, max_segment_count=10) as parser:
            segment: MultipartSegment | None = None
            value = bytearray()
            async for chunk in request.stream():
                for part in parser.parse(chunk):
                    if isinstance(part, MultipartSegment):
                        if part.name == "file" and part.filename is not None and seen_file:
                            raise InvalidValue("send one `file` per upload", field="file")
                        segment, value = part, bytearray()
                    elif part and segment is not None:
                        if segment.name == "file" and segment.filename is not None:
                            await meter.add(len(part))  # 413 past the daily quota, 507 short of disk
                            digest.update(part)
                            size += len(part)
                            if size > uploads.MAX_UPLOAD_BYTES:
                                raise ClientException(status_code=413, detail="the file is larger than 5 GB")
                            out.write(head.feed(part))  # 415 once the head is not media
                        elif len(value) + len(part) > 4096:
                            raise InvalidValue(f"form field {segment.name!r} is too long", field=segment.name)
                        else:
                            value.extend(part)
                    elif part is None and segment is not None:
                        if segment.name == "file" and segment.filename is not None:
                            out.write(head.release(last=True))
                            filename, seen_file = segment.filename, True
                        else:
                            fields[segment.name] = value.decode("utf-8", "replace")
                        segment = None
    except ParserError as exc:
        staged.unlink(missing_ok=True)
        raise ClientException(detail=f"malformed multipart body: {exc}") from exc
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    if not seen_file:
        staged.unlink(missing_ok=True)
        raise InvalidValue("the form has no `file` field", field="file")
    result = await accept(
        db,
        backends.object_store,
        staged,
        sha256=digest.hexdigest(),
        filename=filename,
        content_item_id=fields.get("content_item_id") or None,
        language=fields.get("language") or None,
        uploaded_by=request.user.user_id,
    )
    return accepted(result)


def upload_gate(db: Database, backends: Backends, staging: UploadStaging, settings: Settings) -> UploadGate:
    """The upload limits of this deployment (`THMNAYAH_UPLOAD_*`), kept in the rate-limit store."""
    limits = uploads.UploadLimits.from_settings(settings)
    return UploadGate(backends.stores["rate_limit"], db, staging.root, limits)


def job_status(session: Session, job_id: uuid.UUID, viewer: Principal) -> JobStatus | None:
    """The job's status, or None when it does not exist or is not `viewer`'s to watch."""
    job = processing.visible_job(
        session, job_id, viewer.user_id, may_update_content=viewer.can(CONTENT_UPDATE)
    )
    if job is None:
        return None
    return JobStatus(
        job_id=job.id,
        media_id=job.media_asset_id,
        kind=job.kind,
        status=job.status,
        stage=job.stage,
        percent=job.percent,
        error=job.error,
        queue_position=uploads.queue_position(session, job),
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


def served_variant(session: Session, variant_id: uuid.UUID, *, private_link: bool) -> MediaVariant:
    """The variant a signed link names. A public link (not `private_link`) serves only while its
    media is public: it outlives its media's publication by nothing. NotFound otherwise."""
    variant = session.get(MediaVariant, variant_id)
    if variant is None or not (private_link or content.media_is_public(session, variant.media_asset_id)):
        raise NotFoundException(f"variant {variant_id} does not exist")
    return variant


def media(session: Session, media_id: uuid.UUID, *, may_read_unpublished: bool) -> MediaOut:
    """The media's row; NotFound (as for one that does not exist) when it belongs to an unpublished
    item (or to none) and the viewer may not read unpublished content."""
    asset = session.get(MediaAsset, media_id)
    if asset is None or not (may_read_unpublished or content.media_is_public(session, media_id)):
        raise NotFoundException(f"media {media_id} does not exist")
    return MediaOut(
        id=asset.id,
        content_type=asset.content_type,
        mime_type=asset.mime_type,
        original_filename=asset.original_filename,
        file_size=asset.file_size,
        sha256=asset.sha256,
        upload_status=asset.upload_status,
        language=asset.language,
        content_item_id=asset.content_item_id,
        metadata=asset.meta,
        created_at=asset.created_at,
    )


def variants(
    session: Session,
    media_id: uuid.UUID,
    *,
    may_read_unpublished: bool,
    cdn_base_url: str | None,
    keys: Keyring,
) -> VariantsOut:
    """Every variant of the media with its URL: on the CDN for public media, else signed and
    expiring. Private media is NotFound without `may_read_unpublished`."""
    asset = session.get(MediaAsset, media_id)
    public = asset is not None and content.media_is_public(session, media_id)
    if asset is None or not (public or may_read_unpublished):
        raise NotFoundException(f"media {media_id} does not exist")
    rows = session.scalars(
        sa.select(MediaVariant)
        .where(MediaVariant.media_asset_id == media_id)
        .order_by(MediaVariant.variant_type, MediaVariant.width, MediaVariant.format)
    ).all()
    return VariantsOut(
        media_id=media_id,
        upload_status=asset.upload_status,
        variants=[
            VariantOut(
                id=v.id,
                variant_type=v.variant_type,
                format=v.format,
                quality=v.quality,
                width=v.width,
                height=v.height,
                duration_s=v.duration_s,
                file_size=v.file_size,
                url=urls.variant_url(cdn_base_url, v.s3_key, keys, v.id, private=not public),
            )
            for v in rows
        ],
    )
