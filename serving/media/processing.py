"""`/api/v1/media/transcode` and `/api/v1/media/analyze`: re-processing an uploaded media.

Each request writes a job and an outbox event in one transaction and answers 202 at once; the media
sensor picks the event up and requests the Dagster run. Progress shows at the job's status URL."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from litestar import Controller, Request, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from sqlalchemy.orm import Session

from domain.media import processing
from domain.schema import MediaJob
from serving.auth.principal import Principal
from serving.db import Database
from serving.permissions import MEDIA_UPLOAD, requires


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
    ) -> JobAccepted:
        """A `transcode` job and its `media.transcode_requested` event, in one transaction. 404 for
        an unknown media, 422 for an unknown format, 409 when the original failed validation."""
        user = request.user.user_id

        def create(session: Session) -> JobAccepted:
            return _accepted(
                processing.request_transcode(session, data.media_id, data.formats, requested_by=user)
            )

        return await db.write(create)

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
    ) -> JobAccepted:
        """An `analyze` job and its `media.analyze_requested` event, in one transaction. Until the
        transcription and moderation assets are installed the job fails at once, with the reason
        at its status URL."""
        user = request.user.user_id

        def create(session: Session) -> JobAccepted:
            return _accepted(
                processing.request_analysis(session, data.media_id, data.analyses, requested_by=user)
            )

        return await db.write(create)
