"""What one run of the media assets works on, and the work the assets hand it.

`ProcessingRun` is one media and the job a Dagster run works on (the job named by the run's
`jobs.JOB_TAG`, set by the media sensor): the assets move that job along, and no other job of the
media, each write a short transaction of its own so the progress shows while the run goes on.
`RenditionRun` adds the run's own prefix for rendition files and produces the renditions of each
kind (`render`). Neither knows Dagster: the assets build them from the partition key and run tags."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from domain.media import jobs, renditions, variants
from domain.media.variants import Original, SessionFactory
from domain.schema import MediaVariant, utcnow

FORMATS_OF_KIND = {"video": {"hls", "mp4"}, "audio": {"audio"}, "image": {"image"}}


class ProcessingRun:
    """The media of the partition and the job the run works on."""

    def __init__(self, open_session: SessionFactory, media_id: uuid.UUID, job_id: str | None) -> None:
        self.open_session = open_session
        self.media_id = media_id
        self.job_id = job_id

    def update(self, **values: Any) -> None:
        with self.open_session() as session:
            jobs.update(session, self.media_id, self.job_id, **values)

    def stage(self, stage: str, percent: float) -> None:
        self.update(status="processing", stage=stage, percent=percent)

    def progress(self, stage: str, start: float, end: float) -> jobs.Progress:
        """A step's 0..1 as the job's percent between `start` and `end` (written at most once a second)."""
        return jobs.Progress(lambda percent: self.stage(stage, percent), start, end)

    def fail(self, reason: str, stage: str) -> None:
        """Job failed, asset failed, `media.failed`: one transaction."""
        with self.open_session() as session:
            jobs.fail(session, self.media_id, self.job_id, reason, stage=stage)

    def original(self) -> Original | None:
        with self.open_session() as session:
            return variants.original(session, self.media_id)

    def start(self, stage: str, percent: float) -> Original | None:
        """The original, and the job started at `stage` (its earlier error cleared), in one
        transaction; None, with no job written, when the media does not exist."""
        with self.open_session() as session:
            found = variants.original(session, self.media_id)
            if found is not None:
                jobs.update(
                    session,
                    self.media_id,
                    self.job_id,
                    status="processing",
                    stage=stage,
                    percent=percent,
                    started_at=utcnow(),
                    error=None,
                )
            return found

    def record_metadata(self, summary: dict[str, Any], kind: str, stage: str, percent: float) -> None:
        """The probed metadata on the media's row and the job at `stage`, in one transaction."""
        with self.open_session() as session:
            variants.store_metadata(session, self.media_id, summary, kind)
            jobs.update(
                session, self.media_id, self.job_id, status="processing", stage=stage, percent=percent
            )

    def replace_variants(
        self, variant_types: tuple[str, ...], rows: list[MediaVariant], stage: str, percent: float
    ) -> None:
        """The media's variants of `variant_types` replaced by `rows` (a failed run never shows half
        a set) and the job at `stage`, in one transaction."""
        with self.open_session() as session:
            variants.replace(session, self.media_id, variant_types, rows)
            jobs.update(
                session, self.media_id, self.job_id, status="processing", stage=stage, percent=percent
            )


@dataclass(frozen=True)
class RenditionPlan:
    """The original and the renditions a run makes of it: its kind's formats that the job asked for."""

    original: Original
    wanted: frozenset[str]


class RenditionRun(ProcessingRun):
    """One materialization of the renditions: the media, its job, and the run's own prefix
    (`media/<id>/renditions/<run>/`) under which every file goes before the rows name it."""

    def __init__(
        self, open_session: SessionFactory, media_id: uuid.UUID, job_id: str | None, run_token: str
    ) -> None:
        super().__init__(open_session, media_id, job_id)
        self.prefix = f"media/{media_id}/renditions/{run_token}"

    def plan(self) -> RenditionPlan | None:
        """The original and what to make of it: the formats of its kind that the job requested (all
        of them for a run without a job). With anything to make, the job is at `renditions` (21%) in
        the same transaction. None when the media does not exist."""
        with self.open_session() as session:
            found = variants.original(session, self.media_id)
            if found is None:
                return None
            job = jobs.job_for(session, self.media_id, self.job_id)
            requested = (job.requested or {}).get("formats") if job else None
            wanted = frozenset(FORMATS_OF_KIND[found.kind] & set(requested or renditions.FORMATS))
            if wanted:
                jobs.update(
                    session, self.media_id, self.job_id, status="processing", stage="renditions", percent=21.0
                )
            return RenditionPlan(found, wanted)

    def row(
        self, out: Path, name: str, variant_type: str, fmt: str, quality: str = "", **extra: Any
    ) -> MediaVariant:
        """The variant row of the file `out/name`, stored under the run's prefix."""
        return variants.variant_row(
            self.media_id, f"{self.prefix}/{name}", out / name, variant_type, fmt, quality, **extra
        )

    def render(self, kind: str, source: Path, out: Path, meta: dict) -> tuple[list[MediaVariant], dict]:
        """The renditions of `source` written under `out`: (their rows, details for the run's report)."""
        return {"video": self._video, "audio": self._audio, "image": self._image}[kind](source, out, meta)

    def publish(self, kind: str, rows: list[MediaVariant], info: dict[str, Any]) -> list[uuid.UUID]:
        """Swap the rendition rows in, complete the job and emit `media.processed`, in one
        transaction; returns the videos whose masters this dubbed audio should join."""
        with self.open_session() as session:
            return variants.publish_renditions(session, self.media_id, self.job_id, kind, rows, info)

    def _video(self, source: Path, out: Path, meta: dict) -> tuple[list[MediaVariant], dict]:
        video, duration = meta["video"], float(meta.get("duration_s") or 0.0)
        plan = renditions.plan_video(
            video.get("display_width") or video["width"],
            video.get("display_height") or video["height"],
            video.get("fps") or 30.0,
            has_audio=bool(meta.get("audio")),
            duration_s=duration,
        )
        renditions.run_with_progress(
            renditions.ladder_command(source, out, plan), duration, self.progress("renditions", 22.0, 92.0)
        )
        rows = []
        for r in plan.rungs:
            length = renditions.playlist_duration((out / f"{r.name}.m3u8").read_text())
            rows.append(
                self.row(
                    out,
                    f"{r.name}.mp4",
                    "hls",
                    "mp4",
                    r.name,
                    width=r.width,
                    height=r.height,
                    duration_s=round(length, 3),
                )
            )
        with self.open_session() as session:
            tracks = variants.dub_tracks(session, self.media_id)
        master = out / "master.m3u8"
        master.write_text(renditions.with_audio_tracks(master.read_text(), tracks))
        top, fallback = plan.rungs[0], plan.fallback
        rows.append(
            self.row(
                out,
                "master.m3u8",
                "hls",
                "m3u8",
                "master",
                width=top.width,
                height=top.height,
                duration_s=duration,
            )
        )
        # The progressive fallback is the rung's own file: one object, two rows, no second copy.
        rows.append(
            self.row(
                out,
                f"{fallback.name}.mp4",
                "mp4",
                "mp4",
                fallback.name,
                width=fallback.width,
                height=fallback.height,
                duration_s=duration,
            )
        )
        if plan.has_audio:
            length = renditions.playlist_duration((out / "audio.m3u8").read_text())
            rows.append(
                self.row(
                    out,
                    "audio.mp4",
                    "audio_only",
                    "m4a",
                    f"{renditions.AUDIO_ONLY_BITRATE_K}k",
                    duration_s=round(length, 3),
                )
            )
        info = {
            "rungs": [r.name for r in plan.rungs],
            "fallback": fallback.name,
            "duration_s": duration,
            "dubs": [t.language for t in tracks],
        }
        return rows, info

    def _audio(self, source: Path, out: Path, meta: dict) -> tuple[list[MediaVariant], dict]:
        duration = float(meta.get("duration_s") or 0.0)
        self.stage("loudness", 25.0)
        measured = renditions.measure_loudness(source)
        renditions.run_with_progress(
            renditions.audio_command(source, out, measured), duration, self.progress("renditions", 40.0, 92.0)
        )
        length = round(renditions.playlist_duration((out / "audio.m3u8").read_text()), 3)
        rows = [
            self.row(out, "audio.mp3", "mp3", "mp3", f"{renditions.MP3_BITRATE_K}k", duration_s=duration),
            self.row(out, "audio.mp4", "aac", "m4a", f"{renditions.AUDIO_BITRATE_K}k", duration_s=length),
            self.row(out, "audio.m3u8", "hls", "m3u8", "audio", duration_s=length),
        ]
        return rows, {
            "duration_s": duration,
            "input_lufs": measured["input_i"],
            "target_lufs": renditions.LOUDNESS["I"],
        }

    def _image(self, source: Path, out: Path, meta: dict) -> tuple[list[MediaVariant], dict]:
        from domain.media import images  # Pillow, only where images are made

        self.stage("renditions", 40.0)
        made = images.render_image_variants(source, out)
        rows = [
            self.row(out, v.path.name, "image", v.format, f"{v.width}w", width=v.width, height=v.height)
            for v in made
        ]
        return rows, {"blurhash": images.blurhash_of(source), "sizes": sorted({v.width for v in made})}
