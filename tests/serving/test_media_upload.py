"""Uploads through HTTP: multipart (streamed) and tus 1.0, validated by content, on both databases."""

from __future__ import annotations

import base64
import hashlib
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from litestar.testing import AsyncTestClient

from domain.db import sync_engine
from domain.schema import MediaAsset, MediaJob, OutboxEvent, TusUpload

API = "/api/v1/media"
TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture(scope="session")
def media_files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("media")
    files = {"video": root / "clip.mp4", "image": root / "photo.png", "text": root / "notes.mp4"}
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=25:duration=2",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=2",
            "-shortest",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-c:a",
            "aac",
            "-movflags",
            "+faststart",
            str(files["video"]),
        ],
        check=True,
    )
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=64x48",
            "-frames:v",
            "1",
            str(files["image"]),
        ],
        check=True,
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
    assert {(v["width"], v["format"]) for v in variants} == {
        (320, "jpg"),
        (320, "webp"),
    }  # the clip is 320 wide
    for v in variants:
        fetched = await anonymous.get(v["url"])  # no token: the signature is the permission
        assert fetched.status_code == 200 and len(fetched.content) == v["file_size"]
        assert fetched.headers["content-type"].startswith(
            "image/jpeg" if v["format"] == "jpg" else "image/webp"
        )
    url = variants[0]["url"]
    assert (await anonymous.get(url.replace("sig=", "sig=0"))).status_code == 403
    expired = url.split("expires=")[0] + "expires=1000&sig=" + url.split("sig=")[1]
    assert (await anonymous.get(expired)).status_code == 403
