"""Attacks on uploads.

- ffmpeg as an SSRF / file-read tool: a file that starts like an MP3 (an ID3 tag) and goes on as an
  HLS playlist or an ffconcat list. Left to guess the format, ffprobe took it for a playlist and
  opened what it names: files of the server and, for an object read over HTTP (S3), any URL inside
  the network. Uploads are read with their sniffed demuxer and one protocol: refused, nothing fetched.
- disk filling: a multipart body or tus chunk that is not media was streamed whole (up to 5 GB) to
  disk before its type was checked. Now the first 64 KB are sniffed first: the rest is never read.
- no limits per user: uploads in progress (429), bytes a day (413); and no look at the free disk
  (507, with the margin a setting so the test needs no full disk).

Bodies are streamed to the app through its ASGI interface (as a server drives it), so the test sees
how much of a body the API read before answering.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import sqlalchemy as sa
from litestar.testing import AsyncTestClient

from domain.db import sync_engine
from domain.schema import MediaAsset, TusUpload
from domain.settings import Settings
from resources.object_store import S3ObjectStore
from serving.app import create_app
from tests.ffmpeg_frames import X264_FAST, ffmpeg, lavfi
from tests.serving.conftest import bearer, make_user, mint_token

API = "/api/v1/media"
TUS = {"Tus-Resumable": "1.0.0"}
OFFSET_STREAM = "application/offset+octet-stream"
KiB, MiB = 1024, 1024 * 1024
TEXT = b"this is not a video, whatever its name says\n"


@pytest.fixture(scope="session")
def samples(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("security-uploads")
    files = {"seg.mp3": root / "seg.mp3", "clip.mp4": root / "clip.mp4", "tone.wav": root / "tone.wav"}
    ffmpeg(*lavfi("sine=frequency=440:duration=1"), "-c:a", "libmp3lame", str(files["seg.mp3"]))
    ffmpeg(
        *lavfi("testsrc=size=160x120:rate=10:duration=1"),
        *X264_FAST,
        "-pix_fmt",
        "yuv420p",
        str(files["clip.mp4"]),
    )
    # About 0.73 MiB of real audio (4 s, 48 kHz stereo PCM).
    ffmpeg(
        *lavfi("sine=frequency=440:sample_rate=48000:duration=4"),
        "-ac",
        "2",
        "-c:a",
        "pcm_s16le",
        str(files["tone.wav"]),
    )
    return files


def id3(body: bytes) -> bytes:
    """`body` behind an ID3v2 tag (16 bytes of padding): it sniffs as MP3."""
    size = 16
    return b"ID3\x03\x00\x00" + bytes([0, 0, 0, size]) + b"\x00" * size + body


class Recorder(ThreadingHTTPServer):
    """A service inside the network: serves `seg.mp3` to whoever asks, and remembers every request."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.requests: list[str] = []
        super().__init__(("127.0.0.1", 0), _Serve)


class _Serve(BaseHTTPRequestHandler):
    server: Recorder

    def do_GET(self) -> None:  # noqa: N802
        self.server.requests.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "audio/mpeg")
        self.send_header("Content-Length", str(len(self.server.payload)))
        self.end_headers()
        self.wfile.write(self.server.payload)

    def log_message(self, *args) -> None:
        """Quiet: the test reads what it needs from the recorded requests."""


@pytest.fixture
def internal(samples) -> Iterator[Recorder]:
    server = Recorder(samples["seg.mp3"].read_bytes())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def uploader(migrated_url: str, data_dir: Path) -> Callable[..., AsyncIterator[AsyncTestClient]]:
    """`async with uploader(**settings) as client`: the API with those settings and an author's
    token on every request."""

    @asynccontextmanager
    async def make(**changes) -> AsyncIterator[AsyncTestClient]:
        settings = Settings(deployment="local", data_dir=data_dir, database_url=migrated_url, **changes)
        app = create_app(settings)
        async with AsyncTestClient(app=app) as client:
            user_id = make_user(migrated_url, f"author-{uuid.uuid4().hex[:8]}", ["author"])
            client.headers.update(bearer(mint_token(app, migrated_url, user_id)))
            yield client

    return make


def media_rows(url: str) -> list:
    engine = sync_engine(url)
    with engine.connect() as conn:
        found = list(conn.execute(sa.select(MediaAsset.id))) + list(conn.execute(sa.select(TusUpload.id)))
    engine.dispose()
    return found


def staged(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "uploads").iterdir())


async def stream(
    client: AsyncTestClient, method: str, path: str, headers: dict[str, str], chunks: Iterator[bytes]
) -> tuple[int, bytes, int]:
    """Send a request whose body comes from `chunks` through the app's ASGI interface, as a server
    does; returns (status, response body, bytes of the body the app read)."""
    pulled = 0

    async def receive() -> dict:
        nonlocal pulled
        chunk = next(chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    raw = [(k.lower().encode(), v.encode()) for k, v in {**client.headers, **headers}.items()]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": raw,
        "client": ("127.0.0.1", 50000),
        "server": ("testserver.local", 80),
        "extensions": {},
    }

    async def run() -> None:
        await client.app(scope, receive, send)

    await asyncio.wait_for(asyncio.wrap_future(client.blocking_portal.start_task_soon(run)), 120)
    [start] = [m for m in sent if m["type"] == "http.response.start"]
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], body, pulled


def multipart_chunks(boundary: str, filename: str, payload: Iterator[bytes]) -> Iterator[bytes]:
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: video/mp4\r\n\r\n"
    ).encode()
    yield from payload
    yield f"\r\n--{boundary}--\r\n".encode()


def text(total: int, chunk: int = 256 * KiB) -> Iterator[bytes]:
    block = (TEXT * (chunk // len(TEXT) + 1))[:chunk]
    for _ in range(total // chunk):
        yield block


# --- ffmpeg must not follow a playlist -----------------------------------------------------------


def playlists(samples: dict[str, Path], internal: Recorder) -> dict[str, bytes]:
    """ID3-prefixed playlists. `hls` names a media file of the server (read and accepted as the
    upload before the fix: any file ffmpeg can read could end up in public renditions) and a URL."""
    here = f"http://127.0.0.1:{internal.server_address[1]}"
    local = samples["seg.mp3"]  # stands in for any media file on the server

    def m3u8(*entries: object) -> bytes:
        lines = "".join(f"#EXTINF:1,\n{entry}\n" for entry in entries)
        return id3(f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n{lines}#EXT-X-ENDLIST\n".encode())

    return {
        "hls": m3u8(local, f"{here}/segment.mp3"),
        "hls_passwd": m3u8(f"{here}/segment.mp3", "file:///etc/passwd"),
        "hls_remote": m3u8(f"{here}/segment.mp3"),
        "ffconcat": id3(
            f"ffconcat version 1.0\nfile {here}/concat.mp3\nfile /etc/passwd\nfile {local}\n".encode()
        ),
    }


@pytest.mark.parametrize("kind", ["hls", "hls_passwd", "ffconcat"])
async def test_a_playlist_disguised_as_mp3_is_refused_and_opens_nothing(
    client, samples, internal, migrated_url, data_dir, kind
) -> None:
    data = playlists(samples, internal)[kind]
    res = await client.post(f"{API}/upload", files={"file": ("talk.mp3", data, "audio/mpeg")})
    assert res.status_code in (415, 422), res.text  # refused, whatever ffmpeg would have made of it
    assert res.headers["content-type"].startswith("application/problem+json")
    assert internal.requests == []
    assert media_rows(migrated_url) == [] and staged(data_dir) == []


async def test_a_playlist_read_from_s3_fetches_nothing_inside_the_network(
    client, samples, internal, migrated_url, s3_endpoint, aws_credentials
) -> None:
    """A tus upload is checked where it lies, ffprobe reading the object over HTTP(S): a playlist
    there would make ffprobe fetch its segments from anywhere the API host can reach."""
    backends = client.app.dependencies["backends"].dependency()
    backends.object_store = S3ObjectStore(
        bucket=f"sec-{uuid.uuid4().hex[:16]}", endpoint_url=s3_endpoint, create_bucket=True
    )
    data = playlists(samples, internal)["hls_remote"]
    created = await client.post(
        f"{API}/tus",
        content=data,
        headers={**TUS, "Upload-Length": str(len(data)), "Content-Type": OFFSET_STREAM},
    )
    assert created.status_code in (415, 422), created.text
    assert internal.requests == [], "ffprobe fetched a URL named inside the uploaded file"
    assert media_rows(migrated_url) == []
    assert list(backends.object_store.list()) == []


# --- the type is known before the bytes are taken -------------------------------------------------


async def test_a_multipart_body_that_is_not_media_is_refused_after_its_first_64_kb(
    client, migrated_url, data_dir
) -> None:
    boundary = "sec-boundary-7d1f"
    status, body, pulled = await stream(
        client,
        "POST",
        f"{API}/upload",
        {"content-type": f"multipart/form-data; boundary={boundary}"},
        multipart_chunks(boundary, "movie.mp4", text(32 * MiB)),
    )
    assert status == 415, body
    assert b"plain text" in body
    assert pulled < 1 * MiB, f"the API read {pulled} bytes of a body it could refuse after 64 KB"
    assert media_rows(migrated_url) == [] and staged(data_dir) == []


@pytest.mark.parametrize("how", ["creation-with-upload", "patch"])
async def test_a_tus_upload_that_is_not_media_is_refused_after_its_first_64_kb(
    client, migrated_url, data_dir, how
) -> None:
    length = 32 * MiB
    headers = {**TUS, "Upload-Length": str(length), "Content-Type": OFFSET_STREAM}
    if how == "creation-with-upload":
        status, body, pulled = await stream(client, "POST", f"{API}/tus", headers, text(length))
    else:
        created = await client.post(f"{API}/tus", headers={**TUS, "Upload-Length": str(length)})
        location = created.headers["location"]
        status, body, pulled = await stream(
            client, "PATCH", location, {**headers, "Upload-Offset": "0"}, text(length)
        )
    assert status == 415, body
    assert pulled < 1 * MiB, f"the API read {pulled} bytes of a chunk it could refuse after 64 KB"
    assert media_rows(migrated_url) == [] and staged(data_dir) == []


async def test_a_tus_head_spread_over_small_patches_is_sniffed_as_a_whole(client, migrated_url) -> None:
    length = 32 * MiB
    created = await client.post(f"{API}/tus", headers={**TUS, "Upload-Length": str(length)})
    location = created.headers["location"]
    headers = {**TUS, "Content-Type": OFFSET_STREAM}
    first = await client.patch(location, content=TEXT * 20, headers={**headers, "Upload-Offset": "0"})
    assert first.status_code == 204, first.text  # 880 bytes: too few to tell yet
    offset = first.headers["upload-offset"]
    status, body, pulled = await stream(
        client, "PATCH", location, {**headers, "Upload-Offset": offset}, text(length - MiB)
    )
    assert status == 415, body
    assert pulled < 1 * MiB
    assert media_rows(migrated_url) == []


# --- limits per user and per host -----------------------------------------------------------------


async def test_uploads_in_progress_per_user_are_capped(uploader, samples, migrated_url) -> None:
    async with uploader(upload_max_concurrent=2) as client:
        first = await client.post(f"{API}/tus", headers={**TUS, "Upload-Length": "100000"})
        second = await client.post(f"{API}/tus", headers={**TUS, "Upload-Length": "100000"})
        third = await client.post(f"{API}/tus", headers={**TUS, "Upload-Length": "100000"})
        video = samples["clip.mp4"].read_bytes()
        multipart = await client.post(f"{API}/upload", files={"file": ("clip.mp4", video, "video/mp4")})
        assert (first.status_code, second.status_code) == (201, 201)
        assert third.status_code == 429 and multipart.status_code == 429
        assert third.headers["content-type"].startswith("application/problem+json")
        assert "2 uploads in progress" in third.json()["detail"]
        # Someone else is not held up by this user's uploads.
        other = make_user(migrated_url, "other-author", ["author"])
        theirs = await client.post(
            f"{API}/upload",
            files={"file": ("clip.mp4", video, "video/mp4")},
            headers=bearer(mint_token(client.app, migrated_url, other)),
        )
        assert theirs.status_code == 201, theirs.text
        # Terminating an unfinished upload frees its slot.
        assert (await client.delete(first.headers["location"], headers=TUS)).status_code == 204
        again = await client.post(f"{API}/upload", files={"file": ("clip.mp4", video, "video/mp4")})
        assert again.status_code == 201, again.text


async def test_bytes_a_day_per_user_are_capped(uploader, samples, migrated_url) -> None:
    tone = samples["tone.wav"].read_bytes()
    assert 0.6 * MiB < len(tone) < 0.9 * MiB
    async with uploader(upload_daily_quota_mb=1) as client:
        declared = await client.post(f"{API}/tus", headers={**TUS, "Upload-Length": str(2 * MiB)})
        first = await client.post(f"{API}/upload", files={"file": ("tone.wav", tone, "audio/wav")})
        second = await client.post(f"{API}/upload", files={"file": ("tone.wav", tone, "audio/wav")})
        rest = await client.post(f"{API}/tus", headers={**TUS, "Upload-Length": str(len(tone))})
    assert declared.status_code == 413 and declared.json()["errors"][0]["field"] == "Upload-Length"
    assert first.status_code == 201, first.text
    assert second.status_code == 413 and "daily upload quota" in second.json()["detail"]
    assert rest.status_code == 413
    assert len(media_rows(migrated_url)) == 1


async def test_an_upload_that_would_fill_the_disk_is_refused_with_507(
    uploader, samples, migrated_url, data_dir
) -> None:
    video = samples["clip.mp4"].read_bytes()
    async with uploader(upload_min_free_mb=1024**4) as client:  # keep an exbibyte free: never so
        multipart = await client.post(f"{API}/upload", files={"file": ("clip.mp4", video, "video/mp4")})
        tus = await client.post(f"{API}/tus", headers={**TUS, "Upload-Length": str(len(video))})
    for res in (multipart, tus):
        assert res.status_code == 507, res.text
        assert res.headers["content-type"].startswith("application/problem+json")
        assert "disk space" in res.json()["detail"]
    assert media_rows(migrated_url) == [] and staged(data_dir) == []
