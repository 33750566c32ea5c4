"""Turn uploads and re-processing requests into partitioned runs of the media assets, and keep the
`media` partition set bounded.

The sensor changes the partition set itself, through the instance, instead of returning
`dynamic_partitions_requests`: the daemon applies those one key at a time (an existence query per
key, ~3 ms on the embedded SQLite instance and ~25 ms on PostgreSQL, so 30 s to minutes for a burst
of 10,000), and Dagster's check of each run request against them grows with requests x keys. One
bulk insert takes milliseconds (`bench/media_sensor.py`). Both changes are idempotent, so a tick
evaluated again after a failure does no harm. One sensor does uploads, re-processing and
retention, so removals and re-additions of one media are ordered within a tick."""

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import dagster as dg

from assets.media import media_partitions
from domain import outbox
from domain.media import processing
from domain.media.events import MEDIA_ANALYZE_REQUESTED, MEDIA_TRANSCODE_REQUESTED, MEDIA_UPLOADED
from domain.media.jobs import JOB_TAG
from domain.schema import OutboxEvent, utcnow
from resources.database import OperationalDatabase

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

# Transcription and moderation assets join this group when they exist (a separate issue); until
# then an analyze request fails its job with `processing.NO_ANALYSIS_ASSETS`.
MEDIA_ANALYSIS_GROUP = "media_analysis"
RENDITIONS = dg.AssetKey("media_renditions")
THUMBNAILS = dg.AssetKey("media_thumbnails")
EVENT_TYPES = (MEDIA_UPLOADED, MEDIA_TRANSCODE_REQUESTED, MEDIA_ANALYZE_REQUESTED)
BATCH = 10_000  # outbox events per tick: a burst of uploads is one tick, one bulk partition insert
RETENTION_BATCH = 250  # partitions removed per tick at most (one delete each: ~25 ms on PostgreSQL)
RETENTION_EVERY = timedelta(hours=1)  # between retention passes, unless the last one was full


@dataclass
class SensorState:
    """The cursor: the last outbox seq read, where retention stopped, and when it looks again."""

    seq: int = 0
    mark: processing.Mark | None = None
    retention_due: datetime | None = None

    @classmethod
    def load(cls, raw: str | None) -> "SensorState":
        if not raw:
            return cls()
        if raw.isdigit():  # the cursor of the first version: an outbox seq alone
            return cls(seq=int(raw))
        data = json.loads(raw)
        due = data.get("retention_due")
        return cls(
            seq=int(data["seq"]),
            mark=processing.Mark.load(data.get("mark")),
            retention_due=datetime.fromisoformat(due) if due else None,
        )

    def dump(self) -> str:
        return json.dumps(
            {
                "seq": self.seq,
                "mark": self.mark.dump() if self.mark else None,
                "retention_due": self.retention_due.isoformat() if self.retention_due else None,
            }
        )


@dataclass
class Plan:
    add: list[str] = field(default_factory=list)
    runs: list[dg.RunRequest] = field(default_factory=list)
    unanalyzable: list[str] = field(default_factory=list)  # analyze jobs with no asset to run


def analysis_assets(repository_def: dg.RepositoryDefinition | None) -> list[dg.AssetKey]:
    """The materializable assets of the `media_analysis` group in the sensor's own definitions."""
    if repository_def is None:
        return []
    graph = repository_def.asset_graph
    return sorted(
        key
        for key in graph.get_all_asset_keys()
        if graph.get(key).group_name == MEDIA_ANALYSIS_GROUP and graph.get(key).is_materializable
    )


def plan_runs(session, events: Sequence[OutboxEvent], analysis: Callable[[], list[dg.AssetKey]]) -> Plan:
    """The partitions to (re-)add and the runs to request for a batch of outbox events. Reads the
    jobs the events name in two queries whatever the batch size."""
    plan = Plan()
    uploads = [e for e in events if e.event_type == MEDIA_UPLOADED]
    missing = [e.aggregate_id for e in uploads if not (e.payload or {}).get("job_id")]
    first = processing.first_jobs(session, missing)
    requests = [e for e in events if e.event_type != MEDIA_UPLOADED]
    live = processing.existing_jobs(session, [e.payload["job_id"] for e in requests])
    keys: list[dg.AssetKey] | None = None
    for event in events:
        media_id, payload = event.aggregate_id, event.payload or {}
        if event.event_type == MEDIA_UPLOADED:
            job_id = payload.get("job_id") or first.get(media_id)
            plan.add.append(media_id)
            plan.runs.append(
                dg.RunRequest(
                    partition_key=media_id,
                    run_key=f"media-{media_id}",
                    tags={JOB_TAG: job_id} if job_id else {},
                )
            )
            continue
        job_id = payload["job_id"]
        if live.get(job_id) in (None, *processing.FINISHED):
            continue  # the media was deleted, or the job already ended: nothing left to run
        if event.event_type == MEDIA_TRANSCODE_REQUESTED:
            formats = payload.get("formats") or processing.FORMATS
            selection = [RENDITIONS, THUMBNAILS] if "thumbnails" in formats else [RENDITIONS]
            run_key = f"transcode-{job_id}"
        else:
            keys = analysis() if keys is None else keys
            if not keys:
                plan.unanalyzable.append(job_id)
                continue
            selection, run_key = keys, f"analyze-{job_id}"
        plan.add.append(media_id)
        plan.runs.append(
            dg.RunRequest(
                partition_key=media_id, run_key=run_key, tags={JOB_TAG: job_id}, asset_selection=selection
            )
        )
    plan.add = list(dict.fromkeys(plan.add))
    return plan


def _known_to_the_run_request_check(context: dg.SensorEvaluationContext, keys: list[str]) -> None:
    """After evaluation, Dagster checks each run request's partition exists, one query per key
    (about 3 ms on the SQLite instance, more on PostgreSQL: 30 s and more for 10,000). The
    context's partition loader caches those answers; filling it with one bounded query makes the
    check free. (The loader is not public API: should it go, the check is slow again, not wrong.)"""
    loader = getattr(context, "caching_dynamic_partitions_loader", None)
    if loader is not None:
        loader.get_existing_dynamic_partitions(media_partitions.name, keys)


def build_media_uploads_sensor(
    job: "UnresolvedAssetJobDefinition",
    retention_days: int,
    *,
    retention_batch: int = RETENTION_BATCH,
    clock: Callable[[], datetime] = utcnow,
) -> dg.SensorDefinition:
    """The media sensor for `job` (over the `media` partitions), with the deployment's retention
    (`THMNAYAH_MEDIA_PARTITION_RETENTION_DAYS`). `clock` lets the benchmark simulate a year of days
    in minutes."""

    @dg.sensor(
        name="media_uploads_sensor",
        job=job,
        minimum_interval_seconds=15,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Adds a `media` partition per new upload and requests its run (`media.uploaded`); "
            "re-adds the partition and requests the renditions of a transcode "
            "(`media.transcode_requested`) or the analysis assets of an analyze request "
            "(`media.analyze_requested`). Hourly, removes from the partition set the media whose "
            f"latest job finished more than {retention_days} days ago (their history stays in the "
            "operational DB; a re-process adds them back)."
        ),
    )
    def media_uploads_sensor(
        context: dg.SensorEvaluationContext, database: dg.ResourceParam[OperationalDatabase]
    ):
        state = SensorState.load(context.cursor)
        now = clock()
        before = state.dump()
        removed: list[str] = []
        with database.session() as session:
            if state.retention_due is None or now >= state.retention_due:
                expired = processing.expired_media(
                    session, now=now, days=retention_days, after=state.mark, limit=retention_batch
                )
                removed, state.mark = expired.media_ids, expired.mark
                state.retention_due = now if expired.more else now + RETENTION_EVERY
            events = outbox.events_after(session, state.seq, limit=BATCH, types=EVENT_TYPES)
            plan = plan_runs(session, events, lambda: analysis_assets(context.repository_def))
            failed = processing.fail_pending_jobs(session, plan.unanalyzable, processing.NO_ANALYSIS_ASSETS)
        if events:
            state.seq = events[-1].seq
        readded = set(plan.add)
        removed = [key for key in removed if key not in readded]
        for key in removed:  # at most `retention_batch`; a media re-requested in this tick stays
            context.instance.delete_dynamic_partition(media_partitions.name, key)
        if plan.add:
            context.instance.add_dynamic_partitions(media_partitions.name, plan.add)
            _known_to_the_run_request_check(context, plan.add)
        if removed or plan.add:
            context.log.info(f"media partitions: added {len(plan.add)}, removed {len(removed)}")
        if not plan.runs:
            reason = f"no uploads or re-processing requests after outbox seq {state.seq}"
            if removed:
                reason = f"removed {len(removed)} media partition(s) past the {retention_days}-day retention"
            if failed:
                reason = f"failed {len(failed)} analyze job(s): {processing.NO_ANALYSIS_ASSETS}"
            if state.dump() == before:
                return dg.SkipReason(reason)
            return dg.SensorResult(skip_reason=reason, cursor=state.dump())
        # Run keys name the media (first processing) or the job (re-runs), so a re-evaluated tick
        # never doubles a run.
        return dg.SensorResult(run_requests=plan.runs, cursor=state.dump())

    return media_uploads_sensor
