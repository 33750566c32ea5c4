"""End to end: a tus upload over real HTTP, one tick of the media sensor, the partition's run,
then every variant the API lists is fetched over HTTP (signed URLs, byte ranges) and read by
ffprobe: the expected resolution and a duration within 0.1 s of the source."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import dagster as dg
import httpx
import pytest
import uvicorn

from domain.migrate import upgrade
from domain.settings import Settings
from orchestration.definitions import build_definitions
from orchestration.deployment import build_resources
from serving.app import create_app
from tests.serving.conftest import make_user, mint_token

pytestmark = pytest.mark.slow
TUS = {"Tus-Resumable": "1.0.0"}
SOURCE_S = 6.0


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def ffprobe(url: str) -> dict:
    done = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", url],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, f"{url}: {done.stderr}"
    return json.loads(done.stdout)


@pytest.fixture
def api(data_dir: Path, sqlite_url: str):
    settings = Settings(deployment="local", data_dir=data_dir, database_url=sqlite_url)
    upgrade(sqlite_url)
    app = create_app(settings)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the API did not start"
        time.sleep(0.05)
    user_id = make_user(sqlite_url, "uploader", ["author"])
    token = mint_token(app, sqlite_url, user_id)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"},
                      timeout=60) as client:  # fmt: skip
        yield settings, client
    server.should_exit = True
    thread.join(10)


def test_tus_upload_to_playable_variants(api, tmp_path) -> None:
    settings, client = api
    source = tmp_path / "source.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"testsrc2=s=1280x720:r=30:d={SOURCE_S}",
                    "-f", "lavfi", "-i", f"sine=f=440:d={SOURCE_S}", "-c:v", "libx264", "-preset", "ultrafast",
                    "-c:a", "aac", "-shortest", str(source)], check=True)  # fmt: skip
    data = source.read_bytes()

    # tus: create, then two chunks with sha256 checksums.
    created = client.post("/api/v1/media/tus", headers={**TUS, "Upload-Length": str(len(data)),
                                                         "Upload-Metadata": f"filename {b64('source.mp4')}"})  # fmt: skip
    assert created.status_code == 201, created.text
    location, offset, media_id = created.headers["location"], 0, None
    for chunk in (data[: len(data) // 2], data[len(data) // 2 :]):
        digest = base64.b64encode(hashlib.sha256(chunk).digest()).decode()
        res = client.patch(location, content=chunk, headers={**TUS, "Upload-Offset": str(offset),
                           "Content-Type": "application/offset+octet-stream", "Upload-Checksum": f"sha256 {digest}"})  # fmt: skip
        assert res.status_code == 204, res.text
        offset = int(res.headers["upload-offset"])
        media_id = res.headers.get("thmnayah-media-id") or media_id
    assert media_id

    # One sensor tick, then the partition's run, as the daemon would launch it.
    defs = build_definitions(settings)
    instance = dg.DagsterInstance.ephemeral()
    sensor = defs.resolve_sensor_def("media_uploads_sensor")
    with dg.build_sensor_context(instance=instance, resources=build_resources(settings)) as context:
        result = sensor(context)
    [request] = [r for r in result.run_requests if r.partition_key == media_id]
    for partitions in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(partitions.partitions_def_name, list(partitions.partition_keys))
    run = defs.resolve_job_def(sensor.job_name).execute_in_process(
        partition_key=request.partition_key, instance=instance, tags=request.tags
    )
    assert run.success

    listed = client.get(f"/api/v1/media/{media_id}/variants")
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["upload_status"] == "completed"
    by_type: dict[str, list[dict]] = {}
    for v in body["variants"]:
        by_type.setdefault(v["variant_type"], []).append(v)
    assert {"hls", "mp4", "audio_only", "poster"} <= set(by_type)
    base = str(client.base_url).rstrip("/")
    for v in by_type["hls"] + by_type["mp4"] + by_type["audio_only"]:
        probed = ffprobe(base + v["url"])
        assert float(probed["format"]["duration"]) == pytest.approx(SOURCE_S, abs=0.1), v
        video = [s for s in probed["streams"] if s["codec_type"] == "video"]
        if v["variant_type"] == "audio_only":
            assert not video and probed["streams"][0]["codec_type"] == "audio"
        elif v["quality"] == "master":  # the player picks the top rung of the ladder
            assert max(s["height"] for s in video) == 720
        else:
            assert (video[0]["width"], video[0]["height"]) == (v["width"], v["height"])
    assert sorted(v["quality"] for v in by_type["hls"] if v["format"] == "mp4") == ["360p", "480p", "720p"]
    for poster in by_type["poster"]:
        got = client.get(poster["url"])
        assert got.status_code == 200 and len(got.content) == poster["file_size"]
    # Byte ranges, as HLS players ask for them.
    rung = next(v for v in by_type["hls"] if v["quality"] == "360p")
    part = client.get(rung["url"], headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and len(part.content) == 100
    assert part.headers["content-range"] == f"bytes 0-99/{rung['file_size']}"
    assert client.get(rung["url"], headers={"Range": "bytes=999999999-"}).status_code == 416
    # The signature covers the folder: another media id, or the original, is refused.
    signed_base = rung["url"].split("/renditions/")[0]
    assert client.get(f"{signed_base}/original").status_code == 404
    assert client.get(rung["url"].replace(media_id, str(uuid.uuid4()))).status_code == 403
