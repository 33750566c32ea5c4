"""Media processing assets, one partition per media id (dynamic partitions added by
`media_uploads_sensor`). This first asset reads what the original really holds with ffprobe; the
thumbnails and renditions build on it.

Thin: the database work and the files are `domain.media.runs` and `domain.media.variants`; an asset
reads its partition, hands the run to the domain and reports what came of it."""

import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from shutil import copyfileobj

import dagster as dg

from domain.media import jobs, variants
from domain.media.inspect import limits, validation
from domain.media.runs import ProcessingRun
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


def processing_run(context: dg.AssetExecutionContext, database: OperationalDatabase) -> ProcessingRun:
    """The partition's media and the job named by the run's `JOB_TAG`."""
    return ProcessingRun(
        database.session, uuid.UUID(context.partition_key), context.run.tags.get(jobs.JOB_TAG)
    )


@dg.asset(
    partitions_def=media_partitions,
    group_name=MEDIA_GROUP,
    kinds={"ffmpeg", "python"},
    pool=FFMPEG_POOL,
)
def media_metadata(
    context: dg.AssetExecutionContext,
    database: dg.ResourceParam[OperationalDatabase],
    object_store: dg.ResourceParam[ObjectStore],
) -> dg.MaterializeResult:
    """What the uploaded original holds, read by ffprobe: container, duration, codecs, resolution
    (short side), fps, rotation, audio channels and sample rate, chapters. Stored on the media asset
    row; the job shows stage `metadata`. A file that cannot be read fails the job with ffprobe's
    reason and keeps the original."""
    run = processing_run(context, database)
    original = run.start("metadata", 2.0)
    if original is None:
        raise dg.Failure(f"media {run.media_id} does not exist", metadata={"media_id": str(run.media_id)})
    try:
        with local_original(object_store, original.key) as local:
            validated = validation.validate(local)
    except (limits.InvalidMedia, limits.UnsupportedMedia, limits.MediaTooLarge, FileNotFoundError) as exc:
        reason = getattr(exc, "detail", None) or f"the original is missing from the object store ({exc})"
        run.fail(reason, stage="metadata")
        raise dg.Failure(description=reason, metadata={"media_id": str(run.media_id)}) from exc
    run.record_metadata(validated.summary(), validated.kind, "metadata", 10.0)
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
    context: dg.AssetCheckExecutionContext, database: dg.ResourceParam[OperationalDatabase]
) -> dg.AssetCheckResult:
    checked, incomplete = variants.incomplete_metadata(database.session)
    return dg.AssetCheckResult(
        passed=not incomplete,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"checked": checked, "incomplete": dg.MetadataValue.json(incomplete)},
    )


@dg.asset(
    partitions_def=media_partitions,
    group_name=MEDIA_GROUP,
    kinds={"ffmpeg", "webp", "jpeg"},
    pool=FFMPEG_POOL,
    deps=[media_metadata],
)
def media_thumbnails(
    context: dg.AssetExecutionContext,
    database: dg.ResourceParam[OperationalDatabase],
    object_store: dg.ResourceParam[ObjectStore],
) -> dg.MaterializeResult:
    """Posters at 320/640/1280 px (never upscaled) as WebP and JPEG. For video, the most detailed of
    five candidate frames between 10% and 90% of the running time, each read by seeking the input so
    the time does not grow with the video's length; then a storyboard for scrubbing (a JPEG sprite of
    up to 100 tiles and the WebVTT that points into it, side by side under `thumbnails/`). Images get
    the posters; audio has none. The files are uploaded first and the variant rows (posters and
    storyboard) replaced in one transaction, so a failed run never shows half a set."""
    from domain.media import thumbnails

    run = processing_run(context, database)
    original = run.original()
    if original.kind == "audio" or not (original.meta.get("video") or {}).get("width"):
        return dg.MaterializeResult(metadata={"posters": 0, "reason": "no picture in this media"})
    run.stage("thumbnails", 12.0)
    started = time.perf_counter()
    with local_original(object_store, original.key) as local:
        made = thumbnails.make_thumbnails(object_store, run.media_id, local, original.kind, original.meta)
    run.replace_variants(variants.THUMBNAIL_TYPES, made.rows, "thumbnails", 20.0)
    chosen, board, rows = made.chosen, made.board, made.rows
    sizes = "\n".join(
        f"- {r.variant_type} {f'{r.width}x{r.height} ' if r.width else ''}{r.format}: {r.file_size} B"
        for r in rows
    )
    return dg.MaterializeResult(
        metadata={
            "posters": made.posters,
            "frame_time_s": dg.MetadataValue.float(chosen.time_s if chosen else 0.0),
            "frame_detail": dg.MetadataValue.float(chosen.spread if chosen else 0.0),
            "storyboard_tiles": board.count if board else 0,
            "storyboard_interval_s": dg.MetadataValue.float(board.interval_s if board else 0.0),
            "seconds": dg.MetadataValue.float(round(time.perf_counter() - started, 3)),
            "preview_key": f"media/{run.media_id}/thumbnails/poster-{rows[0].width}.jpg",
            "sizes": dg.MetadataValue.md(sizes),
        }
    )
