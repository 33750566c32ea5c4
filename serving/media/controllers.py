"""`/api/v1/media`: multipart upload, resumable tus 1.0 uploads, job status, media details.

The handlers are short: the upload streaming and the lookups are `serving.media.services`, the tus
engine `serving.media.tus`, the bodies `serving.media.schemas`."""

from __future__ import annotations

import time
import uuid
from datetime import UTC
from email.utils import format_datetime
from typing import Annotated

import anyio
import msgspec
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

from domain.media import uploads, urls
from domain.settings import Settings
from resources.upload_staging import UploadStaging
from serving.auth.principal import Principal
from serving.auth.security import AuthContext
from serving.auth.sockets import SocketSession
from serving.db import Database
from serving.deployment import Backends
from serving.media import services, tus
from serving.media.schemas import JobStatus, MediaOut, UploadAccepted, VariantsOut
from serving.permissions import (
    CONTENT_READ,
    CONTENT_READ_UNPUBLISHED,
    MEDIA_UPLOAD,
    PUBLIC,
    holds,
    requires,
)

JOB_POLL_SECONDS = 0.5  # the job row is written by Dagster run workers; the socket forwards its changes


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
        meter = await services.upload_gate(db, backends, staging, settings).begin_multipart(
            request.user.user_id, int(declared) if declared and declared.isdigit() else None
        )
        try:
            return await services.receive_multipart(request, boundary, db, backends, staging, meter)
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
        current = await db.read(lambda s: services.job_status(s, job_id, viewer))
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
                current = await db.read(lambda s: services.job_status(s, job_id, viewer))
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
        return await db.read(
            lambda s: services.variants(
                s,
                media_id,
                may_read_unpublished=may_read_unpublished,
                cdn_base_url=auth.settings.cdn_base_url,
                keys=auth.keys,
            )
        )

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
        private = urls.signed_private(auth.keys, variant_id, expires, sig)
        variant = await db.read(lambda s: services.served_variant(s, variant_id, private_link=private))
        stream = await anyio.to_thread.run_sync(backends.object_store.open, variant.s3_key)
        media_type = services.MEDIA_TYPES.get(variant.format, "application/octet-stream")

        async def chunks():
            try:
                while block := await anyio.to_thread.run_sync(stream.read, 256 * 1024):
                    yield block
            finally:
                stream.close()

        headers = {
            "Cache-Control": f"private, max-age={max(0, expires - int(time.time()))}",
            "Content-Length": str(variant.file_size),
        }
        return Stream(chunks(), media_type=media_type, headers=headers)

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
        return await db.read(lambda s: services.media(s, media_id, may_read_unpublished=may_read_unpublished))


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
        response.headers.update(tus.TUS_HEADERS)
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
        tus.require_tus(request)
        length = tus.int_header(request, "upload-length")
        uploads.check_length(length)
        metadata = uploads.parse_upload_metadata(request.headers.get("upload-metadata"))
        owner = request.user.user_id
        gate = services.upload_gate(db, backends, staging, settings)
        await gate.begin_tus(owner, length)  # room on disk, a free slot, quota for the whole length
        upload = await tus.create(
            db, backends.object_store, staging, length=length, metadata=metadata, owner=owner
        )
        headers = {
            **tus.TUS_HEADERS,
            "Location": f"{self.path}/{upload.id}",
            "Upload-Expires": format_datetime(upload.expires_at.astimezone(UTC), usegmt=True),
        }
        offset, media_id = 0, None
        if request.headers.get("content-type") == tus.OFFSET_STREAM:
            offset, media_id = await tus.append(request, db, backends, staging, upload.id, 0, gate)
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
        tus.require_tus(request)
        upload = await db.read(lambda s: tus.owned(s, upload_id, request.user.user_id))
        return Response(
            None,
            status_code=200,
            headers={
                **tus.TUS_HEADERS,
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
        tus.require_tus(request)
        if request.headers.get("content-type") != tus.OFFSET_STREAM:
            raise ClientException(status_code=415, detail=f"PATCH bodies must be {tus.OFFSET_STREAM}")
        offset = tus.int_header(request, "upload-offset")
        gate = services.upload_gate(db, backends, staging, settings)
        new_offset, media_id = await tus.append(request, db, backends, staging, upload_id, offset, gate)
        headers = {**tus.TUS_HEADERS, "Upload-Offset": str(new_offset)}
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
        tus.require_tus(request)
        await tus.terminate(db, backends.object_store, staging, upload_id, request.user.user_id)
        return Response(None, status_code=204, headers=tus.TUS_HEADERS)


__all__ = ["MediaController", "TusController"]
