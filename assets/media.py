"""Media processing assets, one partition per media id (dynamic partitions added by
`media_uploads_sensor`). This first asset reads what the original really holds with ffprobe; the
thumbnails and renditions build on it."""

import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from shutil import copyfileobj

import dagster as dg
import sqlalchemy as sa

from domain.media import jobs as media_jobs
from domain.media.inspect import limits, validation
from domain.schema import MediaAsset, utcnow
from resources.database import OperationalDatabase
from resources.object_store import ObjectStore

MEDIA_GROUP = "media"
FFMPEG_POOL = "ffmpeg"
media_partitions = dg.DynamicPartitionsDefinition(name="media")


@contextmanager
def local_original(object_store: ObjectStore, key: str) -> Iterator[Path]:
    """The original as a local file in a private temp dir (ffmpeg wants a seekable local file):
    streamed from S3, linked from the local store; the dir, and whatever the caller writes beside
    the file, goes when the block ends."""
    with tempfile.TemporaryDirectory(prefix="thmnayah-media-") as tmp:
        local = Path(tmp) / "original"
        url = object_store.read_url(key)
        if url.startswith("file:"):  # the local store: no copy, the original is read where it lies
            local.symlink_to(url.removeprefix("file:"))
        else:
            with object_store.open(key) as source, local.open("wb") as out:
                copyfileobj(source, out, 1024 * 1024)
        yield local


class MediaRun:
    """The media of the partition and the job the run works on (named by the run's `JOB_TAG`): the
    media assets write that job, through `domain.media.jobs`, and no other job of the media."""

    def __init__(self, context: dg.AssetExecutionContext, database: OperationalDatabase) -> None:
        self.media_id = uuid.UUID(context.partition_key)
        self.job_id = context.run.tags.get(media_jobs.JOB_TAG)
        self.database = database

    def update(self, **values) -> None:
        with self.database.session() as session:
            media_jobs.update(session, self.media_id, self.job_id, **values)

    def stage(self, stage: str, percent: float) -> None:
        self.update(status="processing", stage=stage, percent=percent)

    def fail(self, reason: str, stage: str) -> None:
        """Job failed, asset failed, `media.failed`: one transaction."""
        with self.database.session() as session:
            media_jobs.fail(session, self.media_id, self.job_id, reason, stage=stage)


@dg.asset(
    partitions_def=media_partitions,
    group_name=MEDIA_GROUP,
    kinds={"ffmpeg", "python"},
    pool=FFMPEG_POOL,
)
def media_metadata(
    context: dg.AssetExecutionContext, database: OperationalDatabase, object_store: ObjectStore
) -> dg.MaterializeResult:
    """What the uploaded original holds, read by ffprobe: container, duration, codecs, resolution
    (short side), fps, rotation, audio channels and sample rate, chapters. Stored on the media asset
    row; the job shows stage `metadata`. A file that cannot be read fails the job with ffprobe's
    reason and keeps the original."""
    run = MediaRun(context, database)
    media_id = run.media_id
    with database.session() as session:
        asset = session.get(MediaAsset, media_id)
        if asset is None:
            raise dg.Failure(f"media {media_id} does not exist", metadata={"media_id": str(media_id)})
        key = asset.s3_key
    run.update(status="processing", stage="metadata", percent=2.0, started_at=utcnow(), error=None)
    try:
        with local_original(object_store, key) as local:
            validated = validation.validate(local)
    except (limits.InvalidMedia, limits.UnsupportedMedia, limits.MediaTooLarge, FileNotFoundError) as exc:
        reason = getattr(exc, "detail", None) or f"the original is missing from the object store ({exc})"
        run.fail(reason, stage="metadata")
        raise dg.Failure(description=reason, metadata={"media_id": str(media_id)}) from exc
    summary = validated.summary()
    with database.session() as session:
        asset = session.get(MediaAsset, media_id)
        asset.meta = {**(asset.meta or {}), **summary}
        asset.content_type = validated.kind
        asset.upload_status = "processing"
        asset.updated_at = utcnow()
    run.stage("metadata", 10.0)
    probe = validated.probe
    metadata: dict[str, dg.MetadataValue | str | float | int] = {
        "kind": validated.kind,
        "container": probe.container,
        "duration_s": dg.MetadataValue.float(probe.duration_s or 0.0),
    }
    if probe.video:
        metadata.update(
            resolution=f"{probe.video.display_width}x{probe.video.display_height}",
            short_side=probe.video.short_side,
            video_codec=probe.video.codec,
            fps=dg.MetadataValue.float(probe.video.fps),
            rotation=probe.video.rotation,
        )
    if probe.audio:
        metadata.update(
            audio_codec=probe.audio.codec, channels=probe.audio.channels, sample_rate=probe.audio.sample_rate
        )
    return dg.MaterializeResult(metadata=metadata)


@dg.asset_check(
    asset=media_metadata, description="Timed media has a positive duration; pictures have both sides."
)
def media_metadata_is_complete(
    context: dg.AssetCheckExecutionContext, database: OperationalDatabase
) -> dg.AssetCheckResult:
    with database.session() as session:
        rows = session.execute(
            sa.select(MediaAsset.id, MediaAsset.content_type, MediaAsset.meta).where(
                MediaAsset.upload_status.in_(("processing", "completed"))
            )
        ).all()
    incomplete = [
        str(media_id)
        for media_id, kind, meta in rows
        if (kind in ("video", "audio") and not (meta or {}).get("duration_s"))
        or (kind in ("video", "image") and not ((meta or {}).get("video") or {}).get("width"))
    ]
    return dg.AssetCheckResult(
        passed=not incomplete,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"checked": len(rows), "incomplete": dg.MetadataValue.json(incomplete[:50])},
    )


@dg.asset(
    partitions_def=media_partitions,
    group_name=MEDIA_GROUP,
    kinds={"ffmpeg", "webp", "jpeg"},
    pool=FFMPEG_POOL,
    deps=[media_metadata],
)
def media_thumbnails(
    context: dg.AssetExecutionContext, database: OperationalDatabase, object_store: ObjectStore
) -> dg.MaterializeResult:
    """Posters at 320/640/1280 px (never upscaled) as WebP and JPEG. For video, the most detailed of
    five candidate frames between 10% and 90% of the running time, each read by seeking the input so
    the time does not grow with the video's length; then a storyboard for scrubbing (a JPEG sprite of
    up to 100 tiles and the WebVTT that points into it, side by side under `thumbnails/`). Images get
    the posters; audio has none. The files are uploaded first and the variant rows (posters and
    storyboard) replaced in one transaction, so a failed run never shows half a set."""
    from domain.media import storyboard, thumbnails
    from domain.schema import MediaVariant

    run = MediaRun(context, database)
    media_id = run.media_id
    with database.session() as session:
        asset = session.get(MediaAsset, media_id)
        kind, key, meta = asset.content_type, asset.s3_key, dict(asset.meta or {})
    video = meta.get("video") or {}
    if kind == "audio" or not video.get("width"):
        return dg.MaterializeResult(metadata={"posters": 0, "reason": "no picture in this media"})
    run.stage("thumbnails", 12.0)
    width, height = (
        video.get("display_width") or video["width"],
        video.get("display_height") or video["height"],
    )
    started = time.perf_counter()
    with local_original(object_store, key) as local:
        tmp = local.parent
        chosen = thumbnails.pick_frame(local, meta.get("duration_s") or 0.0) if kind == "video" else None
        posters = thumbnails.render_posters(
            local,
            chosen.time_s if chosen else 0.0,
            tmp / "out",
            source_width=width,
            source_height=height,
        )
        rows = []
        for poster in posters:
            poster_key = f"media/{media_id}/thumbnails/{poster.path.name}"
            with poster.path.open("rb") as f:
                object_store.put_file(
                    poster_key, f, content_type=f"image/{'jpeg' if poster.format == 'jpg' else 'webp'}"
                )
            rows.append(MediaVariant(media_asset_id=media_id, variant_type="poster", format=poster.format,
                                     quality=f"{poster.width}w", s3_key=poster_key, file_size=poster.path.stat().st_size,
                                     width=poster.width, height=poster.height))  # fmt: skip
        board = None
        if kind == "video":
            duration = meta.get("duration_s") or 0.0
            board = storyboard.render_storyboard(
                local, duration, tmp / "storyboard", source_width=width, source_height=height
            )
            sprite_size = (board.columns * board.tile_width, board.rows * board.tile_height)
            # The VTT names the sprite by a relative URL: both keys must stay in the same folder.
            for path, fmt, content_type, (w, h) in (
                (board.sprite, "jpg", "image/jpeg", sprite_size),
                (board.vtt, "vtt", "text/vtt", (None, None)),
            ):
                board_key = f"media/{media_id}/thumbnails/{path.name}"
                with path.open("rb") as f:
                    object_store.put_file(board_key, f, content_type=content_type)
                rows.append(MediaVariant(media_asset_id=media_id, variant_type="storyboard", format=fmt,
                                         quality=f"{board.tile_width}x{board.tile_height}", s3_key=board_key,
                                         file_size=path.stat().st_size, width=w, height=h, duration_s=duration))  # fmt: skip
    with database.session() as session:
        session.execute(
            sa.delete(MediaVariant).where(
                MediaVariant.media_asset_id == media_id,
                MediaVariant.variant_type.in_(("poster", "storyboard")),
            )
        )
        session.add_all(rows)
    run.stage("thumbnails", 20.0)
    preview = f"media/{media_id}/thumbnails/poster-{rows[0].width}.jpg"
    return dg.MaterializeResult(
        metadata={
            "posters": len(posters),
            "frame_time_s": dg.MetadataValue.float(chosen.time_s if chosen else 0.0),
            "frame_detail": dg.MetadataValue.float(chosen.spread if chosen else 0.0),
            "storyboard_tiles": board.count if board else 0,
            "storyboard_interval_s": dg.MetadataValue.float(board.interval_s if board else 0.0),
            "seconds": dg.MetadataValue.float(round(time.perf_counter() - started, 3)),
            "preview_key": preview,
            "sizes": dg.MetadataValue.md(
                "\n".join(
                    f"- {r.variant_type} {f'{r.width}x{r.height} ' if r.width else ''}{r.format}: {r.file_size} B"
                    for r in rows
                )
            ),
        }
    )
