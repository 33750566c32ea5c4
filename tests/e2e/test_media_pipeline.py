"""End to end, over real HTTP: uploads and transcode requests go through the API, the media sensor
is evaluated as the daemon would (by its cursor) and the runs it requests go through the real job,
then every variant the API lists is fetched over HTTP (signed URLs, byte ranges) and read by
ffprobe. On the embedded backends (SQLite, local files) and on PostgreSQL + S3."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import httpx
import pytest

from domain.media.jobs import JOB_TAG
from domain.migrate import upgrade
from domain.settings import Settings
from orchestration.definitions import build_definitions
from orchestration.deployment import build_resources
from serving.app import create_app
from tests.conftest import NATS_URL, served
from tests.ffmpeg_frames import X264_FAST, ffmpeg, lavfi
from tests.serving.conftest import make_user, mint_token

pytestmark = pytest.mark.slow
TUS = {"Tus-Resumable": "1.0.0"}
SOURCE_S = 6.0


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def ffprobe(url: str) -> dict:
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"{url}: {done.stderr}"
    return json.loads(done.stdout)


def make_video(path: Path, size: str, seconds: float) -> Path:
    ffmpeg(
        *lavfi(f"testsrc2=s={size}:r=25:d={seconds}", f"sine=f=440:d={seconds}"),
        *X264_FAST,
        "-c:a",
        "aac",
        "-shortest",
        str(path),
        timeout=120,
    )
    return path


@contextmanager
def serving(settings: Settings) -> Iterator[httpx.Client]:
    """The API under uvicorn on a free port, and a client with an author's token."""
    upgrade(settings.database_url)
    app = create_app(settings)
    with served(app) as address:
        user_id = make_user(settings.database_url, "uploader", ["author"])
        token = mint_token(app, settings.database_url, user_id)
        with httpx.Client(
            base_url=f"http://{address}", headers={"Authorization": f"Bearer {token}"}, timeout=60
        ) as client:
            yield client


@pytest.fixture
def api(data_dir: Path, sqlite_url: str):
    settings = Settings(deployment="local", data_dir=data_dir, database_url=sqlite_url)
    with serving(settings) as client:
        yield settings, client


class Daemon:
    """What the Dagster daemon does with the media sensor: evaluate it with its cursor, then launch
    each run it requests (partition, tags, asset selection) through the real job."""

    def __init__(self, settings: Settings) -> None:
        self.defs = build_definitions(settings)
        self.instance = dg.DagsterInstance.ephemeral()
        self.resources = build_resources(settings)
        self.sensor = self.defs.resolve_sensor_def("media_uploads_sensor")
        self.cursor: str | None = None

    def tick(self) -> list[dg.RunRequest]:
        with dg.build_sensor_context(
            instance=self.instance, resources=self.resources, cursor=self.cursor
        ) as context:
            result = self.sensor(context)
        assert isinstance(result, dg.SensorResult), result
        self.cursor = result.cursor or self.cursor
        return list(result.run_requests or [])

    def launch(self, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
        run = self.defs.resolve_job_def(self.sensor.job_name).execute_in_process(
            partition_key=request.partition_key,
            instance=self.instance,
            tags=request.tags,
            asset_selection=request.asset_selection,
        )
        assert run.success
        return run


def upload(client: httpx.Client, path: Path) -> dict:
    with path.open("rb") as f:
        res = client.post("/api/v1/media/upload", files={"file": (path.name, f, "video/mp4")})
    assert res.status_code == 201, res.text
    return res.json()


def variants(client: httpx.Client, media_id: str) -> dict[str, list[dict]]:
    listed = client.get(f"/api/v1/media/{media_id}/variants")
    assert listed.status_code == 200, listed.text
    assert listed.json()["upload_status"] == "completed"
    by_type: dict[str, list[dict]] = {}
    for v in listed.json()["variants"]:
        by_type.setdefault(v["variant_type"], []).append(v)
    return by_type


def published(url: str) -> str:
    """What a signed folder URL names under the media's folder: `renditions/<run>/<file>`, ..."""
    return url.split("/", 8)[8]


def job_status(client: httpx.Client, job_id: str) -> dict:
    res = client.get(f"/api/v1/media/job/{job_id}/status")
    assert res.status_code == 200, res.text
    return res.json()


def test_tus_upload_to_playable_variants(api, tmp_path) -> None:
    settings, client = api
    source = tmp_path / "source.mp4"
    ffmpeg(
        *lavfi(f"testsrc2=s=1280x720:r=30:d={SOURCE_S}", f"sine=f=440:d={SOURCE_S}"),
        *X264_FAST,
        "-c:a",
        "aac",
        "-shortest",
        str(source),
    )
    data = source.read_bytes()

    # tus: create, then two chunks with sha256 checksums.
    created = client.post(
        "/api/v1/media/tus",
        headers={**TUS, "Upload-Length": str(len(data)), "Upload-Metadata": f"filename {b64('source.mp4')}"},
    )
    assert created.status_code == 201, created.text
    location, offset, media_id = created.headers["location"], 0, None
    for chunk in (data[: len(data) // 2], data[len(data) // 2 :]):
        digest = base64.b64encode(hashlib.sha256(chunk).digest()).decode()
        res = client.patch(
            location,
            content=chunk,
            headers={
                **TUS,
                "Upload-Offset": str(offset),
                "Content-Type": "application/offset+octet-stream",
                "Upload-Checksum": f"sha256 {digest}",
            },
        )
        assert res.status_code == 204, res.text
        offset = int(res.headers["upload-offset"])
        media_id = res.headers.get("thmnayah-media-id") or media_id
    assert media_id

    # One sensor tick, then the partition's run, as the daemon would launch it.
    daemon = Daemon(settings)
    [request] = daemon.tick()
    assert request.partition_key == media_id
    daemon.launch(request)

    by_type = variants(client, media_id)
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


RENDITIONS = ("hls", "mp4", "audio_only")


def test_transcode_requested_through_the_api_serves_new_renditions(api, tmp_path) -> None:
    settings, client = api
    seconds = 4.0
    media_id = upload(client, make_video(tmp_path / "talk.mp4", "854x480", seconds))["media_id"]
    daemon = Daemon(settings)
    daemon.launch(*daemon.tick())
    before = variants(client, media_id)
    old = {published(v["url"]): v["url"] for t in RENDITIONS for v in before[t]}

    accepted = client.post("/api/v1/media/transcode", json={"media_id": media_id, "formats": ["hls", "mp4"]})
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["job_id"]
    assert job_status(client, job_id)["status"] == "pending"
    [request] = daemon.tick()
    assert (request.partition_key, request.tags[JOB_TAG]) == (media_id, job_id)
    assert request.asset_selection == [dg.AssetKey("media_renditions")]  # no thumbnails were asked for
    daemon.launch(request)

    after = variants(client, media_id)
    new = {published(v["url"]): v for t in RENDITIONS for v in after[t]}
    old_runs = {path.split("/")[1] for path in old}
    new_runs = {path.split("/")[1] for path in new}
    assert len(old_runs) == len(new_runs) == 1 and old_runs != new_runs  # a new run's prefix
    assert sorted(v["quality"] for v in after["hls"] if v["format"] == "mp4") == ["360p", "480p"]
    assert {v["id"] for t in RENDITIONS for v in before[t]}.isdisjoint({v["id"] for v in new.values()})
    base = str(client.base_url).rstrip("/")
    for v in new.values():
        probed = ffprobe(base + v["url"])
        assert float(probed["format"]["duration"]) == pytest.approx(seconds, abs=0.1), v
    for url in old.values():  # the replaced set is no longer served
        assert client.get(url).status_code == 404
    # Posters were not asked for: the same files, still served.
    assert [published(v["url"]) for v in after["poster"]] == [published(v["url"]) for v in before["poster"]]
    assert all(client.get(v["url"]).status_code == 200 for v in after["poster"])
    status = job_status(client, job_id)
    assert (status["kind"], status["status"], status["stage"], status["percent"]) == (
        "transcode",
        "completed",
        "done",
        100.0,
    )
    assert status["error"] is None and status["finished_at"]


@pytest.mark.postgres
@pytest.mark.redis
def test_pipeline_on_postgresql_and_s3(
    data_dir, postgres_url, redis_url, s3_endpoint, aws_credentials, monkeypatch, tmp_path
) -> None:
    """The production backends: the operational DB on PostgreSQL, originals and variants in S3
    (moto's server, over HTTP), Redis behind the API's stores and channels. (The event bus is not on
    this path: its outbox is in the DB.)"""
    import boto3

    bucket = f"media-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    monkeypatch.setenv("THMNAYAH_DATABASE_URL", postgres_url)  # the prod resources read it as an EnvVar
    settings = Settings(
        deployment="prod",
        data_dir=data_dir,
        database_url=postgres_url,
        redis_url=redis_url,
        s3_bucket=bucket,
        s3_endpoint_url=s3_endpoint,
        clickhouse_host="127.0.0.1",
        nats_url=NATS_URL,
        secret_key="s" * 40,
    )
    seconds = 4.0
    with serving(settings) as client:
        accepted = upload(client, make_video(tmp_path / "talk.mp4", "854x480", seconds))
        media_id, job_id = accepted["media_id"], accepted["job_id"]
        assert s3.head_object(Bucket=bucket, Key=f"media/{media_id}/original")["ContentLength"] > 0
        daemon = Daemon(settings)
        [request] = daemon.tick()
        assert (request.partition_key, request.tags[JOB_TAG]) == (media_id, job_id)
        daemon.launch(request)

        by_type = variants(client, media_id)
        assert {"hls", "mp4", "audio_only", "poster", "storyboard"} <= set(by_type)
        assert sorted(v["quality"] for v in by_type["hls"] if v["format"] == "mp4") == ["360p", "480p"]
        base = str(client.base_url).rstrip("/")
        for v in [v for vs in by_type.values() for v in vs]:
            key = f"media/{media_id}/{published(v['url'])}"
            stored = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            got = client.get(v["url"])  # the signed URL, answered from S3
            assert got.status_code == 200 and len(got.content) == v["file_size"] and got.content == stored, v
            if v["variant_type"] in RENDITIONS:
                probed = ffprobe(base + v["url"])
                assert float(probed["format"]["duration"]) == pytest.approx(seconds, abs=0.1), v
        status = job_status(client, job_id)
        assert (status["status"], status["stage"], status["percent"]) == ("completed", "done", 100.0)
    assert not (data_dir / "objects").exists()  # nothing went to the local store
