"""Renditions of one media partition: the HLS ladder (video), MP3 + AAC (audio), WebP + JPEG sizes
and a blurhash (images). See `domain.media.renditions` for the ladder and the commands, and
`domain.media.runs.RenditionRun` for the run that makes and publishes them.

Publishing is atomic: every file goes under a prefix of its own run (`media/<id>/renditions/<run>/`),
then the variant rows are swapped in one transaction with the job's completion and the
`media.processed` event, and only then are files no row refers to removed. A failed or killed run
leaves nothing visible (its prefix is removed on failure, or by the next run); re-running is
idempotent."""

import time
import uuid

import dagster as dg

from assets.media import (
    FFMPEG_POOL,
    MEDIA_GROUP,
    local_original,
    media_metadata,
    media_partitions,
    media_thumbnails,
)
from domain.media import jobs, renditions, variants
from domain.media.runs import RenditionRun
from domain.schema import MediaVariant
from resources.database import OperationalDatabase
from resources.object_store import ObjectStore


def rendition_run(context: dg.AssetExecutionContext, database: OperationalDatabase) -> RenditionRun:
    """The partition's media, the job named by the run's `JOB_TAG`, and a prefix named by the run."""
    return RenditionRun(
        database.session,
        uuid.UUID(context.partition_key),
        context.run.tags.get(jobs.JOB_TAG),
        context.run.run_id.split("-")[0],
    )


def _table(rows: list[MediaVariant]) -> str:
    lines = ["| type | format | quality | size | bytes |", "|---|---|---|---|---|"]
    lines += [
        f"| {r.variant_type} | {r.format} | {r.quality} | {r.width or ''}x{r.height or ''} | {r.file_size} |"
        for r in rows
    ]
    return "\n".join(lines)


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
    run = rendition_run(context, database)
    plan = run.plan()
    if plan is None:
        raise dg.Failure(f"media {run.media_id} does not exist")
    kind = plan.original.kind
    started = time.perf_counter()
    info: dict = {}
    stored = 0
    rows: list[MediaVariant] = []
    try:
        if plan.wanted:
            with local_original(object_store, plan.original.key) as local:
                out = local.parent / "out"
                out.mkdir()
                rows, info = run.render(kind, local, out, plan.original.meta)
                run.stage("publishing", 94.0)
                stored = variants.put_files(object_store, run.prefix, out)
    except (renditions.FfmpegFailed, OSError, KeyError, ValueError) as exc:
        reason = f"renditions failed: {exc}"
        run.fail(reason, stage="renditions")
        variants.remove_prefix(object_store, run.prefix)
        raise dg.Failure(description=reason, metadata={"media_id": str(run.media_id)}) from exc

    dubbed_into = run.publish(kind, rows, info)  # one transaction: the new set appears whole, with the event
    removed = variants.remove_unreferenced(database.session, object_store, run.media_id)
    dubbed_videos = [str(v) for v in variants.rewrite_masters(database.session, object_store, dubbed_into)]
    details = {k: v for k, v in info.items() if k != "blurhash"} | {"bytes_written": stored}
    return dg.MaterializeResult(
        metadata={
            "kind": kind,
            "variants": len(rows),
            "stored_bytes": dg.MetadataValue.int(sum({r.s3_key: r.file_size for r in rows}.values())),
            "seconds": dg.MetadataValue.float(round(time.perf_counter() - started, 3)),
            "prefix": run.prefix,
            "removed_stale_files": removed,
            "dubbed_videos": dg.MetadataValue.json(dubbed_videos),
            "details": dg.MetadataValue.json(details),
            "table": dg.MetadataValue.md(_table(rows)),
        }
    )


@dg.asset_check(
    asset=media_renditions,
    description="Every processed video has an HLS master and a progressive MP4 that is one of its rungs "
    "(no second copy of a rung), and no rendition file is empty.",
)
def media_renditions_are_complete(database: dg.ResourceParam[OperationalDatabase]) -> dg.AssetCheckResult:
    videos, problems = variants.rendition_problems(database.session)
    return dg.AssetCheckResult(
        passed=not problems,
        metadata={"videos": videos, "problems": dg.MetadataValue.json(problems)},
    )
