"""Renditions of one media partition: the HLS ladder (video), MP3 + AAC (audio), WebP + JPEG sizes
and a blurhash (images). See `domain.media.renditions` for the ladder and the commands.

Publishing is atomic: every file goes under a prefix of its own run (`media/<id>/renditions/<run>/`),
then the variant rows are swapped in one transaction with the job's completion and the
`media.processed` event, and only then are files no row refers to removed. A failed or killed run
leaves nothing visible (its prefix is removed on failure, or by the next run); re-running is
idempotent."""

import time
import uuid
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from assets.media import (
    FFMPEG_POOL,
    MEDIA_GROUP,
    MediaRun,
    local_original,
    media_metadata,
    media_partitions,
    media_thumbnails,
)
from domain.media import jobs, renditions
from domain.schema import MediaAsset, MediaVariant
from resources.database import OperationalDatabase
from resources.object_store import ObjectStore

RENDITION_TYPES = ("hls", "mp4", "audio_only", "mp3", "aac", "image")
_CONTENT_TYPES = {".m3u8": "application/vnd.apple.mpegurl", ".mp4": "video/mp4", ".mp3": "audio/mpeg",
                  ".jpg": "image/jpeg", ".webp": "image/webp"}  # fmt: skip


class _Run(MediaRun):
    """What one materialization works on (the media, its job, the run's own prefix)."""

    def __init__(self, context: dg.AssetExecutionContext, database: OperationalDatabase) -> None:
        super().__init__(context, database)
        self.prefix = f"media/{self.media_id}/renditions/{context.run.run_id.split('-')[0]}"

    def progress(self, stage: str, start: float, end: float) -> jobs.Progress:
        return jobs.Progress(lambda percent: self.stage(stage, percent), start, end)

    def row(
        self, out: Path, name: str, variant_type: str, fmt: str, quality: str = "", **extra
    ) -> MediaVariant:
        return MediaVariant(media_asset_id=self.media_id, variant_type=variant_type, format=fmt, quality=quality,
                            s3_key=f"{self.prefix}/{name}", file_size=(out / name).stat().st_size, **extra)  # fmt: skip


def _dub_tracks(session, asset: MediaAsset) -> list[renditions.AudioTrack]:
    """Dubbed audio of the same content item (audio uploads with a language), as master entries
    relative to a master at `media/<video>/renditions/<run>/master.m3u8`."""
    if asset.content_item_id is None:
        return []
    found = session.execute(
        sa.select(MediaAsset.id, MediaAsset.language, MediaVariant.s3_key)
        .join(MediaVariant, MediaVariant.media_asset_id == MediaAsset.id)
        .where(
            MediaAsset.content_item_id == asset.content_item_id,
            MediaAsset.content_type == "audio",
            MediaAsset.language.is_not(None),
            MediaVariant.variant_type == "hls",
        )
        .order_by(MediaAsset.created_at)
    ).all()
    names = {"ar": "العربية", "en": "English"}
    return [
        renditions.AudioTrack(language, names.get(language, language), f"../../../{key.split('/', 1)[1]}")
        for _, language, key in found
    ]


def _video(run: _Run, source: Path, out: Path, meta: dict) -> tuple[list[MediaVariant], dict]:
    video, duration = meta["video"], float(meta.get("duration_s") or 0.0)
    plan = renditions.plan_video(
        video.get("display_width") or video["width"],
        video.get("display_height") or video["height"],
        video.get("fps") or 30.0,
        has_audio=bool(meta.get("audio")),
        duration_s=duration,
    )
    renditions.run_with_progress(
        renditions.ladder_command(source, out, plan), duration, run.progress("renditions", 22.0, 92.0)
    )
    rows = []
    for r in plan.rungs:
        length = renditions.playlist_duration((out / f"{r.name}.m3u8").read_text())
        rows.append(run.row(out, f"{r.name}.mp4", "hls", "mp4", r.name, width=r.width, height=r.height,
                            duration_s=round(length, 3)))  # fmt: skip
    with run.database.session() as session:
        tracks = _dub_tracks(session, session.get(MediaAsset, run.media_id))
    master = out / "master.m3u8"
    master.write_text(renditions.with_audio_tracks(master.read_text(), tracks))
    top, fallback = plan.rungs[0], plan.fallback
    rows.append(run.row(out, "master.m3u8", "hls", "m3u8", "master", width=top.width, height=top.height,
                        duration_s=duration))  # fmt: skip
    # The progressive fallback is the rung's own file: one object, two rows, no second copy.
    rows.append(run.row(out, f"{fallback.name}.mp4", "mp4", "mp4", fallback.name, width=fallback.width,
                        height=fallback.height, duration_s=duration))  # fmt: skip
    if plan.has_audio:
        length = renditions.playlist_duration((out / "audio.m3u8").read_text())
        rows.append(run.row(out, "audio.mp4", "audio_only", "m4a", f"{renditions.AUDIO_ONLY_BITRATE_K}k",
                            duration_s=round(length, 3)))  # fmt: skip
    info = {
        "rungs": [r.name for r in plan.rungs],
        "fallback": fallback.name,
        "duration_s": duration,
        "dubs": [t.language for t in tracks],
    }
    return rows, info


def _audio(run: _Run, source: Path, out: Path, meta: dict) -> tuple[list[MediaVariant], dict]:
    duration = float(meta.get("duration_s") or 0.0)
    run.stage("loudness", 25.0)
    measured = renditions.measure_loudness(source)
    renditions.run_with_progress(
        renditions.audio_command(source, out, measured), duration, run.progress("renditions", 40.0, 92.0)
    )
    length = round(renditions.playlist_duration((out / "audio.m3u8").read_text()), 3)
    rows = [
        run.row(out, "audio.mp3", "mp3", "mp3", f"{renditions.MP3_BITRATE_K}k", duration_s=duration),
        run.row(out, "audio.mp4", "aac", "m4a", f"{renditions.AUDIO_BITRATE_K}k", duration_s=length),
        run.row(out, "audio.m3u8", "hls", "m3u8", "audio", duration_s=length),
    ]
    return rows, {
        "duration_s": duration,
        "input_lufs": measured["input_i"],
        "target_lufs": renditions.LOUDNESS["I"],
    }


def _image(run: _Run, source: Path, out: Path, meta: dict) -> tuple[list[MediaVariant], dict]:
    from domain.media import images

    run.stage("renditions", 40.0)
    made = images.render_image_variants(source, out)
    rows = [
        run.row(out, v.path.name, "image", v.format, f"{v.width}w", width=v.width, height=v.height)
        for v in made
    ]
    return rows, {"blurhash": images.blurhash_of(source), "sizes": sorted({v.width for v in made})}


def _publish_files(object_store: ObjectStore, prefix: str, out: Path) -> int:
    total = 0
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        with path.open("rb") as f:
            object_store.put_file(f"{prefix}/{path.relative_to(out).as_posix()}", f,
                                  content_type=_CONTENT_TYPES.get(path.suffix, "application/octet-stream"))  # fmt: skip
        total += path.stat().st_size
    return total


def _remove_unreferenced(
    database: OperationalDatabase, object_store: ObjectStore, media_id: uuid.UUID
) -> int:
    """Files under the media's renditions that no variant row names: earlier runs, killed runs."""
    with database.session() as session:
        live = set(
            session.scalars(sa.select(MediaVariant.s3_key).where(MediaVariant.media_asset_id == media_id))
        )
    live_prefixes = {key.rsplit("/", 1)[0] for key in live if "/renditions/" in key}
    removed = 0
    for key in list(object_store.list(f"media/{media_id}/renditions/")):
        if key.rsplit("/", 1)[0] not in live_prefixes:
            object_store.delete(key)
            removed += 1
    return removed


def rewrite_master(database: OperationalDatabase, object_store: ObjectStore, video_id: uuid.UUID) -> bool:
    """Re-write a video's published master with the dubbed tracks of its content item (idempotent)."""
    with database.session() as session:
        asset = session.get(MediaAsset, video_id)
        master = session.scalar(sa.select(MediaVariant).where(
            MediaVariant.media_asset_id == video_id, MediaVariant.variant_type == "hls",
            MediaVariant.format == "m3u8", MediaVariant.quality == "master"))  # fmt: skip
        if asset is None or master is None:
            return False
        tracks = _dub_tracks(session, asset)
        key = master.s3_key
    text = renditions.with_audio_tracks(object_store.get_bytes(key).decode(), tracks)
    object_store.put_bytes(key, text.encode(), content_type=_CONTENT_TYPES[".m3u8"])
    with database.session() as session:
        row = session.get(MediaVariant, master.id)
        if row is not None:
            row.file_size = len(text.encode())
    return True


@dg.asset(
    partitions_def=media_partitions,
    group_name=MEDIA_GROUP,
    kinds={"ffmpeg", "hls"},
    pool=FFMPEG_POOL,
    deps=[media_metadata, media_thumbnails],
    tags={"service": "media"},
)
def media_renditions(
    context: dg.AssetExecutionContext,
    database: dg.ResourceParam[OperationalDatabase],
    object_store: dg.ResourceParam[ObjectStore],
) -> dg.MaterializeResult:
    """Playable renditions. Video: an HLS ladder with fMP4 segments (1080p/720p/480p/360p by the
    short side, never upscaled, 4 s GOPs on 4 s segments, capped CRF under a bitrate target) from one
    decode, whose 720p file doubles as the progressive MP4, plus an audio-only rung; dubbed tracks of
    the same content item join the master as an `EXT-X-MEDIA` audio group. Audio: MP3 and AAC
    normalized to EBU R128. Images: WebP + JPEG sizes, upright, EXIF stripped, and a blurhash.
    Progress from ffmpeg's `-progress` output moves the job's percent (and its WebSocket)."""
    run = _Run(context, database)
    with database.session() as session:
        asset = session.get(MediaAsset, run.media_id)
        if asset is None:
            raise dg.Failure(f"media {run.media_id} does not exist")
        job = jobs.job_for(session, run.media_id, run.job_id)
        formats = (
            set((job.requested or {}).get("formats") or renditions.FORMATS)
            if job
            else set(renditions.FORMATS)
        )
        kind, key, meta = asset.content_type, asset.s3_key, dict(asset.meta or {})
    wanted = {"video": {"hls", "mp4"}, "audio": {"audio"}, "image": {"image"}}[kind] & formats
    started = time.perf_counter()
    info: dict = {}
    stored = 0
    try:
        rows: list[MediaVariant] = []
        if wanted:
            run.stage("renditions", 21.0)
            with local_original(object_store, key) as local:
                out = local.parent / "out"
                out.mkdir()
                rows, info = {"video": _video, "audio": _audio, "image": _image}[kind](run, local, out, meta)
                run.stage("publishing", 94.0)
                stored = _publish_files(object_store, run.prefix, out)
    except (renditions.FfmpegFailed, OSError, KeyError, ValueError) as exc:
        reason = f"renditions failed: {exc}"
        run.fail(reason, stage="renditions")
        for leftover in list(object_store.list(run.prefix + "/")):
            object_store.delete(leftover)
        raise dg.Failure(description=reason, metadata={"media_id": str(run.media_id)}) from exc

    with database.session() as session:  # one transaction: the new set appears whole, with the event
        replaced = {r.variant_type for r in rows}
        if replaced:
            session.execute(sa.delete(MediaVariant).where(
                MediaVariant.media_asset_id == run.media_id, MediaVariant.variant_type.in_(replaced)))  # fmt: skip
        session.add_all(rows)
        if info.get("blurhash"):
            asset = session.get(MediaAsset, run.media_id)
            asset.meta = {**(asset.meta or {}), "blurhash": info["blurhash"]}
        session.flush()
        master = next(
            (r for r in rows if r.quality == "master" or (kind == "audio" and r.variant_type == "hls")), None
        )
        jobs.complete(session, run.media_id, run.job_id, {
            "variants": len(rows), "hls_master_key": master.s3_key if master else None,
            "duration_s": info.get("duration_s")})  # fmt: skip
    removed = _remove_unreferenced(database, object_store, run.media_id)
    dubbed_videos = []
    if kind == "audio" and asset_language(database, run.media_id):
        dubbed_videos = [str(v) for v in _videos_of_same_item(database, run.media_id)
                         if rewrite_master(database, object_store, v)]  # fmt: skip
    ladder_bytes = sum({r.s3_key: r.file_size for r in rows}.values())
    return dg.MaterializeResult(metadata={
        "kind": kind,
        "variants": len(rows),
        "stored_bytes": dg.MetadataValue.int(ladder_bytes),
        "seconds": dg.MetadataValue.float(round(time.perf_counter() - started, 3)),
        "prefix": run.prefix,
        "removed_stale_files": removed,
        "dubbed_videos": dg.MetadataValue.json(dubbed_videos),
        "details": dg.MetadataValue.json({k: v for k, v in info.items() if k != "blurhash"} | {"bytes_written": stored}),
        "table": dg.MetadataValue.md("| type | format | quality | size | bytes |\n|---|---|---|---|---|\n" + "\n".join(
            f"| {r.variant_type} | {r.format} | {r.quality} | {r.width or ''}x{r.height or ''} | {r.file_size} |"
            for r in rows)),
    })  # fmt: skip


def asset_language(database: OperationalDatabase, media_id: uuid.UUID) -> str | None:
    with database.session() as session:
        asset = session.get(MediaAsset, media_id)
        return asset.language if asset and asset.content_item_id else None


def _videos_of_same_item(database: OperationalDatabase, media_id: uuid.UUID) -> list[uuid.UUID]:
    with database.session() as session:
        item = session.scalar(sa.select(MediaAsset.content_item_id).where(MediaAsset.id == media_id))
        return list(session.scalars(sa.select(MediaAsset.id).where(
            MediaAsset.content_item_id == item, MediaAsset.content_type == "video",
            MediaAsset.upload_status == "completed")))  # fmt: skip


@dg.asset_check(
    asset=media_renditions,
    description="Every processed video has an HLS master and a progressive MP4 that is one of its rungs "
    "(no second copy of a rung), and no rendition file is empty.",
)
def media_renditions_are_complete(database: dg.ResourceParam[OperationalDatabase]) -> dg.AssetCheckResult:
    with database.session() as session:
        rows = session.execute(
            sa.select(MediaVariant.media_asset_id, MediaVariant.variant_type, MediaVariant.format,
                      MediaVariant.quality, MediaVariant.s3_key, MediaVariant.file_size)
            .join(MediaAsset, MediaAsset.id == MediaVariant.media_asset_id)
            .where(MediaAsset.content_type == "video", MediaAsset.upload_status == "completed",
                   MediaVariant.variant_type.in_(RENDITION_TYPES))
        ).all()  # fmt: skip
    by_media: dict[uuid.UUID, list] = {}
    for row in rows:
        by_media.setdefault(row.media_asset_id, []).append(row)
    problems = {}
    for media_id, found in by_media.items():
        rungs = {r.s3_key for r in found if r.variant_type == "hls" and r.format == "mp4"}
        fallback = [r.s3_key for r in found if r.variant_type == "mp4"]
        if not any(r.quality == "master" for r in found):
            problems[str(media_id)] = "no HLS master"
        elif len(fallback) != 1 or fallback[0] not in rungs:
            problems[str(media_id)] = "the progressive MP4 is not one of the HLS rungs"
        elif any(r.file_size <= 0 for r in found):
            problems[str(media_id)] = "an empty rendition file"
    return dg.AssetCheckResult(
        passed=not problems,
        metadata={
            "videos": len(by_media),
            "problems": dg.MetadataValue.json(dict(list(problems.items())[:50])),
        },
    )
