"""Cron expressions (five fields, UTC), as report schedules and import sources carry them."""

from __future__ import annotations

from datetime import UTC, datetime

from cronsim import CronSim, CronSimError

from domain.errors import InvalidValue
from domain.schema import utcnow

MAX_LENGTH = 100


def next_run(schedule: str, after: datetime) -> datetime:
    """The first time strictly after `after` that the cron expression (UTC) names."""
    return next(CronSim(schedule, after.astimezone(UTC)))


def parse(schedule: str, *, field: str = "schedule") -> tuple[str, CronSim]:
    """`schedule` with its whitespace normalized, and its parse; InvalidValue naming `field` when it
    is not a five-field cron expression that ever fires."""
    schedule = " ".join(schedule.split())
    if len(schedule) > MAX_LENGTH:
        raise InvalidValue(f"{field} is longer than {MAX_LENGTH} characters", field=field)
    if len(schedule.split()) != 5:
        raise InvalidValue(
            f"{field} {schedule!r} is not a cron expression: five fields (minute hour day month weekday)",
            field=field,
        )
    try:
        parsed = CronSim(schedule, utcnow())
        next(parsed)
    except (CronSimError, StopIteration) as exc:
        raise InvalidValue(
            f"{field} {schedule!r} is not a valid cron expression: {exc}", field=field
        ) from exc
    return schedule, parsed
