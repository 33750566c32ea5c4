"""The outbox event types the media service writes, named once so that writers (uploads, re-process
requests, the pipeline's job state) and readers (the media sensor, notification rules) cannot drift
apart by a typo. The media id is every event's aggregate."""

MEDIA_UPLOADED = "media.uploaded"
MEDIA_TRANSCODE_REQUESTED = "media.transcode_requested"
MEDIA_ANALYZE_REQUESTED = "media.analyze_requested"
MEDIA_PROCESSED = "media.processed"
MEDIA_FAILED = "media.failed"
