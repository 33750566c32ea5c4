"""`/api/v1/media/transcode` and `/api/v1/media/analyze`: re-processing an uploaded media.

Each request writes a job and an outbox event in one transaction and answers 202 at once; the media
sensor picks the event up and requests the Dagster run. Progress shows at the job's status URL.

Only the media's uploader and holders of `content:update` may ask (anyone else: 404, as for an
unknown media). While a job of the same kind is pending or processing, another request is a 409
naming it (not a second job). Each user has `THMNAYAH_MEDIA_REPROCESS_PER_HOUR` requests per sliding
hour (and one client IP five times that), counted before anything else; beyond it, 429 with
Retry-After."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from typing import Any

import msgspec
from litestar import Controller, Request, post
from litestar.di import NamedDependency
from litestar.exceptions import TooManyRequestsException
from litestar.params import JSONBody
from sqlalchemy.orm import Session

from domain.media import processing
from domain.schema import MediaJob
from domain.settings import Settings
from serving.auth.principal import Principal
from serving.auth.security import AuthContext
from serving.auth.throttle import RequestLimit
from serving.db import Database
from serving.permissions import CONTENT_UPDATE, MEDIA_UPLOAD, requires

PER_IP_FACTOR = 5  # a client IP (an office behind one address) may make this many users' worth


class TranscodeRequest(msgspec.Struct, forbid_unknown_fields=True):
    media_id: uuid.UUID
    # Any of hls, mp4, audio, image, thumbnails; left out: all of them.
    formats: list[str] | None = None


class AnalyzeRequest(msgspec.Struct, forbid_unknown_fields=True):
    media_id: uuid.UUID
    # Any of transcription, moderation; left out: both.
    analyses: list[str] | None = None


class JobAccepted(msgspec.Struct):
    job_id: uuid.UUID
    media_id: uuid.UUID
    kind: str
    status: str
    requested: dict[str, Any]
    status_url: str


def _accepted(job: MediaJob) -> JobAccepted:
    return JobAccepted(
        job_id=job.id,
        media_id=job.media_asset_id,
        kind=job.kind,
        status=job.status,
        requested=job.requested,
        status_url=f"/api/v1/media/job/{job.id}/status",
    )


async def _count_request(request: Request, auth: AuthContext, settings: Settings) -> None:
    """One re-processing request against the caller's hourly allowance; 429 when it is used up."""
    per_user = settings.media_reprocess_per_hour
    store = request.app.stores.get("rate_limit")
    limit = RequestLimit(store, "media-reprocess", per_ip=per_user * PER_IP_FACTOR, per_target=per_user)
    wait = await limit.hit(auth.origin(request).ip, str(request.user.user_id))
    if wait:
        seconds = math.ceil(wait)
        raise TooManyRequestsException(
            detail=f"too many re-processing requests (at most {per_user} an hour); try again in {seconds} s",
            headers={"Retry-After": str(seconds)},
        )


async def _request_job(
    request: Request[Principal, object, object],
    db: Database,
    auth: AuthContext,
    settings: Settings,
    start: Callable[[Session, uuid.UUID, bool], MediaJob],
) -> JobAccepted:
    """Count the request against the caller's allowance, then `start(session, user, may_update_content)`
    the job (with its event) in one transaction."""
    await _count_request(request, auth, settings)
    user, may_update = request.user.user_id, request.user.can(CONTENT_UPDATE)
    return await db.write(lambda s: _accepted(start(s, user, may_update)))


class MediaProcessingController(Controller):
    path = "/api/v1/media"
    tags = ["media"]

    @post(
        "/transcode",
        opt=requires(MEDIA_UPLOAD),
        operation_id="transcodeMedia",
        status_code=202,
        summary="Transcode an uploaded media again into the given formats (all when left out)",
    )
    async def transcode(
        self,
        request: Request[Principal, object, object],
        data: JSONBody[TranscodeRequest],
        db: NamedDependency[Database],
        auth: NamedDependency[AuthContext],
        settings: NamedDependency[Settings],
    ) -> JobAccepted:
        """A `transcode` job and its `media.transcode_requested` event, in one transaction. 404 for
        an unknown media (or one neither yours nor yours to edit: content:update), 422 for an unknown
        format, 409 when the original failed validation or a transcode of it is unfinished, 429 past
        the hourly allowance."""
        return await _request_job(
            request,
            db,
            auth,
            settings,
            lambda s, user, may_update: processing.request_transcode(
                s, data.media_id, data.formats, requested_by=user, may_update_content=may_update
            ),
        )

    @post(
        "/analyze",
        opt=requires(MEDIA_UPLOAD),
        operation_id="analyzeMedia",
        status_code=202,
        summary="Analyze an uploaded media: transcription and/or moderation (both when left out)",
    )
    async def analyze(
        self,
        request: Request[Principal, object, object],
        data: JSONBody[AnalyzeRequest],
        db: NamedDependency[Database],
        auth: NamedDependency[AuthContext],
        settings: NamedDependency[Settings],
    ) -> JobAccepted:
        """An `analyze` job and its `media.analyze_requested` event, in one transaction. Until the
        transcription and moderation assets are installed the job fails at once, with the reason
        at its status URL. Refused as `transcode` is (404, 409, 429)."""
        return await _request_job(
            request,
            db,
            auth,
            settings,
            lambda s, user, may_update: processing.request_analysis(
                s, data.media_id, data.analyses, requested_by=user, may_update_content=may_update
            ),
        )
