"""The metadata and thumbnail assets, on real files made by ffmpeg (the media sensor's tests are in
tests/sensors/test_media_sensor.py)."""

from __future__ import annotations

import dagster as dg
import pytest
import sqlalchemy as sa

from assets.media import media_metadata, media_partitions
from domain.media.uploads import original_key
from domain.schema import MediaAsset, MediaJob
from tests.assets.conftest import store_upload
from tests.ffmpeg_frames import X264_FAST, count_decoded_frames, ffmpeg, lavfi


def test_metadata_asset_probes_the_original(env, clip) -> None:
    database, store = env
    media_id = store_upload(env, clip)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(media_partitions.name, [str(media_id)])
    result = dg.materialize(
        [media_metadata],
        partition_key=str(media_id),
        instance=instance,
        resources={"database": database, "object_store": store},
    )
    assert result.success
    [event] = result.get_asset_materialization_events()
    shown = event.materialization.metadata
    assert shown["resolution"].value == "320x180" and shown["duration_s"].value == pytest.approx(2.0, abs=0.1)
    with database.session() as session:
        asset = session.get(MediaAsset, media_id)
        job = session.scalar(sa.select(MediaJob).where(MediaJob.media_asset_id == media_id))
        assert asset.upload_status == "processing" and asset.meta["video"]["short_side"] == 180
        assert (job.status, job.stage, job.percent) == ("processing", "metadata", 10.0) and job.started_at


def test_unreadable_original_fails_the_job_with_a_reason_and_keeps_it(env, clip) -> None:
    database, store = env
    broken = clip[: len(clip) // 2]
    media_id = store_upload(env, broken)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(media_partitions.name, [str(media_id)])
    result = dg.materialize(
        [media_metadata],
        partition_key=str(media_id),
        instance=instance,
        resources={"database": database, "object_store": store},
        raise_on_error=False,
    )
    assert not result.success
    with database.session() as session:
        job = session.scalar(sa.select(MediaJob).where(MediaJob.media_asset_id == media_id))
        assert job.status == "failed" and "cannot be read" in job.error and job.finished_at
        assert session.get(MediaAsset, media_id).upload_status == "failed"
    assert store.get_bytes(original_key(media_id)) == broken  # the original stays


def test_thumbnails_avoid_black_frames_and_never_upscale(env, tmp_path) -> None:
    from assets.media import media_thumbnails
    from domain.schema import MediaVariant

    database, store = env
    # 4 s black, then 6 s of test card: most candidates (10%-90%) fall on the card.
    clip = tmp_path / "black-then-card.mp4"
    ffmpeg(
        *lavfi("color=c=black:s=640x360:r=25:d=4", "testsrc2=s=640x360:r=25:d=6"),
        "-filter_complex",
        "[0:v][1:v]concat=n=2:v=1[v]",
        "-map",
        "[v]",
        *X264_FAST,
        str(clip),
    )
    media_id = store_upload(env, clip.read_bytes())
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(media_partitions.name, [str(media_id)])
    result = dg.materialize(
        [media_metadata, media_thumbnails],
        partition_key=str(media_id),
        instance=instance,
        resources={"database": database, "object_store": store},
    )
    assert result.success
    shown = result.asset_materializations_for_node("media_thumbnails")[0].metadata
    assert shown["frame_time_s"].value > 4.0 and shown["frame_detail"].value > 10
    assert shown["storyboard_tiles"].value == 5 and shown["storyboard_interval_s"].value == 2.0
    with database.session() as session:
        variants = session.scalars(
            sa.select(MediaVariant).where(MediaVariant.media_asset_id == media_id)
        ).all()
        posters = [v for v in variants if v.variant_type == "poster"]
        sizes = sorted({(v.width, v.height) for v in posters})
        assert sizes == [(320, 180), (640, 360)]  # 1280 would upscale a 640-wide source
        assert sorted(v.format for v in posters) == ["jpg", "jpg", "webp", "webp"]
        for v in posters:
            data = store.get_bytes(v.s3_key)
            assert len(data) == v.file_size > 0
            assert data.startswith(b"\xff\xd8") if v.format == "jpg" else data[8:12] == b"WEBP"
        # The storyboard: a 5-tile sprite (10 s at one tile per 2 s) and the VTT beside it.
        board = {v.format: v for v in variants if v.variant_type == "storyboard"}
        assert sorted(board) == ["jpg", "vtt"] and len(variants) == 6
        sprite, vtt = board["jpg"], board["vtt"]
        assert (sprite.s3_key, vtt.s3_key) == (
            f"media/{media_id}/thumbnails/storyboard.jpg",
            f"media/{media_id}/thumbnails/storyboard.vtt",
        )
        assert (sprite.width, sprite.height) == (5 * 160, 90)
        sprite_bytes = store.get_bytes(sprite.s3_key)
        assert sprite_bytes.startswith(b"\xff\xd8") and len(sprite_bytes) == sprite.file_size
        text = store.get_bytes(vtt.s3_key).decode()
        assert len(text.encode()) == vtt.file_size and text.startswith("WEBVTT\n")
        targets = [line for line in text.splitlines() if "#xywh=" in line]
        # A relative reference: it resolves to the sprite beside the VTT, wherever the folder is served.
        assert targets == [f"storyboard.jpg#xywh={i * 160},0,160,90" for i in range(5)]
        assert "00:00:08.000 --> 00:00:10.000" in text
    # Idempotent: a re-run replaces the set instead of adding to it.
    dg.materialize(
        [media_thumbnails],
        partition_key=str(media_id),
        instance=instance,
        resources={"database": database, "object_store": store},
    )
    with database.session() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(MediaVariant)) == 6


def test_thumbnail_time_does_not_grow_with_length(tmp_path, monkeypatch) -> None:
    """A 10-hour video (tiny and quick to make: a frame every 5 s, 7200 in all) is seeked, not
    decoded: each ffmpeg run (a candidate, the posters) decodes from the keyframe before its time,
    at most one GOP, whatever the length. (The timing is bench/thumbnail.py's.)"""
    from domain.media import thumbnails

    gop = 120  # frames: a keyframe every 10 minutes
    long = tmp_path / "ten-hours.mkv"
    ffmpeg(
        *lavfi("testsrc2=s=320x180:r=0.2:d=36000"),
        *X264_FAST,
        "-g",
        str(gop),
        str(long),
        timeout=300,
    )
    frames = count_decoded_frames(monkeypatch, tmp_path)
    chosen = thumbnails.pick_frame(long, 36000.0)
    posters = thumbnails.render_posters(
        long, chosen.time_s, tmp_path / "out", source_width=320, source_height=180
    )
    assert 3600 <= chosen.time_s <= 32400 and chosen.spread > 10
    assert [p.width for p in posters] == [320, 320] and all(p.path.stat().st_size > 0 for p in posters)
    decoded = frames.per_run()
    # One video input per run; +2: the decoder's own look-ahead. Decoding up to the candidate times
    # would take 720 to 6480 frames.
    assert all(len(run) == 1 and run[0] <= gop + 2 for run in decoded), decoded
