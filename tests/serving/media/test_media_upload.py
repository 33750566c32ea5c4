"""Uploads through HTTP: multipart (streamed) and tus 1.0, validated by content, on both databases."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest
import sqlalchemy as sa
from litestar.testing import AsyncTestClient
from sqlalchemy.orm import Session

from domain.db import sync_engine
from domain.media import uploads
from domain.schema import MediaAsset, MediaJob, OutboxEvent, TusUpload
from resources.object_store import MULTIPART_DIR, ObjectStore, S3ObjectStore
from tests.ffmpeg_frames import X264_FAST, ffmpeg, lavfi

API = "/api/v1/media"
TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture(scope="session")
def media_files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("media")
    files = {"video": root / "clip.mp4", "image": root / "photo.png", "text": root / "notes.mp4"}
    ffmpeg(
        *lavfi("testsrc=size=320x240:rate=25:duration=2", "sine=frequency=440:duration=2"),
        "-shortest",
        *X264_FAST,
        "-c:a",
        "aac",
        "-movflags",
        "+faststart",
        str(files["video"]),
    )
    ffmpeg(
        *lavfi("testsrc=size=64x48"),
        "-frames:v",
        "1",
        str(files["image"]),
    )
    files["text"].write_text("this is not a video, whatever its name says\n" * 20)
    return files


def rows(url: str, model) -> list:
    engine = sync_engine(url)
    with engine.connect() as conn:
        result = list(conn.execute(sa.select(model)))
    engine.dispose()
    return result


def stored(client: AsyncTestClient, key: str) -> bytes:
    backends = client.app.dependencies["backends"].dependency()
    return backends.object_store.get_bytes(key)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def checksum(data: bytes) -> str:
    return "sha256 " + base64.b64encode(hashlib.sha256(data).digest()).decode()


async def test_multipart_upload_is_streamed_validated_and_recorded(client, media_files, migrated_url) -> None:
    data = media_files["video"].read_bytes()
    res = await client.post(
        f"{API}/upload",
        files={"file": ("../../etc/My Clip.mp4", data, "application/octet-stream")},
        data={"language": "ar"},
    )
    assert res.status_code == 201, res.text
    body = res.json()
    assert body["kind"] == "video" and body["size"] == len(data)
    status = (await client.get(body["status_url"])).json()
    assert status["status"] == "pending" and status["stage"] == "queued" and status["queue_position"] == 0
    media = (await client.get(f"{API}/{body['media_id']}")).json()
    assert media["sha256"] == hashlib.sha256(data).hexdigest() and media["language"] == "ar"
    assert "/" not in media["original_filename"] and media["original_filename"].endswith(".mp4")
    [asset] = rows(migrated_url, MediaAsset)
    assert asset.s3_key == f"media/{body['media_id']}/original"  # the key comes from the id, not the name
    assert stored(client, asset.s3_key) == data
    assert [e.event_type for e in rows(migrated_url, OutboxEvent) if e.aggregate_type == "media"] == [
        "media.uploaded"
    ]


@pytest.mark.parametrize(("name", "status"), [("text", 415)])
async def test_refused_uploads_leave_nothing_behind(
    client, media_files, migrated_url, data_dir, name, status
) -> None:
    res = await client.post(
        f"{API}/upload", files={"file": ("clip.mp4", media_files[name].read_bytes(), "video/mp4")}
    )
    assert res.status_code == status, res.text
    assert res.headers["content-type"].startswith("application/problem+json")
    assert rows(migrated_url, MediaAsset) == [] and rows(migrated_url, MediaJob) == []
    assert list((data_dir / "uploads").iterdir()) == []


async def test_empty_and_fieldless_uploads(client, migrated_url) -> None:
    empty = await client.post(f"{API}/upload", files={"file": ("empty.mp4", b"", "video/mp4")})
    assert empty.status_code == 422, empty.text
    none = await client.post(f"{API}/upload", files={"other": ("x.bin", b"abc", "application/octet-stream")})
    assert none.status_code == 422
    assert (await client.post(f"{API}/upload", json={"file": "x"})).status_code == 415
    assert rows(migrated_url, MediaAsset) == []


async def test_tus_resumable_upload_with_checksums(client, media_files, migrated_url) -> None:
    data = media_files["video"].read_bytes()
    options = await client.options(f"{API}/tus")
    assert options.status_code == 204
    assert (
        "checksum" in options.headers["tus-extension"]
        and options.headers["tus-checksum-algorithm"] == "sha256"
    )
    item = (await client.post("/api/v1/content", json={"type": "video", "title": {"en": "Uploaded"}})).json()

    created = await client.post(
        f"{API}/tus",
        headers={
            **TUS,
            "Upload-Length": str(len(data)),
            "Upload-Metadata": f"filename {b64('clip.mp4')},content_item_id {b64(item['id'])}",
        },
    )
    assert created.status_code == 201, created.text
    location = created.headers["location"]
    assert created.headers["upload-offset"] == "0" and created.headers["upload-expires"]

    half = len(data) // 2
    bad = await client.patch(
        location,
        content=data[:half],
        headers={
            **TUS,
            "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream",
            "Upload-Checksum": checksum(b"something else"),
        },
    )
    assert bad.status_code == 460
    head = await client.head(location, headers=TUS)
    assert head.headers["upload-offset"] == "0"  # the refused chunk left nothing

    first = await client.patch(
        location,
        content=data[:half],
        headers={
            **TUS,
            "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream",
            "Upload-Checksum": checksum(data[:half]),
        },
    )
    assert first.status_code == 204 and first.headers["upload-offset"] == str(half)
    stale = await client.patch(
        location,
        content=data[half:],
        headers={**TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
    )
    assert stale.status_code == 409
    assert (await client.head(location, headers=TUS)).headers["upload-offset"] == str(half)

    rest = await client.patch(
        location,
        content=data[half:],
        headers={**TUS, "Upload-Offset": str(half), "Content-Type": "application/offset+octet-stream"},
    )
    assert rest.status_code == 204, rest.text
    media_id = rest.headers["thmnayah-media-id"]
    [asset] = rows(migrated_url, MediaAsset)
    assert str(asset.id) == media_id and str(asset.content_item_id) == item["id"]
    assert stored(client, asset.s3_key) == data and asset.sha256 == hashlib.sha256(data).hexdigest()
    again = await client.patch(
        location,
        content=b"x",
        headers={**TUS, "Upload-Offset": str(len(data)), "Content-Type": "application/offset+octet-stream"},
    )
    assert again.status_code == 409


async def test_tus_creation_with_upload_termination_and_rules(
    client, anonymous, token_for, media_files, migrated_url
) -> None:
    image = media_files["image"].read_bytes()
    one_shot = await client.post(
        f"{API}/tus",
        content=image,
        headers={
            **TUS,
            "Upload-Length": str(len(image)),
            "Content-Type": "application/offset+octet-stream",
            "Upload-Metadata": f"filename {b64('photo.png')}",
        },
    )
    assert one_shot.status_code == 201 and one_shot.headers["upload-offset"] == str(len(image))
    assert [a.content_type for a in rows(migrated_url, MediaAsset)] == ["image"]

    created = await client.post(f"{API}/tus", headers={**TUS, "Upload-Length": "1000"})
    location = created.headers["location"]
    assert (
        await client.patch(
            location,
            content=b"x",
            headers={"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
        )
    ).status_code == 412  # no Tus-Resumable
    assert (
        await client.patch(
            location, content=b"x", headers={**TUS, "Upload-Offset": "0", "Content-Type": "text/plain"}
        )
    ).status_code == 415
    assert (
        await client.patch(
            location,
            content=b"x" * 1001,
            headers={**TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
        )
    ).status_code == 413
    other = {"Authorization": f"Bearer {token_for('author')}", **TUS}
    assert (await anonymous.head(location, headers=other)).status_code == 404  # not your upload
    assert (await client.delete(location, headers=TUS)).status_code == 204
    assert (await client.head(location, headers=TUS)).status_code == 404
    too_big = await client.post(f"{API}/tus", headers={**TUS, "Upload-Length": str(6 * 1024**3)})
    assert too_big.status_code == 422


async def test_expired_tus_upload_is_gone(client, migrated_url) -> None:
    created = await client.post(f"{API}/tus", headers={**TUS, "Upload-Length": "10"})
    location = created.headers["location"]
    engine = sync_engine(migrated_url)
    with engine.begin() as conn:
        conn.execute(sa.update(TusUpload).values(expires_at=datetime.now(UTC) - timedelta(minutes=1)))
    engine.dispose()
    res = await client.patch(
        location,
        content=b"0123456789",
        headers={**TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
    )
    assert res.status_code == 410


async def test_job_progress_is_pushed_over_a_websocket(client, media_files, migrated_url) -> None:
    data = media_files["video"].read_bytes()
    body = (await client.post(f"{API}/upload", files={"file": ("clip.mp4", data, "video/mp4")})).json()
    token = client.headers["Authorization"].split(" ", 1)[1]
    engine = sync_engine(migrated_url)
    with await client.websocket_connect(f"{API}/job/{body['job_id']}/ws?token={token}") as ws:
        first = ws.receive_json()
        assert first["type"] == "status" and first["stage"] == "queued" and first["queue_position"] == 0
        with engine.begin() as conn:  # what a Dagster run worker writes as ffmpeg progresses
            conn.execute(sa.update(MediaJob).values(status="processing", stage="renditions", percent=42.5))
        update = ws.receive_json()
        assert (update["status"], update["stage"], update["percent"], update["queue_position"]) == (
            "processing",
            "renditions",
            42.5,
            None,
        )
        with engine.begin() as conn:
            conn.execute(
                sa.update(MediaJob).values(status="failed", stage="renditions", error="ffmpeg exited 1")
            )
        final = ws.receive_json()
        assert final["status"] == "failed" and final["error"] == "ffmpeg exited 1"
    engine.dispose()


async def test_variants_after_processing_have_working_signed_urls(
    client, anonymous, media_files, migrated_url, data_dir
) -> None:
    import dagster as dg

    from assets.media import media_metadata, media_partitions, media_thumbnails
    from resources.database import OperationalDatabase
    from resources.object_store import LocalObjectStore

    body = (
        await client.post(
            f"{API}/upload", files={"file": ("clip.mp4", media_files["video"].read_bytes(), "video/mp4")}
        )
    ).json()
    media_id = body["media_id"]
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(media_partitions.name, [media_id])
    run = dg.materialize(
        [media_metadata, media_thumbnails],
        partition_key=media_id,
        instance=instance,
        resources={
            "database": OperationalDatabase(url=migrated_url),
            "object_store": LocalObjectStore(root=str((data_dir / "objects").resolve())),
        },
    )
    assert run.success

    listed = await client.get(f"{API}/{media_id}/variants")
    assert listed.status_code == 200, listed.text
    variants = listed.json()["variants"]
    posters = {(v["width"], v["format"]) for v in variants if v["variant_type"] == "poster"}
    assert posters == {(320, "jpg"), (320, "webp")}  # the clip is 320 wide
    assert {v["format"] for v in variants if v["variant_type"] == "storyboard"} == {"jpg", "vtt"}
    types = {"jpg": "image/jpeg", "webp": "image/webp", "vtt": "text/vtt"}
    for v in variants:
        fetched = await anonymous.get(v["url"])  # no token: the signature is the permission
        assert fetched.status_code == 200 and len(fetched.content) == v["file_size"]
        assert fetched.headers["content-type"].startswith(types[v["format"]])
    url = variants[0]["url"]  # /api/v1/media/files/<media>/<expires>/<sig>/thumbnails/...
    prefix = "/".join(url.split("/")[:6])
    expires, sig = url.split("/")[6], url.split("/")[7]
    rest = "/".join(url.split("/")[8:])
    forged = ("1" if sig[0] == "0" else "0") + sig[1:]
    assert (await anonymous.get(f"{prefix}/{expires}/{forged}/{rest}")).status_code == 403
    assert (await anonymous.get(f"{prefix}/1000/{sig}/{rest}")).status_code == 403
    assert (await anonymous.get(f"{prefix}/{expires}/{sig}/original")).status_code == 404


# ------------------------------------------------------------ tus chunks as object-store multipart parts

MiB = 1024 * 1024
OFFSET_STREAM = "application/offset+octet-stream"


@pytest.fixture(scope="session")
def long_wav(tmp_path_factory) -> Path:
    """About 17.4 MiB of real audio: two whole 8 MiB parts and a tail."""
    path = tmp_path_factory.mktemp("tus") / "talk.wav"
    ffmpeg(
        *lavfi("sine=frequency=440:sample_rate=48000:duration=95"),
        "-ac",
        "2",
        "-c:a",
        "pcm_s16le",
        str(path),
    )
    assert 2 * uploads.PART_BYTES < path.stat().st_size < 3 * uploads.PART_BYTES
    return path


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, client: AsyncTestClient) -> ObjectStore:
    """The app's object store: the local directory, or S3 (moto's server, over HTTP)."""
    backends = client.app.dependencies["backends"].dependency()
    if request.param == "s3":
        request.getfixturevalue("aws_credentials")
        backends.object_store = S3ObjectStore(
            bucket=f"tus-{uuid.uuid4().hex[:16]}",
            endpoint_url=request.getfixturevalue("s3_endpoint"),
            create_bucket=True,
        )
    return backends.object_store


def open_multipart_uploads(store: ObjectStore) -> list:
    if isinstance(store, S3ObjectStore):
        return store.client().list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])
    return list((Path(store.root) / MULTIPART_DIR).glob("*"))


def sent_parts(store: ObjectStore, row: TusUpload) -> list[int]:
    """Part numbers the object store holds for the upload, recorded or not."""
    return [number for number, _, _ in store.list_parts(row.staging_key, row.multipart_upload_id)]


def tus_row(url: str, upload_id: str) -> TusUpload | None:
    engine = sync_engine(url)
    with Session(engine) as session:
        row = session.get(TusUpload, uuid.UUID(upload_id))
    engine.dispose()
    return row


def staged_files(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "uploads").iterdir())


async def tus_create(client: AsyncTestClient, length: int, filename: str = "talk.wav") -> str:
    created = await client.post(
        f"{API}/tus",
        headers={**TUS, "Upload-Length": str(length), "Upload-Metadata": f"filename {b64(filename)}"},
    )
    assert created.status_code == 201, created.text
    return created.headers["location"]


async def tus_patch(
    client: AsyncTestClient, location: str, offset: int, data: bytes, *, check: bytes | None = None
):
    headers = {**TUS, "Upload-Offset": str(offset), "Content-Type": OFFSET_STREAM}
    if check is not None:
        headers["Upload-Checksum"] = checksum(check)
    return await client.patch(location, content=data, headers=headers)


def asgi_patch(client: AsyncTestClient, location: str, offset: int, length: int, messages: list):
    """Start a PATCH through the ASGI interface, as a server drives the app, with the request
    messages given (`http.disconnect` is what a server sends when the client's connection drops; a
    callable is awaited for its message). Runs on the test client's event loop; returns a future of
    the response messages."""
    headers = [
        (b"host", b"testserver.local"),
        (b"authorization", client.headers["Authorization"].encode()),
        (b"tus-resumable", b"1.0.0"),
        (b"upload-offset", str(offset).encode()),
        (b"content-type", OFFSET_STREAM.encode()),
        (b"content-length", str(length).encode()),
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "PATCH",
        "scheme": "http",
        "path": location,
        "raw_path": location.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("testserver.local", 80),
        "extensions": {},
    }
    sent: list[dict] = []

    async def receive() -> dict:
        message = messages.pop(0) if messages else {"type": "http.disconnect"}
        return await message() if callable(message) else message

    async def send(message: dict) -> None:
        sent.append(message)

    async def run() -> list[dict]:
        await client.app(scope, receive, send)
        return sent

    return client.blocking_portal.start_task_soon(run)


async def test_tus_chunks_become_parts_and_an_identical_original(
    client, store, long_wav, migrated_url, data_dir
) -> None:
    data = long_wav.read_bytes()
    part = uploads.PART_BYTES
    location = await tus_create(client, len(data))
    upload_id = location.rsplit("/", 1)[1]
    held = lambda: sum(p.stat().st_size for p in staged_files(data_dir))  # noqa: E731

    # 1. 5 MiB + 3: no part is full yet; the bytes wait in the tail on the API host.
    a = 5 * MiB + 3
    first = await tus_patch(client, location, 0, data[:a], check=data[:a])
    assert first.status_code == 204 and first.headers["upload-offset"] == str(a)
    assert tus_row(migrated_url, upload_id).parts == [] and held() == a

    # 2. A chunk that fills part 1 but fails its checksum: 460, nothing recorded, the tail as it was.
    b = a + 7 * MiB
    bad = await tus_patch(client, location, a, data[a:b], check=b"not these bytes")
    assert bad.status_code == 460, bad.text
    row = tus_row(migrated_url, upload_id)
    assert (row.offset, row.parts) == (a, []) and held() == a
    assert sent_parts(store, row) == [1]  # sent before the checksum could be known, never listed
    assert (await client.head(location, headers=TUS)).headers["upload-offset"] == str(a)

    good = await tus_patch(client, location, a, data[a:b], check=data[a:b])
    assert good.status_code == 204 and good.headers["upload-offset"] == str(b)
    row = tus_row(migrated_url, upload_id)
    assert [(p["number"], p["size"]) for p in row.parts] == [(1, part)]
    assert held() == b - part < part  # only the unfilled tail stays on the API host

    # 3. The connection drops after 6 MiB (part 2 was filled and sent): the chunk is dropped.
    cut = 6 * MiB
    dropped = asgi_patch(
        client,
        location,
        b,
        len(data) - b,
        [{"type": "http.request", "body": data[b : b + cut], "more_body": True}, {"type": "http.disconnect"}],
    )
    assert b"client disconnected" in dropped.result(timeout=60)[-1]["body"]  # what the server saw
    row = tus_row(migrated_url, upload_id)
    assert (row.offset, len(row.parts)) == (b, 1) and held() == b - part
    assert sent_parts(store, row) == [1, 2]
    head = await client.head(location, headers=TUS)
    assert head.headers["upload-offset"] == str(b)

    # 4. Resume from the stored offset to the end: the last part is the tail.
    rest = await tus_patch(client, location, b, data[b:])
    assert rest.status_code == 204, rest.text
    media_id = rest.headers["thmnayah-media-id"]
    row = tus_row(migrated_url, upload_id)
    assert [(p["number"], p["size"]) for p in row.parts] == [(1, part), (2, part), (3, len(data) - 2 * part)]
    assert row.completed_at is not None and str(row.media_asset_id) == media_id
    [asset] = rows(migrated_url, MediaAsset)
    assert str(asset.id) == media_id and asset.content_type == "audio" and asset.file_size == len(data)
    original = store.get_bytes(asset.s3_key)
    assert hashlib.sha256(original).hexdigest() == hashlib.sha256(data).hexdigest() == asset.sha256
    # Nothing left behind: no multipart upload, no staged object, no tail.
    assert open_multipart_uploads(store) == []
    assert list(store.list()) == [asset.s3_key]
    assert staged_files(data_dir) == []
    if isinstance(store, S3ObjectStore):
        head = store.client().head_object(Bucket=store.bucket, Key=asset.s3_key)
        assert head["ContentType"] == "audio/wav"


async def test_tus_termination_aborts_the_multipart_upload(
    client, store, long_wav, migrated_url, data_dir
) -> None:
    data = long_wav.read_bytes()
    location = await tus_create(client, len(data))
    assert len(open_multipart_uploads(store)) == 1
    nine = 9 * MiB
    assert (await tus_patch(client, location, 0, data[:nine])).status_code == 204
    assert len(tus_row(migrated_url, location.rsplit("/", 1)[1]).parts) == 1
    assert (await client.delete(location, headers=TUS)).status_code == 204
    assert open_multipart_uploads(store) == []
    assert staged_files(data_dir) == [] and list(store.list()) == []
    assert (await client.head(location, headers=TUS)).status_code == 404
    assert (await tus_patch(client, location, nine, data[nine:])).status_code == 404


async def test_expired_tus_uploads_are_cleaned_up_with_their_parts(
    client, store, long_wav, migrated_url, data_dir
) -> None:
    from orchestration.jobs import tus_cleanup_job
    from resources.database import OperationalDatabase
    from resources.upload_staging import UploadStaging

    data = long_wav.read_bytes()
    stale = await tus_create(client, len(data))
    live = await tus_create(client, len(data))
    nine = 9 * MiB
    for location in (stale, live):
        assert (await tus_patch(client, location, 0, data[:nine])).status_code == 204
    engine = sync_engine(migrated_url)
    with engine.begin() as conn:
        conn.execute(
            sa.update(TusUpload)
            .where(TusUpload.id == uuid.UUID(stale.rsplit("/", 1)[1]))
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
    engine.dispose()
    assert (await tus_patch(client, stale, nine, data[nine:])).status_code == 410
    resources = {
        "database": OperationalDatabase(url=migrated_url),
        "upload_staging": UploadStaging(root=str(data_dir / "uploads")),
        "object_store": store,
    }
    run = await anyio.to_thread.run_sync(lambda: tus_cleanup_job.execute_in_process(resources=resources))
    assert run.success and run.output_for_node("purge_expired_uploads") == 1
    assert [row.id for row in rows(migrated_url, TusUpload)] == [uuid.UUID(live.rsplit("/", 1)[1])]
    assert len(open_multipart_uploads(store)) == 1  # the live one's
    assert [p.name.split(".")[0] for p in staged_files(data_dir)] == [live.rsplit("/", 1)[1]]
    done = await tus_patch(client, live, nine, data[nine:])
    assert done.status_code == 204 and open_multipart_uploads(store) == []


async def test_tus_upload_refused_by_content_leaves_nothing(client, store, migrated_url, data_dir) -> None:
    data = b"this is not a video, whatever its name says\n" * (10 * MiB // 44)
    location = await tus_create(client, len(data), filename="clip.mp4")
    res = await tus_patch(client, location, 0, data)
    assert res.status_code == 415, res.text
    assert rows(migrated_url, MediaAsset) == [] and rows(migrated_url, TusUpload) == []
    assert open_multipart_uploads(store) == [] and list(store.list()) == []
    assert staged_files(data_dir) == []


async def test_one_patch_at_a_time_per_upload(client, store, long_wav, migrated_url, data_dir) -> None:
    data = long_wav.read_bytes()
    location = await tus_create(client, len(data))
    upload_id = location.rsplit("/", 1)[1]
    hold = threading.Event()

    async def stall() -> dict:
        await anyio.to_thread.run_sync(hold.wait, 60)  # set below, or given up if the test failed first
        return {"type": "http.disconnect"}

    slow = asgi_patch(
        client, location, 0, 2 * MiB, [{"type": "http.request", "body": data[:MiB], "more_body": True}, stall]
    )
    try:
        deadline = time.monotonic() + 30
        while not list((data_dir / "uploads").glob("*.work")):  # the slow PATCH is writing
            assert not slow.done(), f"the slow PATCH ended before writing its chunk: {slow.result()}"
            assert time.monotonic() < deadline, "the slow PATCH did not start writing its chunk within 30 s"
            await asyncio.sleep(0.01)
        busy = await tus_patch(client, location, 0, data[: 2 * MiB])
        assert busy.status_code == 423, busy.text
    finally:
        hold.set()
    assert b"client disconnected" in (await asyncio.wrap_future(slow))[-1]["body"]
    assert tus_row(migrated_url, upload_id).offset == 0
    assert (await tus_patch(client, location, 0, data[: 2 * MiB])).status_code == 204
