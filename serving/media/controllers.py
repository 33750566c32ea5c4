"""`/api/v1/media`: multipart upload, resumable tus 1.0 uploads, job status, media details."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from datetime import UTC
from email.utils import format_datetime
from typing import IO, Annotated, Any

import anyio
import msgspec
import sqlalchemy as sa
from litestar import Controller, Request, Response, WebSocket, delete, get, head, patch, post, websocket
from litestar.di import NamedDependency
from litestar.exceptions import (
    ClientException,
    NotFoundException,
    PermissionDeniedException,
    WebSocketDisconnect,
)
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Stream
from litestar.status_codes import HTTP_204_NO_CONTENT
from multipart import MultipartSegment, ParserError, PushMultipartParser
from sqlalchemy.orm import Session

from domain import content
from domain.errors import DomainError, InvalidValue
from domain.ids import new_id
from domain.media import processing, uploads, urls
from domain.media.inspect.limits import UnsupportedMedia
from domain.media.inspect.sniffing import HEAD_BYTES
from domain.schema import MediaAsset, MediaVariant, TusUpload, utcnow
from domain.settings import Settings
from resources.object_store import ObjectStore, copy_stream
from resources.upload_staging import TailMoved, UploadBusy, UploadStaging, lock
from serving.auth.principal import Principal
from serving.auth.security import AuthContext
from serving.auth.sockets import SocketSession
from serving.db import Database
from serving.deployment import Backends
from serving.media.limits import HeadCheck, Meter, UploadGate
from serving.media.staging import accept, accept_stored
from serving.permissions import (
    CONTENT_READ,
    CONTENT_READ_UNPUBLISHED,
    CONTENT_UPDATE,
    MEDIA_UPLOAD,
    PUBLIC,
    holds,
    requires,
)

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
        settings: NamedDependency[Settings],
    ) -> UploadAccepted:
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data") or "boundary=" not in content_type:
            raise ClientException(status_code=415, detail="send multipart/form-data with a `file` field")
        boundary = content_type.split("boundary=", 1)[1].split(";")[0].strip().strip('"')
        declared = request.headers.get("content-length")
        # Room on disk, a free slot and quota left, before a byte of the body is read.
        meter = await _gate(db, backends, staging, settings).begin_multipart(
            request.user.user_id, int(declared) if declared and declared.isdigit() else None
        )
        try:
            return await _multipart(request, boundary, db, backends, staging, meter)
        finally:
            await meter.close()

    @get(
        "/job/{job_id:uuid}/status",
        opt=requires(MEDIA_UPLOAD),
        operation_id="mediaJobStatus",
        summary="Processing status of a media job: stage, percent, error, queue position",
        description="For the media's uploader and holders of content:update; anyone else gets a 404.",
    )
    async def job_status(
        self,
        request: Request[Principal, object, object],
        job_id: FromPath[uuid.UUID],
        db: NamedDependency[Database],
    ) -> JobStatus:
        viewer = request.user
        current = await db.read(lambda s: _job_status(s, job_id, viewer))
        if current is None:
            raise NotFoundException(f"job {job_id} does not exist")
        return current

    @websocket("/job/{job_id:uuid}/ws", opt=requires(MEDIA_UPLOAD))
    async def job_updates(
        self,
        socket: WebSocket,
        job_id: FromPath[uuid.UUID],
        db: NamedDependency[Database],
        auth: NamedDependency[AuthContext],
    ) -> None:
        """Pushes the job's status whenever it changes (stage, percent, queue position while waiting)
        until it completes or fails. Authenticated like every WebSocket (header, `bearer, <token>`
        subprotocol or `?token=`) and closed (4401) once its session ends; for the media's uploader
        and holders of content:update (anyone else: the unknown-job error)."""
        viewer: Principal = socket.user
        live = SocketSession(socket, auth)
        await live.accept()

        async def updates() -> None:
            last = None
            while await live.valid():  # checked on every poll: a revoked session stops the updates
                current = await db.read(lambda s: _job_status(s, job_id, viewer))
                if current is None:
                    await socket.send_json({"type": "error", "detail": f"job {job_id} does not exist"})
                    await socket.close(code=4404)
                    return
                if current != last:
                    await live.send(
                        msgspec.json.encode({"type": "status", **msgspec.to_builtins(current)}).decode()
                    )
                    last = current
                if current.status in ("completed", "failed"):
                    await socket.close()
                    return
                try:  # wait, ignoring what the client sends; a client that left ends the loop
                    with anyio.move_on_after(JOB_POLL_SECONDS):
                        while True:
                            await socket.receive_data(mode="text")
                except WebSocketDisconnect:
                    return
            await live.end()

        await live.run(updates)

    @get(
        "/{media_id:uuid}/variants",
        opt=requires(CONTENT_READ),
        operation_id="mediaVariants",
        summary="Every processed variant with its URL (CDN for public media, else signed and expiring)",
        description="Media of an unpublished item (or of no item) is private: a 404 without "
        "content:read_unpublished, and its URLs are always signed, for an hour.",
    )
    async def variants(
        self,
        request: Request[Principal, object, object],
        media_id: FromPath[uuid.UUID],
        db: NamedDependency[Database],
        auth: NamedDependency[AuthContext],
    ) -> VariantsOut:
        may_read_unpublished = holds(request, CONTENT_READ_UNPUBLISHED)

        def load(session: Session) -> VariantsOut:
            asset = session.get(MediaAsset, media_id)
            public = asset is not None and content.media_is_public(session, media_id)
            if asset is None or not (public or may_read_unpublished):
                raise NotFoundException(f"media {media_id} does not exist")
            rows = session.scalars(
                sa.select(MediaVariant)
                .where(MediaVariant.media_asset_id == media_id)
                .order_by(MediaVariant.variant_type, MediaVariant.width, MediaVariant.format)
            ).all()
            return VariantsOut(media_id=media_id, upload_status=asset.upload_status, variants=[
                VariantOut(id=v.id, variant_type=v.variant_type, format=v.format, quality=v.quality, width=v.width,
                           height=v.height, duration_s=v.duration_s, file_size=v.file_size,
                           url=urls.variant_url(auth.settings.cdn_base_url, v.s3_key, auth.keys, v.id,
                                                private=not public))
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
        refused = urls.check(auth.keys, variant_id, expires, sig)
        if refused:
            raise PermissionDeniedException(refused)
        variant = await db.read(lambda s: s.get(MediaVariant, variant_id))
        if variant is None:
            raise NotFoundException(f"variant {variant_id} does not exist")
        if not urls.signed_private(auth.keys, variant_id, expires, sig) and not await db.read(
            lambda s: content.media_is_public(s, variant.media_asset_id)
        ):  # a public link outlives its media's publication by nothing
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

    @get(
        "/{media_id:uuid}",
        opt=requires(CONTENT_READ),
        operation_id="getMedia",
        summary="A media asset (of an unpublished item: a 404 without content:read_unpublished)",
    )
    async def get_media(
        self,
        request: Request[Principal, object, object],
        media_id: FromPath[uuid.UUID],
        db: NamedDependency[Database],
    ) -> MediaOut:
        may_read_unpublished = holds(request, CONTENT_READ_UNPUBLISHED)

        def load(session: Session) -> MediaOut:
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

        return await db.read(load)


class TusController(Controller):
    """tus 1.0 resumable uploads: core, creation, creation-with-upload, expiration, checksum
    (sha256) and termination. Each PATCH carries at most `Thmnayah-Max-Chunk-Size` bytes.

    The bytes go to the object store as the parts (`Thmnayah-Part-Size` each) of one multipart
    upload per tus upload; the API host keeps only the unfilled tail of the next part. A part's
    number and ETag are recorded with the upload once the chunk that completed it is accepted."""

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
                    # Chunks of whole parts are cheapest: no tail is carried from one PATCH to the next.
                    "Thmnayah-Part-Size": str(uploads.PART_BYTES),
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
        settings: NamedDependency[Settings],
    ) -> Response[None]:
        _tus_required(request)
        length = _int_header(request, "upload-length")
        uploads.check_length(length)
        metadata = uploads.parse_upload_metadata(request.headers.get("upload-metadata"))
        owner = request.user.user_id
        gate = _gate(db, backends, staging, settings)
        await gate.begin_tus(owner, length)  # room on disk, a free slot, quota for the whole length
        upload_id = new_id()
        key = uploads.tus_staging_key(upload_id)
        store = backends.object_store
        multipart_id = await anyio.to_thread.run_sync(store.start_multipart, key)

        def create(session: Session) -> TusUpload:
            return uploads.new_tus_upload(
                session,
                length=length,
                metadata=metadata,
                owner_id=owner,
                staging_key=key,
                upload_id=upload_id,
                multipart_upload_id=multipart_id,
            )

        try:
            upload = await db.write(create)
        except Exception:
            await anyio.to_thread.run_sync(store.abort_multipart, key, multipart_id)
            raise
        staging.tail(upload_id, 0).touch()
        headers = {
            **TUS_HEADERS,
            "Location": f"{self.path}/{upload.id}",
            "Upload-Expires": format_datetime(upload.expires_at.astimezone(UTC), usegmt=True),
        }
        offset, media_id = 0, None
        if request.headers.get("content-type") == OFFSET_STREAM:
            offset, media_id = await _append(request, db, backends, staging, upload.id, 0, gate)
        if media_id is not None:
            headers["Thmnayah-Media-Id"] = str(media_id)
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
        settings: NamedDependency[Settings],
    ) -> Response[None]:
        _tus_required(request)
        if request.headers.get("content-type") != OFFSET_STREAM:
            raise ClientException(status_code=415, detail=f"PATCH bodies must be {OFFSET_STREAM}")
        offset = _int_header(request, "upload-offset")
        gate = _gate(db, backends, staging, settings)
        new_offset, media_id = await _append(request, db, backends, staging, upload_id, offset, gate)
        headers = {**TUS_HEADERS, "Upload-Offset": str(new_offset)}
        if media_id is not None:
            headers["Thmnayah-Media-Id"] = str(media_id)
        return Response(None, status_code=204, headers=headers)

    @delete(
        "/{upload_id:uuid}",
        opt=requires(MEDIA_UPLOAD),
        operation_id="tusTerminate",
        summary="Abandon an upload: abort its multipart upload and delete its bytes",
    )
    async def terminate(
        self,
        request: Request[Principal, object, object],
        upload_id: FromPath[uuid.UUID],
        db: NamedDependency[Database],
        backends: NamedDependency[Backends],
        staging: NamedDependency[UploadStaging],
    ) -> Response[None]:
        _tus_required(request)
        owner = request.user.user_id
        upload = await db.read(lambda s: _owned(s, upload_id, owner))

        def remove(session: Session) -> None:
            row = _owned(session, upload_id, owner)
            if row.completed_at is not None:
                raise ClientException(
                    status_code=409, detail="the upload is complete; delete the media instead"
                )
            session.delete(row)

        with ExitStack() as held:
            try:  # wait for no PATCH in progress
                held.enter_context(staging.hold(upload_id, upload.offset))
            except UploadBusy as exc:
                raise ClientException(status_code=423, detail=str(exc)) from exc
            except TailMoved:
                pass  # no tail on this host (or the upload just moved on): delete it all the same
            await db.write(remove)
            await _discard(backends.object_store, staging, upload)
        return Response(None, status_code=204, headers=TUS_HEADERS)


async def _multipart(
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
    return _accepted(result)


def _gate(db: Database, backends: Backends, staging: UploadStaging, settings: Settings) -> UploadGate:
    """The upload limits of this deployment (`THMNAYAH_UPLOAD_*`), kept in the rate-limit store."""
    limits = uploads.UploadLimits.from_settings(settings)
    return UploadGate(backends.stores["rate_limit"], db, staging.root, limits)


def _job_status(session: Session, job_id: uuid.UUID, viewer: Principal) -> JobStatus | None:
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


def _owned(session: Session, upload_id: uuid.UUID, owner: uuid.UUID) -> TusUpload:
    upload = session.get(TusUpload, upload_id)
    if upload is None or upload.owner_id != owner:
        raise NotFoundException(f"upload {upload_id} does not exist")
    return upload


def _check_appendable(upload: TusUpload, offset: int) -> None:
    if upload.completed_at is not None:
        raise ClientException(status_code=409, detail="the upload is already complete")
    if upload.expires_at <= utcnow():
        raise ClientException(status_code=410, detail="the upload expired; start a new one")
    if upload.multipart_upload_id is None:  # created before uploads went to the store in parts
        raise ClientException(status_code=410, detail="the upload cannot be resumed; start a new one")
    if offset != upload.offset:
        raise ClientException(
            status_code=409,
            detail=f"Upload-Offset is {upload.offset}, not {offset}",
            headers={"Upload-Offset": str(upload.offset)},
        )


@asynccontextmanager
async def _held(db: Database, staging: UploadStaging, upload: TusUpload) -> AsyncIterator[IO[bytes]]:
    """The upload's committed tail, locked: one request at a time writes an upload."""
    try:
        with staging.hold(upload.id, upload.offset) as tail:
            yield tail
    except UploadBusy as exc:
        raise ClientException(status_code=423, detail=str(exc)) from exc
    except TailMoved as exc:
        current = await db.read(lambda s: s.get(TusUpload, upload.id))
        if current is not None and current.offset == upload.offset:
            raise RuntimeError(
                f"tus upload {upload.id}: its tail is not on this API host (pin a tus upload to one host, "
                "or share the uploads directory between hosts)"
            ) from exc
        raise ClientException(
            status_code=409, detail="the upload moved on meanwhile; HEAD it and resume"
        ) from exc


async def _discard(store: ObjectStore, staging: UploadStaging, upload: TusUpload) -> None:
    """Abort the upload's multipart upload and delete what the API host keeps of it."""
    if upload.multipart_upload_id:
        await anyio.to_thread.run_sync(store.abort_multipart, upload.staging_key, upload.multipart_upload_id)
    staging.remove(upload.id)


async def _append(
    request: Request,
    db: Database,
    backends: Backends,
    staging: UploadStaging,
    upload_id: uuid.UUID,
    offset: int,
    gate: UploadGate,
) -> tuple[int, uuid.UUID | None]:
    """Append the body at `offset`. Bytes fill the tail; each full tail is sent as the next part.
    Only when the whole chunk is in (and its Upload-Checksum matches) are the new parts recorded and
    the new tail committed; a refused or interrupted chunk leaves offset, parts and tail as they
    were (parts it sent are never listed, so completing the upload discards them). The last chunk
    sends the tail as the last part and finishes the upload. Returns (offset, media id if done).

    Before the body is read: room on disk (507) and quota left (413) for its Content-Length; while
    it streams, every byte metered. The upload's first 64 KB are sniffed before more is taken: not
    media, the upload is refused (415) and deleted with its bytes."""
    owner = request.user.user_id
    upload = await db.read(lambda s: _owned(s, upload_id, owner))
    _check_appendable(upload, offset)
    expected = uploads.parse_checksum(request.headers.get("upload-checksum"))
    declared = request.headers.get("content-length")
    meter = await gate.begin_patch(owner, int(declared) if declared and declared.isdigit() else None)
    try:
        return await _append_held(
            request, db, backends.object_store, staging, upload, offset, expected, meter
        )
    finally:
        await meter.close()


async def _append_held(
    request: Request,
    db: Database,
    store: ObjectStore,
    staging: UploadStaging,
    upload: TusUpload,
    offset: int,
    expected: bytes | None,
    meter: Meter,
) -> tuple[int, uuid.UUID | None]:
    """`_append` once its limits passed: the upload locked, the body received, the offset advanced."""
    upload_id, owner = upload.id, request.user.user_id
    async with _held(db, staging, upload) as tail:
        upload = await db.read(lambda s: _owned(s, upload_id, owner))  # it cannot move while held
        _check_appendable(upload, offset)
        work_path = staging.work(upload_id)
        with work_path.open("w+b") as work:
            lock(work)
            committed = False
            try:
                try:
                    written, parts = await _receive(request, store, upload, tail, work, expected, meter)
                except UnsupportedMedia:  # its head is not media: it never will be, so it goes
                    await db.write(lambda s: s.execute(sa.delete(TusUpload).where(TusUpload.id == upload_id)))
                    await _discard(store, staging, upload)
                    raise
                new_offset = offset + written
                if written == 0 and new_offset < upload.length:
                    return offset, None
                if written:
                    work_path.rename(staging.tail(upload_id, new_offset))
                    committed = True

                    def advance(session: Session) -> None:
                        row = session.get(TusUpload, upload_id, with_for_update=True)
                        if row is None:
                            raise NotFoundException(f"upload {upload_id} was terminated meanwhile")
                        if row.offset != offset or len(row.parts) != len(upload.parts):
                            raise ClientException(
                                status_code=409, detail="the upload moved on meanwhile; HEAD it and resume"
                            )
                        row.offset = new_offset
                        row.parts = [*row.parts, *parts]

                    try:
                        await db.write(advance)
                    except BaseException:
                        staging.tail(upload_id, new_offset).unlink(missing_ok=True)
                        raise
                    staging.tail(upload_id, offset).unlink(missing_ok=True)
            finally:
                if not committed:
                    work_path.unlink(missing_ok=True)
            if new_offset < upload.length:
                return new_offset, None
            # Finished (or a retry of a finish that failed midway): still holding the new tail's lock.
            return new_offset, await _finish(db, store, staging, upload_id, owner)


async def _receive(
    request: Request,
    store: ObjectStore,
    upload: TusUpload,
    tail: IO[bytes],
    work: IO[bytes],
    expected: bytes | None,
    meter: Meter,
) -> tuple[int, list[dict[str, Any]]]:
    """Stream the body into `work` (which starts as a copy of the committed tail), sending each full
    part to the store as it fills; returns (bytes received, parts sent). Never holds more than one
    network read in memory, and the upload's first 64 KB (until they are sniffed)."""
    tail_size = upload.offset - uploads.stored_bytes(upload)
    copied = await anyio.to_thread.run_sync(copy_stream, tail, work, tail_size)
    if copied != tail_size:
        raise RuntimeError(f"tus upload {upload.id}: the tail holds {copied} bytes, not {tail_size}")
    head = None
    if upload.offset < HEAD_BYTES:  # the head is not sniffed yet: what came so far is all in the tail
        work.seek(0)
        head = HeadCheck(work.read(tail_size), total=upload.length)
        work.seek(0, 2)
    limit = min(uploads.MAX_CHUNK_BYTES, upload.length - upload.offset)
    digest = hashlib.sha256() if expected is not None else None
    filled, written, parts = tail_size, 0, []

    async def send(size: int) -> None:
        nonlocal filled
        number = len(upload.parts) + len(parts) + 1
        work.seek(0)
        etag = await anyio.to_thread.run_sync(
            store.put_part, upload.staging_key, upload.multipart_upload_id, number, work, size
        )
        parts.append({"number": number, "etag": etag, "size": size})
        work.seek(0)
        work.truncate()
        filled = 0

    async def fill(data: bytes) -> None:
        nonlocal filled
        view = memoryview(data)
        while view:
            take = min(len(view), uploads.PART_BYTES - filled)
            work.write(view[:take])
            filled += take
            view = view[take:]
            if filled == uploads.PART_BYTES:
                await send(filled)

    async for chunk in request.stream():
        written += len(chunk)
        if written > limit:
            raise ClientException(
                status_code=413,
                detail=f"a PATCH carries at most {uploads.MAX_CHUNK_BYTES} bytes and never beyond Upload-Length",
            )
        await meter.add(len(chunk))  # 413 past the daily quota, 507 short of disk
        if digest is not None:
            digest.update(chunk)
        await fill(head.feed(chunk) if head is not None else chunk)  # 415 once the head is not media
    if digest is not None and digest.digest() != expected:
        raise ChecksumMismatch(
            "the chunk's sha256 does not match Upload-Checksum; resend it", field="Upload-Checksum"
        )
    if head is not None:
        await fill(head.release(last=upload.offset + written == upload.length))
    if upload.offset + written == upload.length and filled:
        await send(filled)  # the last part may be smaller than the others
    work.flush()
    return written, parts


async def _finish(
    db: Database, store: ObjectStore, staging: UploadStaging, upload_id: uuid.UUID, owner: uuid.UUID
) -> uuid.UUID:
    """Complete the multipart upload into the staging key, then check, hash, move and record it as
    `accept` does for a multipart POST. A refusal (413/415/422) deletes the upload and its bytes."""
    upload = await db.read(lambda s: s.get(TusUpload, upload_id))
    key = upload.staging_key
    parts = [(part["number"], part["etag"]) for part in upload.parts]
    try:
        if not await anyio.to_thread.run_sync(store.exists, key):  # else completed by an earlier try
            await anyio.to_thread.run_sync(store.complete_multipart, key, upload.multipart_upload_id, parts)
        result = await accept_stored(
            db,
            store,
            key,
            filename=upload.meta.get("filename", ""),
            content_item_id=upload.meta.get("content_item_id"),
            language=upload.meta.get("language"),
            uploaded_by=owner,
        )
    except DomainError:
        await db.write(lambda s: s.delete(s.get(TusUpload, upload_id)))
        staging.remove(upload_id)
        raise

    def complete(session: Session) -> None:
        row = session.get(TusUpload, upload_id)
        row.completed_at = utcnow()
        row.media_asset_id = result.media_id

    await db.write(complete)
    staging.remove(upload_id)
    return result.media_id


__all__ = ["MediaController", "TusController"]
