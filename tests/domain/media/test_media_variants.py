"""The variant rows and run state of the media pipeline, without Dagster: the swap, the completion
with the dubbed videos it names, the files no row names, the master rewrite and the checks."""

from __future__ import annotations

import uuid
from pathlib import Path

import sqlalchemy as sa

from domain import content
from domain.content import NewContent
from domain.ids import new_id
from domain.media import variants
from domain.media.events import MEDIA_PROCESSED
from domain.media.runs import ProcessingRun, RenditionRun
from domain.schema import MediaAsset, MediaJob, MediaVariant, OutboxEvent
from resources.database import OperationalDatabase
from resources.object_store import LocalObjectStore
from tests.conftest import record_test_upload

MASTER = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000,RESOLUTION=640x360\n360p.m3u8\n"


def uploaded(db: OperationalDatabase, kind: str, *, item=None, language=None) -> tuple[uuid.UUID, uuid.UUID]:
    with db.session() as session:
        asset, job = record_test_upload(
            session,
            kind=kind,
            mime="",
            filename=f"x.{kind}",
            content_item_id=str(item) if item else None,
            language=language,
        )
        return asset.id, job.id


def a_file(tmp_path: Path, name: str, data: bytes = b"data") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def rows_of(db: OperationalDatabase, media_id: uuid.UUID) -> list[tuple[str, str]]:
    with db.session() as session:
        found = session.scalars(sa.select(MediaVariant).where(MediaVariant.media_asset_id == media_id))
        return sorted((v.variant_type, v.s3_key) for v in found)


def test_start_reads_the_original_and_starts_only_the_named_job(db) -> None:
    media_id, job_id = uploaded(db, "video")
    run = ProcessingRun(db.session, media_id, str(job_id))
    found = run.start("metadata", 2.0)
    assert found is not None and found.kind == "video" and found.key.startswith(f"media/{media_id}/")
    with db.session() as session:
        job = session.get(MediaJob, job_id)
        assert (job.status, job.stage, job.percent, job.error) == ("processing", "metadata", 2.0, None)
        assert job.started_at is not None
    assert ProcessingRun(db.session, new_id(), None).start("metadata", 2.0) is None


def test_record_metadata_merges_the_summary_and_moves_the_job_in_one_go(db) -> None:
    media_id, job_id = uploaded(db, "video")
    ProcessingRun(db.session, media_id, str(job_id)).record_metadata(
        {"duration_s": 2.0}, "audio", "metadata", 10.0
    )
    with db.session() as session:
        asset, job = session.get(MediaAsset, media_id), session.get(MediaJob, job_id)
        assert asset.meta["duration_s"] == 2.0 and asset.content_type == "audio"
        assert asset.upload_status == "processing" and (job.stage, job.percent) == ("metadata", 10.0)


def test_replace_swaps_only_the_named_variant_types(db, tmp_path) -> None:
    media_id, job_id = uploaded(db, "video")
    run = ProcessingRun(db.session, media_id, str(job_id))
    path = a_file(tmp_path, "poster.jpg")
    old = [variants.variant_row(media_id, f"media/{media_id}/thumbnails/a.jpg", path, "poster", "jpg")]
    hls = [variants.variant_row(media_id, f"media/{media_id}/renditions/r1/master.m3u8", path, "hls", "m3u8")]
    run.replace_variants(variants.THUMBNAIL_TYPES, old + hls, "thumbnails", 12.0)
    new = [variants.variant_row(media_id, f"media/{media_id}/thumbnails/b.jpg", path, "poster", "jpg")]
    run.replace_variants(variants.THUMBNAIL_TYPES, new, "thumbnails", 20.0)
    assert rows_of(db, media_id) == [
        ("hls", f"media/{media_id}/renditions/r1/master.m3u8"),
        ("poster", f"media/{media_id}/thumbnails/b.jpg"),
    ]
    with db.session() as session:
        assert session.get(MediaJob, job_id).percent == 20.0


def test_a_dub_completes_and_names_the_finished_videos_of_its_item_whose_masters_it_joins(
    db, tmp_path
) -> None:
    store = LocalObjectStore(root=str(tmp_path / "objects"))
    with db.session() as session:
        item = content.create_content(session, NewContent(type="video", title={"en": "Dubbed"})).id
    video_id, video_job = uploaded(db, "video", item=item)
    video = RenditionRun(db.session, video_id, str(video_job), "v1")
    out = tmp_path / "video"
    out.mkdir()
    (out / "master.m3u8").write_text(MASTER)
    video_rows = [video.row(out, "master.m3u8", "hls", "m3u8", "master")]
    assert video.publish("video", video_rows, {"duration_s": 2.0}) == []  # a video joins nothing

    dub_id, dub_job = uploaded(db, "audio", item=item, language="ar")
    dub = RenditionRun(db.session, dub_id, str(dub_job), "a1")
    (out / "audio.m3u8").write_text("#EXTM3U\n")
    dubbed_into = dub.publish("audio", [dub.row(out, "audio.m3u8", "hls", "m3u8", "audio")], {})
    assert dubbed_into == [video_id]
    with db.session() as session:
        assert session.get(MediaJob, dub_job).status == "completed"
        event = session.scalars(
            sa.select(OutboxEvent).where(
                OutboxEvent.event_type == MEDIA_PROCESSED, OutboxEvent.aggregate_id == str(dub_id)
            )
        ).one()
        assert event.payload["hls_master_key"] == f"media/{dub_id}/renditions/a1/audio.m3u8"

    store.put_bytes(video_rows[0].s3_key, MASTER.encode())
    assert variants.rewrite_masters(db.session, store, [video_id, new_id()]) == [video_id]
    text = store.get_bytes(video_rows[0].s3_key).decode()
    assert f'URI="../../../{dub_id}/renditions/a1/audio.m3u8"' in text and 'LANGUAGE="ar"' in text
    assert variants.rewrite_masters(db.session, store, [video_id]) == [video_id]
    assert store.get_bytes(video_rows[0].s3_key).decode() == text  # idempotent
    with db.session() as session:
        master = session.scalars(sa.select(MediaVariant).where(MediaVariant.media_asset_id == video_id)).one()
        assert master.file_size == len(text.encode())


def test_files_no_row_names_are_removed_and_named_ones_kept(db, tmp_path) -> None:
    store = LocalObjectStore(root=str(tmp_path / "objects"))
    media_id, job_id = uploaded(db, "audio")
    run = RenditionRun(db.session, media_id, str(job_id), "new")
    out = tmp_path / "out"
    out.mkdir()
    a_file(out, "audio.mp3")
    assert variants.put_files(store, run.prefix, out) == 4
    store.put_bytes(f"media/{media_id}/renditions/old/audio.mp3", b"old")
    run.publish("audio", [run.row(out, "audio.mp3", "mp3", "mp3")], {})
    assert variants.remove_unreferenced(db.session, store, media_id) == 1
    assert list(store.list(f"media/{media_id}/renditions/")) == [f"{run.prefix}/audio.mp3"]
    variants.remove_prefix(store, run.prefix)
    assert list(store.list(f"media/{media_id}/renditions/")) == []


def test_checks_name_incomplete_metadata_and_a_video_without_a_master(db, tmp_path) -> None:
    media_id, job_id = uploaded(db, "video")
    run = RenditionRun(db.session, media_id, str(job_id), "r")
    run.record_metadata({"duration_s": 0}, "video", "metadata", 10.0)
    checked, incomplete = variants.incomplete_metadata(db.session)
    assert (checked, incomplete) == (1, [str(media_id)])
    path = a_file(tmp_path, "360p.mp4")
    run.publish("video", [variants.variant_row(media_id, "k/360p.mp4", path, "hls", "mp4", "360p")], {})
    assert variants.rendition_problems(db.session) == (1, {str(media_id): "no HLS master"})
