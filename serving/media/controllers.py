"""`/api/v1/media`: multipart upload, resumable tus 1.0 uploads, job status, media details."""

from __future__ import annotations

import hashlib
import time
import uuid
from datetime import UTC
from email.utils import format_datetime
from typing import Annotated, Any

import anyio
import msgspec
import sqlalchemy as sa
from litestar import Controller, Request, Response, WebSocket, delete, get, head, patch, post, websocket
from litestar.di import NamedDependency
from litestar.exceptions import ClientException, NotFoundException, PermissionDeniedException
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Stream
from litestar.status_codes import HTTP_204_NO_CONTENT
from multipart import MultipartSegment, ParserError, PushMultipartParser
from sqlalchemy.orm import Session

from domain.errors import DomainError, InvalidValue
from domain.media import uploads, urls
from domain.schema import MediaAsset, MediaJob, MediaVariant, TusUpload, utcnow
from resources.upload_staging import UploadStaging
from serving.auth.principal import Principal
from serving.auth.security import AuthContext
from serving.db import Database
from serving.deployment import Backends
from serving.media.staging import accept
from serving.permissions import CONTENT_READ, MEDIA_UPLOAD, PUBLIC, requires

TUS_HEADERS = {"Tus-Resumable": uploads.TUS_VERSION}
JOB_POLL_SECONDS = 0.5  # the job row is written by Dagster run workers; the socket forwards its changes
OFFSET_STREAM = "application/offset+octet-stream"


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


class ChecksumMismatch(DomainError):
    status = 460  # tus checksum extension
    title = "Checksum mismatch"


def _accepted(result) -> UploadAccepted:
    return UploadAccepted(
        media_id=result.media_id,
        job_id=result.job_id,
        kind=result.kind,
        size=result.size,
        status_url=f"/api/v1/media/job/{result.job_id}/status",
    )


def _tus_required(request: Request) -> None:
    if request.headers.get("tus-resumable") != uploads.TUS_VERSION:
        raise ClientException(
            status_code=412,
            detail=f"send Tus-Resumable: {uploads.TUS_VERSION}",
            headers={"Tus-Version": uploads.TUS_VERSION},
        )


def _int_header(request: Request, name: str) -> int:
    raw = request.headers.get(name)
    if raw is None or not raw.isdigit():
        raise InvalidValue(f"{name} must be a non-negative integer", field=name)
    return int(raw)


class MediaController(Controller):
    path = "/api/v1/media"
    tags = ["media"]

    @post(
        "/upload",
        opt=requires(MEDIA_UPLOAD),
        operation_id="uploadMedia",
        status_code=201,
        request_max_body_size=None,
        summary="Upload a file (multipart field `file`; optional `content_item_id`, `language`), streamed",
    )
    async def upload(
        self,
        request: Request[Principal, object, object],
        db: NamedDependency[Database],
        backends: NamedDependency[Backends],
        staging: NamedDependency[UploadStaging],
    ) -> UploadAccepted:
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data") or "boundary=" not in content_type:
            raise ClientException(status_code=415, detail="send multipart/form-data with a `file` field")
        boundary = content_type.split("boundary=", 1)[1].split(";")[0].strip().strip('"')
        staged = staging.path(uuid.uuid4())
        fields: dict[str, str] = {}
        filename, digest, size, seen_file = "", hashlib.sha256(), 0, False
        try:
            with staged.open("wb") as out, PushMultipartParser(boundary, max_segment_count=10) as parser:
                segment: MultipartSegment | None = None
                value = bytearray()
                async for chunk in request.stream():
                    for part in parser.parse(chunk):
                        if isinstance(part, MultipartSegment):
                            segment, value = part, bytearray()
                        elif part and segment is not None:
                            if segment.name == "file" and segment.filename is not None:
                                out.write(part)
                                digest.update(part)
                                size += len(part)
                                if size > uploads.MAX_UPLOAD_BYTES:
                                    raise ClientException(
                                        status_code=413, detail="the file is larger than 5 GB"
                                    )
                            elif len(value) + len(part) > 4096:
                                raise InvalidValue(
                                    f"form field {segment.name!r} is too long", field=segment.name
                                )
                            else:
                                value.extend(part)
                        elif part is None and segment is not None:
                            if segment.name == "file" and segment.filename is not None:
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
        return _accepted(result)

    @get(
        "/job/{job_id:uuid}/status",
        opt=requires(MEDIA_UPLOAD),
        operation_id="mediaJobStatus",
        summary="Processing status of a media job: stage, percent, error, queue position",
    )
    async def job_status(self, job_id: FromPath[uuid.UUID], db: NamedDependency[Database]) -> JobStatus:
        def load(session: Session) -> JobStatus:
            job = session.get(MediaJob, job_id)
            if job is None:
                raise NotFoundException(f"job {job_id} does not exist")
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

        return await db.read(load)

    @websocket("/job/{job_id:uuid}/ws", opt=requires(MEDIA_UPLOAD))
    async def job_updates(
        self, socket: WebSocket, job_id: FromPath[uuid.UUID], db: NamedDependency[Database]
    ) -> None:
        """Pushes the job's status whenever it changes (stage, percent, queue position while waiting)
        until it completes or fails. Authenticated like every WebSocket (header or `?token=`)."""
        await socket.accept()
        last = None
        while True:
            current = await db.read(lambda s: _job_status(s, job_id))
            if current is None:
                await socket.send_json({"type": "error", "detail": f"job {job_id} does not exist"})
                await socket.close(code=4404)
                return
            if current != last:
                await socket.send_json({"type": "status", **msgspec.to_builtins(current)})
                last = current
            if current.status in ("completed", "failed"):
                await socket.close()
                return
            await anyio.sleep(JOB_POLL_SECONDS)

    @get(
        "/{media_id:uuid}/variants",
        opt=requires(CONTENT_READ),
        operation_id="mediaVariants",
        summary="Every processed variant with its URL (CDN for public media, else signed and expiring)",
    )
    async def variants(
        self, media_id: FromPath[uuid.UUID], db: NamedDependency[Database], auth: NamedDependency[AuthContext]
    ) -> VariantsOut:
        def load(session: Session) -> VariantsOut:
            asset = session.get(MediaAsset, media_id)
            if asset is None:
                raise NotFoundException(f"media {media_id} does not exist")
            rows = session.scalars(
                sa.select(MediaVariant)
                .where(MediaVariant.media_asset_id == media_id)
                .order_by(MediaVariant.variant_type, MediaVariant.width, MediaVariant.format)
            ).all()
            return VariantsOut(media_id=media_id, upload_status=asset.upload_status, variants=[
                VariantOut(id=v.id, variant_type=v.variant_type, format=v.format, quality=v.quality, width=v.width,
                           height=v.height, duration_s=v.duration_s, file_size=v.file_size,
                           url=urls.variant_url(auth.settings.cdn_base_url, v.s3_key, auth.secret, v.id,
                                                private=asset.is_private))
                for v in rows
            ])  # fmt: skip

        return await db.read(load)

    @get(
        "/variants/{variant_id:uuid}/file",
        opt=requires(PUBLIC),
        operation_id="mediaVariantFile",
        summary="The bytes of a variant, for a signed link from .../variants (no token needed)",
    )
    async def variant_file(
        self,
        variant_id: FromPath[uuid.UUID],
        expires: FromQuery[int],
        sig: Annotated[str, QueryParameter(max_length=64)],
        db: NamedDependency[Database],
        backends: NamedDependency[Backends],
        auth: NamedDependency[AuthContext],
    ) -> Stream:
        refused = urls.check(auth.secret, variant_id, expires, sig)
        if refused:
            raise PermissionDeniedException(refused)
        variant = await db.read(lambda s: s.get(MediaVariant, variant_id))
        if variant is None:
            raise NotFoundException(f"variant {variant_id} does not exist")
        stream = await anyio.to_thread.run_sync(backends.object_store.open, variant.s3_key)
        media_type = {"jpg": "image/jpeg", "webp": "image/webp", "mp4": "video/mp4", "m3u8": "application/vnd.apple.mpegurl",
                      "mp3": "audio/mpeg", "m4a": "audio/mp4"}.get(variant.format, "application/octet-stream")  # fmt: skip

        async def chunks():
            try:
                while block := await anyio.to_thread.run_sync(stream.read, 256 * 1024):
                    yield block
            finally:
                stream.close()

        return Stream(chunks(), media_type=media_type, headers={
            "Cache-Control": f"private, max-age={max(0, expires - int(time.time()))}",
            "Content-Length": str(variant.file_size)})  # fmt: skip

    @get("/{media_id:uuid}", opt=requires(CONTENT_READ), operation_id="getMedia", summary="A media asset")
    async def get_media(self, media_id: FromPath[uuid.UUID], db: NamedDependency[Database]) -> MediaOut:
        def load(session: Session) -> MediaOut:
            asset = session.get(MediaAsset, media_id)
            if asset is None:
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

        return await db.read(load)


class TusController(Controller):
    """tus 1.0 resumable uploads: core, creation, creation-with-upload, expiration, checksum
    (sha256) and termination. Each PATCH carries at most `Thmnayah-Max-Chunk-Size` bytes."""

    path = "/api/v1/media/tus"
    tags = ["media"]

    @staticmethod
    async def after_request(response: Response) -> Response:
        """tus discovery rides on Litestar's OPTIONS answer (which lists the allowed methods)."""
        if "Allow" in response.headers and response.status_code == HTTP_204_NO_CONTENT:
            response.headers.update(
                {
                    "Tus-Version": uploads.TUS_VERSION,
                    "Tus-Extension": uploads.TUS_EXTENSIONS,
                    "Tus-Max-Size": str(uploads.MAX_UPLOAD_BYTES),
                    "Tus-Checksum-Algorithm": "sha256",
                    "Thmnayah-Max-Chunk-Size": str(uploads.MAX_CHUNK_BYTES),
                }
            )
        response.headers.update(TUS_HEADERS)
        return response

    @post(
        "/",
        opt=requires(MEDIA_UPLOAD),
        operation_id="tusCreate",
        status_code=201,
        request_max_body_size=None,
        summary="Create an upload (Upload-Length, Upload-Metadata); may carry the first bytes",
    )
    async def create(
        self,
        request: Request[Principal, object, object],
        db: NamedDependency[Database],
        backends: NamedDependency[Backends],
        staging: NamedDependency[UploadStaging],
    ) -> Response[None]:
        _tus_required(request)
        length = _int_header(request, "upload-length")
        metadata = uploads.parse_upload_metadata(request.headers.get("upload-metadata"))
        upload_id = uuid.uuid4()
        staged = staging.path(upload_id)
        owner = request.user.user_id

        def create(session: Session) -> TusUpload:
            upload = uploads.new_tus_upload(
                session, length=length, metadata=metadata, owner_id=owner, staging_key=staged.name
            )
            return upload

        upload = await db.write(create)
        staging.path(upload.id).touch()
        headers = {
            **TUS_HEADERS,
            "Location": f"{self.path}/{upload.id}",
            "Upload-Expires": format_datetime(upload.expires_at.astimezone(UTC), usegmt=True),
        }
        offset = 0
        if request.headers.get("content-type") == OFFSET_STREAM:
            offset = await _append(request, db, backends, staging, upload.id, 0)
        return Response(None, status_code=201, headers={**headers, "Upload-Offset": str(offset)})

    @head(
        "/{upload_id:uuid}",
        opt=requires(MEDIA_UPLOAD),
        operation_id="tusHead",
        summary="Where an upload stands",
    )
    async def status(
        self,
        request: Request[Principal, object, object],
        upload_id: FromPath[uuid.UUID],
        db: NamedDependency[Database],
    ) -> Response[None]:
        _tus_required(request)
        upload = await db.read(lambda s: _owned(s, upload_id, request.user.user_id))
        return Response(
            None,
            status_code=200,
            headers={
                **TUS_HEADERS,
                "Upload-Offset": str(upload.offset),
                "Upload-Length": str(upload.length),
                "Cache-Control": "no-store",
                "Upload-Expires": format_datetime(upload.expires_at.astimezone(UTC), usegmt=True),
            },
        )

    @patch(
        "/{upload_id:uuid}",
        opt=requires(MEDIA_UPLOAD),
        operation_id="tusPatch",
        status_code=204,
        request_max_body_size=None,
        summary="Append bytes at Upload-Offset (optionally with Upload-Checksum)",
    )
    async def append(
        self,
        request: Request[Principal, object, object],
        upload_id: FromPath[uuid.UUID],
        db: NamedDependency[Database],
        backends: NamedDependency[Backends],
        staging: NamedDependency[UploadStaging],
    ) -> Response[None]:
        _tus_required(request)
        if request.headers.get("content-type") != OFFSET_STREAM:
            raise ClientException(status_code=415, detail=f"PATCH bodies must be {OFFSET_STREAM}")
        offset = _int_header(request, "upload-offset")
        new_offset = await _append(request, db, backends, staging, upload_id, offset)
        headers = {**TUS_HEADERS, "Upload-Offset": str(new_offset)}
        done = await db.read(lambda s: s.get(TusUpload, upload_id))
        if done is not None and done.media_asset_id is not None:
            headers["Thmnayah-Media-Id"] = str(done.media_asset_id)
        return Response(None, status_code=204, headers=headers)

    @delete(
        "/{upload_id:uuid}",
        opt=requires(MEDIA_UPLOAD),
        operation_id="tusTerminate",
        summary="Abandon an upload and delete its bytes",
    )
    async def terminate(
        self,
        request: Request[Principal, object, object],
        upload_id: FromPath[uuid.UUID],
        db: NamedDependency[Database],
        staging: NamedDependency[UploadStaging],
    ) -> Response[None]:
        _tus_required(request)
        owner = request.user.user_id

        def remove(session: Session) -> None:
            upload = _owned(session, upload_id, owner)
            if upload.completed_at is not None:
                raise ClientException(
                    status_code=409, detail="the upload is complete; delete the media instead"
                )
            session.delete(upload)

        await db.write(remove)
        staging.path(upload_id).unlink(missing_ok=True)
        return Response(None, status_code=204, headers=TUS_HEADERS)


def _job_status(session: Session, job_id: uuid.UUID) -> JobStatus | None:
    job = session.get(MediaJob, job_id)
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


def _owned(session: Session, upload_id: uuid.UUID, owner: uuid.UUID) -> TusUpload:
    upload = session.get(TusUpload, upload_id)
    if upload is None or upload.owner_id != owner:
        raise NotFoundException(f"upload {upload_id} does not exist")
    return upload


async def _append(
    request: Request,
    db: Database,
    backends: Backends,
    staging: UploadStaging,
    upload_id: uuid.UUID,
    offset: int,
) -> int:
    """Write the body at `offset`; verify the chunk checksum; finish the upload when complete."""
    owner = request.user.user_id
    upload = await db.read(lambda s: _owned(s, upload_id, owner))
    if upload.completed_at is not None:
        raise ClientException(status_code=409, detail="the upload is already complete")
    if upload.expires_at <= utcnow():
        raise ClientException(status_code=410, detail="the upload expired; start a new one")
    if offset != upload.offset:
        raise ClientException(
            status_code=409,
            detail=f"Upload-Offset is {upload.offset}, not {offset}",
            headers={"Upload-Offset": str(upload.offset)},
        )
    expected = uploads.parse_checksum(request.headers.get("upload-checksum"))
    staged = staging.path(upload_id)
    digest, written = hashlib.sha256(), 0
    limit = min(uploads.MAX_CHUNK_BYTES, upload.length - offset)
    with staged.open("r+b") as out:
        out.seek(offset)
        out.truncate()
        try:
            async for chunk in request.stream():
                written += len(chunk)
                if written > limit:
                    raise ClientException(
                        status_code=413,
                        detail=(
                            f"a PATCH carries at most {uploads.MAX_CHUNK_BYTES} bytes and never beyond Upload-Length"
                        ),
                    )
                out.write(chunk)
                digest.update(chunk)
        except BaseException:
            out.truncate(offset)  # an interrupted chunk is dropped; the client resumes from `offset`
            raise
        if expected is not None and digest.digest() != expected:
            out.truncate(offset)
            raise ChecksumMismatch(
                "the chunk's sha256 does not match Upload-Checksum; resend it", field="Upload-Checksum"
            )
    new_offset = offset + written

    def advance(session: Session) -> None:
        row = session.get(TusUpload, upload_id, with_for_update=True)
        if row is None or row.offset != offset:
            raise ClientException(status_code=409, detail="the upload moved on meanwhile; HEAD it and resume")
        row.offset = new_offset

    await db.write(advance)
    if new_offset == upload.length:
        await _finish(db, backends, staging, upload, owner)
    return new_offset


async def _finish(
    db: Database, backends: Backends, staging: UploadStaging, upload: TusUpload, owner: uuid.UUID
) -> None:
    staged = staging.path(upload.id)
    sha = await _sha256(staged)
    try:
        result = await accept(
            db,
            backends.object_store,
            staged,
            sha256=sha,
            filename=upload.meta.get("filename", ""),
            content_item_id=upload.meta.get("content_item_id"),
            language=upload.meta.get("language"),
            uploaded_by=owner,
        )
    except DomainError:
        await db.write(lambda s: s.delete(s.get(TusUpload, upload.id)))
        raise

    def complete(session: Session) -> None:
        row = session.get(TusUpload, upload.id)
        row.completed_at = utcnow()
        row.media_asset_id = result.media_id

    await db.write(complete)


async def _sha256(path) -> str:
    import anyio

    from serving.media.staging import sha256_file

    return await anyio.to_thread.run_sync(sha256_file, path)


__all__ = ["MediaController", "TusController"]
