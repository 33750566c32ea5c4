"""What an upload may be (`MediaLimits`) and the three ways it is refused, each an HTTP status the
serving layer maps onto a problem detail: too large (413), not media we accept (415), damaged (422)."""

from __future__ import annotations

from dataclasses import dataclass

from domain.errors import DomainError


class UnsupportedMedia(DomainError):
    status = 415
    title = "Unsupported media type"


class MediaTooLarge(DomainError):
    status = 413
    title = "Content too large"


class InvalidMedia(DomainError):
    status = 422
    title = "Invalid media"


@dataclass(frozen=True)
class MediaLimits:
    max_bytes: int = 5 * 1024**3  # 5 GiB, the upload limit of the spec
    max_duration_s: float = 12 * 3600
    max_video_pixels: int = 7680 * 4320  # 8K UHD, 33.2 MP
    max_image_pixels: int = 100_000_000  # 100 MP
    min_dimension: int = 16  # smallest side of a video or image, in pixels: a 1x1 video is refused
    allowed_kinds: frozenset[str] = frozenset({"video", "audio", "image"})


DEFAULT_LIMITS = MediaLimits()


def allow_kind(kind: str, limits: MediaLimits) -> None:
    if kind not in limits.allowed_kinds:
        accepted = ", ".join(sorted(limits.allowed_kinds)) or "nothing"
        raise UnsupportedMedia(f"the file is {kind}; this upload accepts {accepted}", field="file")
