"""The renditions asset on real files made by ffmpeg: every rendition is read back with ffprobe."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from assets.media import media_metadata, media_partitions, media_thumbnails
from assets.media_renditions import media_renditions, media_renditions_are_complete
from domain import content
from domain.content import NewContent
from domain.db import sync_engine
from domain.media import renditions
from domain.media.jobs import JOB_TAG
from domain.media.uploads import original_key
from domain.media.variants import RENDITION_TYPES
from domain.schema import ContentItem, MediaAsset, MediaJob, MediaVariant, OutboxEvent
from resources.object_store import LocalObjectStore
from tests.assets.conftest import store_upload
from tests.ffmpeg_frames import X264_FAST, ffmpeg, lavfi

pytestmark = pytest.mark.slow
ALL = [media_metadata, media_thumbnails, media_renditions]


def ffprobe(path: Path) -> dict:
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("renditions")
    f = {n: d / n for n in ("av.mp4", "silent.mp4", "portrait.mp4", "vfr.mkv", "speech.wav", "dub.wav")}
    ffmpeg(
        *lavfi("testsrc2=s=1280x720:r=30:d=6", "sine=f=300:d=6"),
        *X264_FAST,
        "-c:a",
        "aac",
        "-shortest",
        str(f["av.mp4"]),
    )
    ffmpeg(
        *lavfi("testsrc2=s=640x360:r=25:d=3"),
        *X264_FAST,
        str(f["silent.mp4"]),
    )
    ffmpeg("-i", str(f["silent.mp4"]), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(f["portrait.mp4"]))
    # Variable frame rate: frames at irregular times (dropped and held), 9 s long.
    ffmpeg(
        *lavfi("testsrc2=s=320x240:r=30:d=9"),
        "-vf",
        "select='not(mod(n\\,3))+between(n\\,100\\,130)',setpts=N/(20*TB)*0+PTS",
        "-fps_mode",
        "vfr",
        *X264_FAST,
        str(f["vfr.mkv"]),
    )
    # Quiet speech-like audio (-40 dBFS-ish): normalization must lift it to -23 LUFS.
    ffmpeg(*lavfi("sine=f=440:d=8,volume=0.02"), "-ac", "2", str(f["speech.wav"]))
    ffmpeg(*lavfi("sine=f=660:d=6"), "-ac", "2", str(f["dub.wav"]))
    return f


def upload(env, path: Path, kind: str, *, content_item_id=None, language=None) -> uuid.UUID:
    item = str(content_item_id) if content_item_id else None
    return store_upload(
        env, path.read_bytes(), kind, mime="", filename=path.name, content_item_id=item, language=language
    )


def process(env, media_id: uuid.UUID, assets=ALL, instance=None, tags=None) -> dg.ExecuteInProcessResult:
    database, store = env
    instance = instance or dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(media_partitions.name, [str(media_id)])
    return dg.materialize(
        assets,
        partition_key=str(media_id),
        instance=instance,
        tags=tags,
        resources={"database": database, "object_store": store},
        raise_on_error=False,
    )


def variants(database, media_id) -> list[MediaVariant]:
    with database.session() as session:
        return list(session.scalars(sa.select(MediaVariant).where(MediaVariant.media_asset_id == media_id)))


def local(store: LocalObjectStore, key: str) -> Path:
    return Path(store.root) / key


def test_video_ladder_plays_never_upscales_and_stores_each_rung_once(env, files) -> None:
    database, store = env
    media_id = upload(env, files["av.mp4"], "video")
    result = process(env, media_id)
    assert result.success
    rows = variants(database, media_id)
    rungs = sorted((v for v in rows if v.variant_type == "hls" and v.format == "mp4"), key=lambda v: v.height)
    assert [(v.quality, v.width, v.height) for v in rungs] == [
        ("360p", 640, 360),
        ("480p", 854, 480),
        ("720p", 1280, 720),
    ]
    for v in rungs:  # each rung plays on its own (it is also a progressive file) at the source's length
        probed = ffprobe(local(store, v.s3_key))
        video = next(s for s in probed["streams"] if s["codec_type"] == "video")
        assert (video["width"], video["height"]) == (v.width, v.height)
        assert {s["codec_type"] for s in probed["streams"]} == {"video", "audio"}
        assert float(probed["format"]["duration"]) == pytest.approx(6.0, abs=0.1)
    [master] = [v for v in rows if v.quality == "master"]
    # The whole ladder through the master playlist, as a player reads it (byte ranges into each file).
    assert float(ffprobe(local(store, master.s3_key))["format"]["duration"]) == pytest.approx(6.0, abs=0.1)
    text = local(store, master.s3_key).read_text()
    assert text.count("RESOLUTION=") == 3 and 'CODECS="mp4a.40.2"' in text  # 3 rungs + audio-only
    for name in ("720p", "480p", "360p"):  # 4 s segments, each starting on a keyframe
        playlist = local(store, master.s3_key).with_name(f"{name}.m3u8").read_text()
        durations = [float(d) for d in re.findall(r"#EXTINF:([0-9.]+)", playlist)]
        assert durations[0] == pytest.approx(4.0, abs=0.05) and "#EXT-X-INDEPENDENT-SEGMENTS" in playlist
    [mp4] = [v for v in rows if v.variant_type == "mp4"]
    assert mp4.s3_key == next(v.s3_key for v in rungs if v.quality == "720p")  # the same object, not a copy
    [audio_only] = [v for v in rows if v.variant_type == "audio_only"]
    assert [s["codec_type"] for s in ffprobe(local(store, audio_only.s3_key))["streams"]] == ["audio"]
    stored = sum(
        p.stat().st_size for p in local(store, f"media/{media_id}/renditions").rglob("*") if p.is_file()
    )
    ladder = sum(v.file_size for v in rungs) + audio_only.file_size
    assert stored < 1.5 * ladder
    with database.session() as session:
        job = session.scalar(sa.select(MediaJob).where(MediaJob.media_asset_id == media_id))
        assert (job.status, job.stage, job.percent, job.error) == ("completed", "done", 100.0, None)
        assert session.get(MediaAsset, media_id).upload_status == "completed"
        [event] = session.scalars(
            sa.select(OutboxEvent).where(OutboxEvent.event_type == "media.processed")
        ).all()
        assert event.payload["media_id"] == str(media_id) and event.payload["hls_master_key"] == master.s3_key
    shown = result.asset_materializations_for_node("media_renditions")[0].metadata
    assert shown["details"].value["rungs"] == ["720p", "480p", "360p"]
    assert media_renditions_are_complete(database=database).passed
    with database.session() as session:  # a second MP4 copy of a rung is what the check refuses
        fallback = session.scalar(sa.select(MediaVariant).where(MediaVariant.variant_type == "mp4"))
        fallback.s3_key = f"media/{media_id}/renditions/elsewhere/copy.mp4"
    checked = media_renditions_are_complete(database=database)
    assert not checked.passed and "not one of the HLS rungs" in str(checked.metadata["problems"].value)


def test_rerun_is_idempotent_and_removes_the_old_files(env, files) -> None:
    database, store = env
    media_id = upload(env, files["silent.mp4"], "video")
    instance = dg.DagsterInstance.ephemeral()
    assert process(env, media_id, instance=instance).success
    first = {v.s3_key for v in variants(database, media_id) if v.variant_type in RENDITION_TYPES}
    assert process(env, media_id, [media_renditions], instance=instance).success
    second = {v.s3_key for v in variants(database, media_id) if v.variant_type in RENDITION_TYPES}
    assert len(second) == len(first) and not first & second  # a new prefix each run
    on_disk = {
        p.relative_to(store.root).as_posix()
        for p in local(store, f"media/{media_id}/renditions").rglob("*")
        if p.is_file()
    }
    assert second <= on_disk and not first & on_disk
    assert all(k.rsplit("/", 1)[0] == next(iter(second)).rsplit("/", 1)[0] for k in on_disk)


def test_portrait_video_is_sized_by_its_short_side_and_turned_upright(env, files) -> None:
    database, store = env
    media_id = upload(env, files["portrait.mp4"], "video")
    assert process(env, media_id).success
    rungs = [v for v in variants(database, media_id) if v.variant_type == "hls" and v.format == "mp4"]
    assert [(v.quality, v.width, v.height) for v in rungs] == [("360p", 360, 640)]
    video = next(s for s in ffprobe(local(store, rungs[0].s3_key))["streams"] if s["codec_type"] == "video")
    assert (video["width"], video["height"]) == (360, 640)  # the pixels are upright, no rotation to apply
    rotation = [sd.get("rotation", 0) for sd in video.get("side_data_list", [])]
    assert all(r == 0 for r in rotation)


def test_variable_frame_rate_comes_out_constant_with_aligned_segments(env, files) -> None:
    database, store = env
    media_id = upload(env, files["vfr.mkv"], "video")
    assert process(env, media_id).success
    [rung] = [v for v in variants(database, media_id) if v.variant_type == "hls" and v.format == "mp4"]
    playlist = local(store, rung.s3_key).with_suffix(".m3u8").read_text()
    durations = [float(d) for d in re.findall(r"#EXTINF:([0-9.]+)", playlist)]
    assert all(d == pytest.approx(4.0, abs=0.1) for d in durations[:-1]) and len(durations) >= 2
    assert "audio_only" not in {
        v.variant_type for v in variants(database, media_id)
    }  # no sound, no audio rung


def test_audio_is_normalized_to_ebu_r128_as_mp3_and_aac(env, files) -> None:
    database, store = env
    media_id = upload(env, files["speech.wav"], "audio")
    assert process(env, media_id).success
    rows = {v.variant_type: v for v in variants(database, media_id)}
    assert set(rows) == {"mp3", "aac", "hls"}
    for kind in ("mp3", "aac"):
        path = local(store, rows[kind].s3_key)
        assert renditions.integrated_loudness(path) == pytest.approx(renditions.LOUDNESS["I"], abs=1.5)
        assert float(ffprobe(path)["format"]["duration"]) == pytest.approx(8.0, abs=0.1)
    assert ffprobe(local(store, rows["mp3"].s3_key))["streams"][0]["codec_name"] == "mp3"
    assert ffprobe(local(store, rows["aac"].s3_key))["streams"][0]["codec_name"] == "aac"


def test_a_dubbed_track_joins_the_video_master_without_touching_the_video(env, files) -> None:
    database, store = env
    engine = sync_engine(database.url)
    with Session(engine) as session, session.begin():
        item = content.create_content(session, NewContent(type="video", title={"en": "Dubbed"})).id
    engine.dispose()
    video_id = upload(env, files["av.mp4"], "video", content_item_id=item)
    assert process(env, video_id).success
    before = {
        v.s3_key: local(store, v.s3_key).stat().st_mtime_ns
        for v in variants(database, video_id)
        if v.format == "mp4"
    }
    dub_id = upload(env, files["dub.wav"], "audio", content_item_id=item, language="ar")
    result = process(env, dub_id)
    assert result.success
    assert result.asset_materializations_for_node("media_renditions")[0].metadata["dubbed_videos"].value == [
        str(video_id)
    ]
    [master] = [v for v in variants(database, video_id) if v.quality == "master"]
    text = local(store, master.s3_key).read_text()
    [entry] = [line for line in text.splitlines() if 'LANGUAGE="ar"' in line]
    uri = re.search(r'URI="([^"]+)"', entry).group(1)
    dub_playlist = (local(store, master.s3_key).parent / uri).resolve()
    assert dub_playlist.exists() and float(ffprobe(dub_playlist)["format"]["duration"]) == pytest.approx(
        6, abs=0.1
    )
    assert text.count('AUDIO="aud"') == 3  # every video rung offers the group
    after = {
        v.s3_key: local(store, v.s3_key).stat().st_mtime_ns
        for v in variants(database, video_id)
        if v.format == "mp4"
    }
    assert after == before  # the video was not re-encoded
    assert master.file_size == len(text.encode())
    with database.session() as session:
        linked = session.get(ContentItem, item).meta["media"]
        assert set(linked) == {str(video_id), str(dub_id)} and linked[str(dub_id)]["language"] == "ar"


def test_a_failing_encode_fails_the_job_keeps_the_original_and_shows_nothing_half_done(env, files) -> None:
    database, store = env
    media_id = upload(env, files["silent.mp4"], "video")
    instance = dg.DagsterInstance.ephemeral()
    assert process(env, media_id, [media_metadata], instance=instance).success
    original = local(store, original_key(media_id))
    good = original.read_bytes()
    original.write_bytes(good[:2000])  # the original goes bad between probe and encode
    result = process(env, media_id, [media_renditions], instance=instance)
    assert not result.success
    with database.session() as session:
        job = session.scalar(sa.select(MediaJob).where(MediaJob.media_asset_id == media_id))
        assert job.status == "failed" and job.error.startswith("renditions failed") and job.finished_at
        [event] = session.scalars(
            sa.select(OutboxEvent).where(OutboxEvent.event_type == "media.failed")
        ).all()
        assert event.payload["reason"] == job.error
    assert variants(database, media_id) == []
    assert not any(p.is_file() for p in local(store, f"media/{media_id}/renditions").rglob("*"))
    assert original.read_bytes() == good[:2000]  # the original is kept as it is


def test_run_tag_names_the_job_and_requested_formats_limit_the_work(env, files) -> None:
    database, _ = env
    media_id = upload(env, files["speech.wav"], "audio")
    with database.session() as session:
        job = MediaJob(media_asset_id=media_id, kind="transcode", requested={"formats": ["image"]})
        session.add(job)
        session.flush()
        job_id = str(job.id)
    result = process(env, media_id, [media_metadata, media_renditions], tags={JOB_TAG: job_id})
    assert result.success
    assert variants(database, media_id) == []  # an audio file has no image renditions to make
    with database.session() as session:
        assert session.get(MediaJob, uuid.UUID(job_id)).status == "completed"


def test_images_get_upright_stripped_sizes_and_a_blurhash(env, tmp_path) -> None:
    from PIL import Image

    database, store = env
    photo = tmp_path / "photo.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: a player must rotate 90 degrees
    exif[0x010F] = "PhoneMaker"
    Image.new("RGB", (800, 400), (200, 40, 40)).save(photo, exif=exif.tobytes())
    media_id = upload(env, photo, "image")
    assert process(env, media_id).success
    images = [v for v in variants(database, media_id) if v.variant_type == "image"]
    assert sorted({(v.width, v.height) for v in images}) == [(320, 640)]  # upright, and never upscaled
    assert sorted(v.format for v in images) == ["jpg", "webp"]
    for v in images:
        with Image.open(local(store, v.s3_key)) as im:
            assert im.size == (v.width, v.height) and not im.getexif()
    with database.session() as session:
        asset = session.get(MediaAsset, media_id)
        assert asset.upload_status == "completed" and len(asset.meta["blurhash"]) >= 20
