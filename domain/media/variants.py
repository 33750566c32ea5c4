"""The variant rows of a media and the files they name, as the processing assets read and write them:
the original a run works on, a set of variants swapped in one transaction (with the job's completion
when the renditions are published), the files no row names any more, and the dubbed audio tracks that
join a video's HLS master. Plus the two completeness checks over every media.

A function that takes a `Session` works in the caller's transaction; one that takes a session factory
opens its own short ones. Files are reached through `Files`, the few object-store calls used here."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import sqlalchemy as sa
from sqlalchemy.orm import Session

from domain.media import jobs, renditions
from domain.schema import MediaAsset, MediaVariant, utcnow

SessionFactory = Callable[[], AbstractContextManager[Session]]

RENDITION_TYPES = ("hls", "mp4", "audio_only", "mp3", "aac", "image")
THUMBNAIL_TYPES = ("poster", "storyboard")
CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".mp4": "video/mp4",
    ".mp3": "audio/mpeg",
    ".jpg": "image/jpeg",
    ".webp": "image/webp",
}
TRACK_NAMES = {"ar": "العربية", "en": "English"}
PREVIEW = 50  # media ids a check lists


class Files(Protocol):
    """The object-store calls the variant files need (`resources.object_store.ObjectStore` has them)."""

    def put_bytes(self, key: str, data: bytes, content_type: str = ...) -> None: ...

    def put_file(self, key: str, source: IO[bytes], content_type: str = ...) -> None: ...

    def get_bytes(self, key: str) -> bytes: ...

    def delete(self, key: str) -> None: ...

    def list(self, prefix: str = "") -> Iterator[str]: ...


@dataclass(frozen=True)
class Original:
    """What a run needs of the media's row: its kind, the original's key and the probed metadata."""

    kind: str
    key: str
    meta: dict[str, Any] = field(default_factory=dict)


def original(session: Session, media_id: uuid.UUID) -> Original | None:
    asset = session.get(MediaAsset, media_id)
    if asset is None:
        return None
    return Original(kind=asset.content_type, key=asset.s3_key, meta=dict(asset.meta or {}))


def store_metadata(session: Session, media_id: uuid.UUID, summary: dict[str, Any], kind: str) -> None:
    """The probed metadata merged into the media's row, its kind set from the streams found."""
    asset = session.get(MediaAsset, media_id)
    asset.meta = {**(asset.meta or {}), **summary}
    asset.content_type = kind
    asset.upload_status = "processing"
    asset.updated_at = utcnow()


def variant_row(
    media_id: uuid.UUID, key: str, path: Path, variant_type: str, fmt: str, quality: str = "", **extra: Any
) -> MediaVariant:
    """A variant row for the file at `path`, stored under `key` (its size is the file's)."""
    return MediaVariant(
        media_asset_id=media_id,
        variant_type=variant_type,
        format=fmt,
        quality=quality,
        s3_key=key,
        file_size=path.stat().st_size,
        **extra,
    )


def replace(
    session: Session, media_id: uuid.UUID, variant_types: Iterable[str], rows: list[MediaVariant]
) -> None:
    """The media's variants of `variant_types` replaced by `rows`, in the caller's transaction."""
    types = set(variant_types)
    if types:
        session.execute(
            sa.delete(MediaVariant).where(
                MediaVariant.media_asset_id == media_id, MediaVariant.variant_type.in_(types)
            )
        )
    session.add_all(rows)


def publish_renditions(
    session: Session,
    media_id: uuid.UUID,
    job_id: str | None,
    kind: str,
    rows: list[MediaVariant],
    info: dict[str, Any],
) -> list[uuid.UUID]:
    """The new rendition set swapped in whole, with the blurhash, the job's completion and
    `media.processed`, in the caller's transaction. Returns the completed videos whose masters
    should now list this media as a dubbed track (none unless it is audio in a language, of an item)."""
    replace(session, media_id, {r.variant_type for r in rows}, rows)
    asset = session.get(MediaAsset, media_id)
    if info.get("blurhash"):
        asset.meta = {**(asset.meta or {}), "blurhash": info["blurhash"]}
    session.flush()
    master = next(
        (r for r in rows if r.quality == "master" or (kind == "audio" and r.variant_type == "hls")), None
    )
    summary = {
        "variants": len(rows),
        "hls_master_key": master.s3_key if master else None,
        "duration_s": info.get("duration_s"),
    }
    jobs.complete(session, media_id, job_id, summary)
    if kind != "audio" or not asset.language or asset.content_item_id is None:
        return []
    return list(
        session.scalars(
            sa.select(MediaAsset.id).where(
                MediaAsset.content_item_id == asset.content_item_id,
                MediaAsset.content_type == "video",
                MediaAsset.upload_status == "completed",
            )
        )
    )


def dub_tracks(session: Session, media_id: uuid.UUID) -> list[renditions.AudioTrack]:
    """Dubbed audio of the media's content item (audio uploads with a language), as master entries
    relative to a master at `media/<video>/renditions/<run>/master.m3u8`."""
    item = session.scalar(sa.select(MediaAsset.content_item_id).where(MediaAsset.id == media_id))
    if item is None:
        return []
    found = session.execute(
        sa.select(MediaAsset.language, MediaVariant.s3_key)
        .join(MediaVariant, MediaVariant.media_asset_id == MediaAsset.id)
        .where(
            MediaAsset.content_item_id == item,
            MediaAsset.content_type == "audio",
            MediaAsset.language.is_not(None),
            MediaVariant.variant_type == "hls",
        )
        .order_by(MediaAsset.created_at)
    ).all()
    return [
        renditions.AudioTrack(
            language, TRACK_NAMES.get(language, language), f"../../../{key.split('/', 1)[1]}"
        )
        for language, key in found
    ]


def put_files(files: Files, prefix: str, out: Path) -> int:
    """Every file under `out` stored under `prefix` (same relative paths); returns the bytes stored."""
    total = 0
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        content_type = CONTENT_TYPES.get(path.suffix, "application/octet-stream")
        with path.open("rb") as f:
            files.put_file(f"{prefix}/{path.relative_to(out).as_posix()}", f, content_type=content_type)
        total += path.stat().st_size
    return total


def remove_prefix(files: Files, prefix: str) -> None:
    """Every file under `prefix` (a failed run's own files)."""
    for key in list(files.list(prefix + "/")):
        files.delete(key)


def remove_unreferenced(open_session: SessionFactory, files: Files, media_id: uuid.UUID) -> int:
    """Files under the media's renditions that no variant row names: earlier runs, killed runs.
    Read after the new set is committed, so a file is only removed once no row can name it."""
    with open_session() as session:
        live = set(
            session.scalars(sa.select(MediaVariant.s3_key).where(MediaVariant.media_asset_id == media_id))
        )
    live_prefixes = {key.rsplit("/", 1)[0] for key in live if "/renditions/" in key}
    removed = 0
    for key in list(files.list(f"media/{media_id}/renditions/")):
        if key.rsplit("/", 1)[0] not in live_prefixes:
            files.delete(key)
            removed += 1
    return removed


def rewrite_masters(
    open_session: SessionFactory, files: Files, video_ids: list[uuid.UUID]
) -> list[uuid.UUID]:
    """Re-write the published masters of `video_ids` with the dubbed tracks of their content items
    (idempotent): one transaction reads the masters and tracks, one records the new sizes. Returns
    the videos whose master was rewritten (a video without a master is left alone)."""
    if not video_ids:
        return []
    with open_session() as session:
        masters = session.execute(
            sa.select(MediaVariant.media_asset_id, MediaVariant.id, MediaVariant.s3_key).where(
                MediaVariant.media_asset_id.in_(video_ids),
                MediaVariant.variant_type == "hls",
                MediaVariant.format == "m3u8",
                MediaVariant.quality == "master",
            )
        ).all()
        tracks = {video_id: dub_tracks(session, video_id) for video_id, _, _ in masters}
    sizes: dict[uuid.UUID, int] = {}
    for video_id, variant_id, key in masters:
        text = renditions.with_audio_tracks(files.get_bytes(key).decode(), tracks[video_id]).encode()
        files.put_bytes(key, text, content_type=CONTENT_TYPES[".m3u8"])
        sizes[variant_id] = len(text)
    with open_session() as session:
        for variant_id, size in sizes.items():
            row = session.get(MediaVariant, variant_id)
            if row is not None:
                row.file_size = size
    done = {video_id for video_id, _, _ in masters}
    return [v for v in video_ids if v in done]


def incomplete_metadata(open_session: SessionFactory) -> tuple[int, list[str]]:
    """(media checked, ids of those missing what their kind needs): timed media a positive duration,
    pictures both sides. Media being processed or done are checked."""
    with open_session() as session:
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
    return len(rows), incomplete[:PREVIEW]


def rendition_problems(open_session: SessionFactory) -> tuple[int, dict[str, str]]:
    """(processed videos, media id -> problem) for the videos whose rendition set is not whole: no
    HLS master, a progressive MP4 that is not one of the rungs, or an empty file."""
    with open_session() as session:
        rows = session.execute(
            sa.select(
                MediaVariant.media_asset_id,
                MediaVariant.variant_type,
                MediaVariant.format,
                MediaVariant.quality,
                MediaVariant.s3_key,
                MediaVariant.file_size,
            )
            .join(MediaAsset, MediaAsset.id == MediaVariant.media_asset_id)
            .where(
                MediaAsset.content_type == "video",
                MediaAsset.upload_status == "completed",
                MediaVariant.variant_type.in_(RENDITION_TYPES),
            )
        ).all()
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
    return len(by_media), dict(list(problems.items())[:PREVIEW])
