"""When a notification may go out: quiet hours in the user's time zone and digest boundaries.

Pure functions of a UTC instant, so tests drive them on a controlled clock. Quiet hours delay a
non-critical message to the end of the window (never drop it); a digest frequency holds it until
the next boundary (hourly: the top of the hour; daily: 08:00 local; weekly: Monday 08:00 local),
and a boundary that falls inside quiet hours moves to the end of the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from domain.errors import InvalidValue

FREQUENCIES = ("immediate", "hourly", "daily", "weekly")
DIGEST_HOUR = 8


class ScheduleError(InvalidValue):
    """A preference that cannot hold (an empty quiet-hours window, an unknown time zone): a 422."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message, field=field)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(
            f"unknown time zone {name!r} (use an IANA name like Asia/Riyadh)", "timezone"
        ) from exc


@dataclass(frozen=True)
class QuietHours:
    start: time
    end: time
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        zone(self.timezone)
        if self.start == self.end:
            raise ScheduleError(
                f"quiet hours from {self.start:%H:%M} to {self.end:%H:%M} are empty (or the whole day): "
                "give an end that differs from the start",
                "quiet_hours_end",
            )

    def contains(self, at: datetime) -> bool:
        local = at.astimezone(zone(self.timezone)).time().replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end  # the window wraps past midnight

    def release(self, at: datetime) -> datetime:
        """`at` itself when outside the window, else the window's end (UTC)."""
        if not self.contains(at):
            return at
        tz = zone(self.timezone)
        local = at.astimezone(tz)
        end = datetime.combine(local.date(), self.end, tzinfo=tz)
        if end <= local:
            end = datetime.combine(local.date() + timedelta(days=1), self.end, tzinfo=tz)
        return end.astimezone(UTC)


def parse_time(value: str, field: str) -> time:
    try:
        parsed = time.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise ScheduleError(f"{value!r} is not a time of day (HH:MM, 00:00 to 23:59)", field) from exc
    return parsed.replace(tzinfo=None, microsecond=0)


def next_digest(at: datetime, frequency: str, timezone: str = "UTC") -> datetime:
    """The first digest boundary strictly after `at` (UTC)."""
    if frequency not in FREQUENCIES or frequency == "immediate":
        raise ScheduleError(f"{frequency!r} is not a digest frequency (hourly, daily, weekly)", "frequency")
    if frequency == "hourly":
        return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    tz = zone(timezone)
    local = at.astimezone(tz)
    boundary = datetime.combine(local.date(), time(DIGEST_HOUR), tzinfo=tz)
    if boundary <= local:
        boundary += timedelta(days=1)
    if frequency == "weekly":
        boundary += timedelta(days=(7 - boundary.weekday()) % 7)  # Monday
    return boundary.astimezone(UTC)


def due_at(
    now: datetime,
    *,
    frequency: str = "immediate",
    quiet: QuietHours | None = None,
    critical: bool = False,
    not_before: datetime | None = None,
    timezone: str = "UTC",
) -> datetime:
    """When a delivery should be attempted. Critical messages ignore quiet hours and digests."""
    at = max(now, not_before) if not_before else now
    if critical:
        return at
    if frequency != "immediate":
        at = next_digest(at, frequency, timezone)
    if quiet is not None:
        at = quiet.release(at)
    return at


def digest_key(user_id: object, channel: str, frequency: str) -> str | None:
    return None if frequency == "immediate" else f"{user_id}|{channel}|{frequency}"
