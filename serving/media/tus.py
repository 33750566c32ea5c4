"""The tus 1.0 engine behind `TusController`: appending a PATCH body at the upload's offset, each
full part sent to the object store as the next part of the upload's multipart upload, and finishing
the upload into a media asset (`staging.accept_stored`).

The API host keeps only the unfilled tail of the next part, locked while one request writes it
(`UploadStaging.hold`). A chunk's parts are recorded and its new tail committed only once the whole
chunk is in and its Upload-Checksum matches: a refused or interrupted chunk leaves offset, parts and
tail as they were."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from typing import IO, Any

import anyio
import sqlalchemy as sa
from litestar import Request
from litestar.exceptions import ClientException, NotFoundException
from sqlalchemy.orm import Session

from domain.errors import DomainError, InvalidValue
from domain.ids import new_id
from domain.media import uploads
from domain.media.inspect.limits import UnsupportedMedia
from domain.media.inspect.sniffing import HEAD_BYTES
from domain.schema import TusUpload, utcnow
from resources.object_store import ObjectStore, copy_stream
from resources.upload_staging import TailMoved, UploadBusy, UploadStaging, lock
from serving.db import Database
from serving.deployment import Backends
from serving.media.limits import HeadCheck, Meter, UploadGate
from serving.media.staging import accept_stored

TUS_HEADERS = {"Tus-Resumable": uploads.TUS_VERSION}


OFFSET_STREAM = "application/offset+octet-stream"


class ChecksumMismatch(DomainError):
    status = 460  # tus checksum extension
    title = "Checksum mismatch"


def require_tus(request: Request) -> None:
    """412 unless the request speaks our tus version."""
    if request.headers.get("tus-resumable") != uploads.TUS_VERSION:
        raise ClientException(
            status_code=412,
            detail=f"send Tus-Resumable: {uploads.TUS_VERSION}",
            headers={"Tus-Version": uploads.TUS_VERSION},
        )


def int_header(request: Request, name: str) -> int:
    """A header that must hold a non-negative integer (Upload-Length, Upload-Offset)."""
    raw = request.headers.get(name)
    if raw is None or not raw.isdigit():
        raise InvalidValue(f"{name} must be a non-negative integer", field=name)
    return int(raw)


def owned(session: Session, upload_id: uuid.UUID, owner: uuid.UUID) -> TusUpload:
    """The upload, if `owner` started it; anyone else gets the 404 of an unknown upload."""
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


async def create(
    db: Database,
    store: ObjectStore,
    staging: UploadStaging,
    *,
    length: int,
    metadata: dict[str, str],
    owner: uuid.UUID,
) -> TusUpload:
    """A new upload: its multipart upload in the store, its row, and an empty tail on this host. The
    multipart upload is aborted if the row cannot be written."""
    upload_id = new_id()
    key = uploads.tus_staging_key(upload_id)
    multipart_id = await anyio.to_thread.run_sync(store.start_multipart, key)

    def insert(session: Session) -> TusUpload:
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
        upload = await db.write(insert)
    except Exception:
        await anyio.to_thread.run_sync(store.abort_multipart, key, multipart_id)
        raise
    staging.tail(upload_id, 0).touch()
    return upload


async def terminate(
    db: Database, store: ObjectStore, staging: UploadStaging, upload_id: uuid.UUID, owner: uuid.UUID
) -> None:
    """Abandon an unfinished upload: once no PATCH is in progress, its row, its multipart upload and
    what this host keeps of it go (409 once it is complete, 423 while a PATCH holds it)."""
    upload = await db.read(lambda s: owned(s, upload_id, owner))

    def remove(session: Session) -> None:
        row = owned(session, upload_id, owner)
        if row.completed_at is not None:
            raise ClientException(status_code=409, detail="the upload is complete; delete the media instead")
        session.delete(row)

    with ExitStack() as held:
        try:  # wait for no PATCH in progress
            held.enter_context(staging.hold(upload_id, upload.offset))
        except UploadBusy as exc:
            raise ClientException(status_code=423, detail=str(exc)) from exc
        except TailMoved:
            pass  # no tail on this host (or the upload just moved on): delete it all the same
        await db.write(remove)
        await discard(store, staging, upload)


async def discard(store: ObjectStore, staging: UploadStaging, upload: TusUpload) -> None:
    """Abort the upload's multipart upload and delete what the API host keeps of it."""
    if upload.multipart_upload_id:
        await anyio.to_thread.run_sync(store.abort_multipart, upload.staging_key, upload.multipart_upload_id)
    staging.remove(upload.id)


async def append(
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
    upload = await db.read(lambda s: owned(s, upload_id, owner))
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
    """`append` once its limits passed: the upload locked, the body received, the offset advanced."""
    upload_id, owner = upload.id, request.user.user_id
    async with _held(db, staging, upload) as tail:
        upload = await db.read(lambda s: owned(s, upload_id, owner))  # it cannot move while held
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
                    await discard(store, staging, upload)
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
