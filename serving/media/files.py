"""Published media files behind a signed folder URL (see `domain.media.urls`): what players fetch
when there is no CDN or the media is private. Byte ranges are served (HLS playlists address the
single-file fMP4 rungs by `EXT-X-BYTERANGE`), and a master's links to another media's dubbed track
are re-signed for that media.

A folder signed for public media is honoured only while the media is public (its item published):
unpublishing or archiving an item ends its public links at once (404, as for a file that does not
exist). A folder signed private (handed to holders of `content:read_unpublished`) stands for its hour."""

from __future__ import annotations

import re
import time
import uuid
from typing import Annotated

import anyio
from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.exceptions import ClientException, NotFoundException, PermissionDeniedException
from litestar.params import FromPath, PathParameter
from litestar.response import Stream

from domain import content
from domain.media import urls
from serving.auth.security import AuthContext
from serving.db import Database
from serving.deployment import Backends
from serving.permissions import PUBLIC, requires

_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".mp4": "video/mp4",
    ".m4a": "audio/mp4",
    ".mp3": "audio/mpeg",
    ".jpg": "image/jpeg",
    ".webp": "image/webp",
    ".vtt": "text/vtt",
}
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_BLOCK = 256 * 1024


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """One `bytes=a-b` / `a-` / `-n` range as (start, end inclusive); None for the whole file.
    Raises 416 for a range outside the file or several ranges (not served)."""
    if not header:
        return None
    m = _RANGE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        raise ClientException(
            status_code=416,
            detail="one byte range `bytes=start-end` is served",
            headers={"Content-Range": f"bytes */{size}"},
        )
    if not m.group(1):
        start, end = max(0, size - int(m.group(2))), size - 1
    else:
        start = int(m.group(1))
        end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
    if start >= size or end < start:
        raise ClientException(
            status_code=416,
            detail=f"the range is outside the file's {size} bytes",
            headers={"Content-Range": f"bytes */{size}"},
        )
    return start, end


class MediaFilesController(Controller):
    path = urls.FILES_PREFIX
    tags = ["media"]

    @get(
        "/{media_id:uuid}/{expires:int}/{sig:str}/{rest:path}",
        opt=requires(PUBLIC),
        operation_id="mediaFile",
        summary="A published rendition or thumbnail file under a signed, expiring folder URL (byte ranges served)",
    )
    async def file(
        self,
        request: Request,
        media_id: FromPath[uuid.UUID],
        expires: FromPath[int],
        sig: Annotated[str, PathParameter(max_length=64)],
        rest: FromPath[str],
        db: NamedDependency[Database],
        backends: NamedDependency[Backends],
        auth: NamedDependency[AuthContext],
    ) -> Response:
        refused = urls.check_files(auth.keys, media_id, expires, sig)
        if refused:
            raise PermissionDeniedException(refused)
        key = urls.published_key(media_id, rest.lstrip("/"))
        if key is None:
            raise NotFoundException("no such published file")
        private = urls.files_private(auth.keys, media_id, expires, sig)
        if not private and not await db.read(lambda s: content.media_is_public(s, media_id)):
            raise NotFoundException("no such published file")
        store = backends.object_store
        try:
            size = await anyio.to_thread.run_sync(store.size, key)
        except FileNotFoundError as exc:
            raise NotFoundException("no such published file") from exc
        suffix = key[key.rfind(".") :]
        cache = f"private, max-age={max(0, expires - int(time.time()))}"
        if suffix == ".m3u8" and key.endswith("master.m3u8"):
            # A dubbed track's links take this link's kind: public ones are checked again when fetched.
            text = (await anyio.to_thread.run_sync(store.get_bytes, key)).decode()
            body = urls.sign_cross_media(text, auth.keys, private=private).encode()
            return Response(body, media_type=_TYPES[suffix], headers={"Cache-Control": cache})
        wanted = parse_range(request.headers.get("range"), size)
        start, end = wanted or (0, size - 1)
        stream = await anyio.to_thread.run_sync(store.open_seekable if wanted else store.open, key)

        async def chunks():
            try:
                if wanted:
                    await anyio.to_thread.run_sync(stream.seek, start)
                left = end - start + 1
                while left > 0 and (block := await anyio.to_thread.run_sync(stream.read, min(_BLOCK, left))):
                    left -= len(block)
                    yield block
            finally:
                stream.close()

        headers = {"Cache-Control": cache, "Accept-Ranges": "bytes", "Content-Length": str(end - start + 1)}
        if wanted:
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        return Stream(
            chunks(),
            media_type=_TYPES.get(suffix, "application/octet-stream"),
            status_code=206 if wanted else 200,
            headers=headers,
        )
