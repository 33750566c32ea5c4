"""Report definitions and their generations (report jobs): validation, the period a generation
covers, the cron schedule, and what a finished generation records.

A report is rendered by the `analytics_report_files` asset (see `domain.analytics.reports` for the
documents and their CSV/XLSX/PDF/JSON forms); this module is the bookkeeping around it, shared by
the API (create, request), the sensor (due schedules, queued runs) and the asset (complete, fail).

Limits, so that one account cannot flood the report job or the recipients: a schedule fires at most
once an hour (its minute field names one minute); a user has at most `MAX_ACTIVE_REPORTS_PER_USER`
active definitions and asks for at most `MAX_MANUAL_RUNS_PER_HOUR` generations an hour
(`LimitReached`, a 429). Recipients (of reports and of alert rules) are active users who hold
`analytics:read`, as the report's files need it; any other value gets the same answer
(`UNUSABLE_RECIPIENT`), so the field tells nobody which emails have accounts.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from domain import cron
from domain.analytics.event_types import REPORT_READY
from domain.auth import rbac
from domain.errors import DomainError, InvalidValue, NotFound
from domain.outbox import record_event
from domain.schema import REPORT_FORMATS, REPORT_TYPES, Report, ReportRun, User, as_utc, utcnow

PERIODS = ("previous_day", "previous_week", "previous_month", "last_7_days", "last_30_days")
DEFAULT_FORMATS = ("csv", "xlsx", "pdf")
MAX_RECIPIENTS = 50
MAX_CUSTOM_DAYS = 800
MAX_ACTIVE_REPORTS_PER_USER = 50
MAX_MANUAL_RUNS_PER_HOUR = 20
UNUSABLE_RECIPIENT = (
    "a recipient must be the id or the email of an active user who can read analytics (analytics:read)"
)


class LimitReached(DomainError):
    """A per-user limit on report definitions or generations: a 429, and when to try again."""

    status = 429
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


@dataclass(frozen=True)
class NewReport:
    name: str
    report_type: str
    description: str = ""
    configuration: Mapping[str, Any] = field(default_factory=dict)
    schedule: str | None = None
    recipients: list[str] = field(default_factory=list)
    is_active: bool = True


def validate_schedule(schedule: str | None) -> str | None:
    if schedule is None or not schedule.strip():
        return None
    schedule, parsed = cron.parse(schedule)
    # One minute of the hour: two firings are then whole hours apart, so at most one an hour.
    if len(parsed.minutes) != 1:
        raise InvalidValue(
            f"schedule {schedule!r} fires more than once an hour; a report runs at most hourly "
            "(name one minute, e.g. '0 * * * *')",
            field="schedule",
        )
    return schedule


def _date(value: Any, name: str) -> date:
    try:
        return value if isinstance(value, date) else date.fromisoformat(str(value))
    except ValueError as exc:
        raise InvalidValue(f"{name} must be a date (YYYY-MM-DD)", field=f"configuration.{name}") from exc


def validate_configuration(config: Mapping[str, Any]) -> dict[str, Any]:
    """The configuration with defaults: `formats` (csv/xlsx/pdf/json; default csv, xlsx, pdf),
    `language` (ar/en; default en), `period` (one of `PERIODS`, default last_7_days, or `custom`
    with `start` and `end` dates, both inclusive) and `top` (rows per table, 1..500, default 20)."""
    unknown = set(config) - {"formats", "language", "period", "start", "end", "top"}
    if unknown:
        raise InvalidValue(
            f"unknown configuration key {sorted(unknown)[0]!r}", field=f"configuration.{sorted(unknown)[0]}"
        )
    given = config.get("formats") or DEFAULT_FORMATS
    if not isinstance(given, list | tuple) or not all(isinstance(f, str) for f in given):
        raise InvalidValue("formats must be a list of format names", field="configuration.formats")
    formats = list(dict.fromkeys(given))
    bad = [f for f in formats if f not in REPORT_FORMATS]
    if bad:
        raise InvalidValue(
            f"format {bad[0]!r} is not one of {', '.join(REPORT_FORMATS)}", field="configuration.formats"
        )
    language = config.get("language") or "en"
    if language not in ("ar", "en"):
        raise InvalidValue("language must be ar or en", field="configuration.language")
    period = config.get("period") or "last_7_days"
    out: dict[str, Any] = {"formats": formats, "language": language, "period": period}
    if period == "custom":
        start, end = _date(config.get("start"), "start"), _date(config.get("end"), "end")
        if start > end:
            raise InvalidValue("start is after end", field="configuration.start")
        if end >= utcnow().date():
            raise InvalidValue(
                "a custom period ends before today (reports cover whole past days)", field="configuration.end"
            )
        if (end - start).days + 1 > MAX_CUSTOM_DAYS:
            raise InvalidValue(
                f"a custom period is at most {MAX_CUSTOM_DAYS} days", field="configuration.end"
            )
        out |= {"start": start.isoformat(), "end": end.isoformat()}
    elif period not in PERIODS:
        raise InvalidValue(
            f"period {period!r} is not one of {', '.join((*PERIODS, 'custom'))}", field="configuration.period"
        )
    top = config.get("top", 20)
    if not isinstance(top, int) or isinstance(top, bool) or not 1 <= top <= 500:
        raise InvalidValue("top must be an integer from 1 to 500", field="configuration.top")
    out["top"] = top
    return out


def _recipient(session: Session, value: str) -> User | None:
    """The active user with analytics:read named by `value` (an id or an email), else None."""
    try:
        found = session.get(User, uuid.UUID(value))
    except ValueError:
        found = session.scalar(sa.select(User).where(sa.func.lower(User.email) == value.lower()).limit(1))
    if found is None or not found.is_active:
        return None
    _, permissions, _ = rbac.effective_permissions(session, found.id)
    return found if rbac.ANALYTICS_READ in permissions else None


def resolve_recipients(session: Session, recipients: list[str]) -> list[str]:
    """User ids (as strings) of the recipients, given as user ids or the email addresses of active
    users who hold analytics:read. Anything else (no such user, an inactive one, one without the
    permission, not an id or an email) is refused with the same message, naming only the position."""
    if len(recipients) > MAX_RECIPIENTS:
        raise InvalidValue(f"at most {MAX_RECIPIENTS} recipients", field="recipients")
    resolved: list[str] = []
    for i, value in enumerate(recipients):
        found = _recipient(session, str(value).strip())
        if found is None:
            raise InvalidValue(f"recipients[{i}]: {UNUSABLE_RECIPIENT}", field=f"recipients[{i}]")
        resolved.append(str(found.id))
    return list(dict.fromkeys(resolved))


def _lock_user(session: Session, user_id: uuid.UUID) -> None:
    """Serialize one user's counted requests (PostgreSQL row lock; SQLite writes are serial anyway)."""
    session.execute(sa.select(User.id).where(User.id == user_id).with_for_update())


def check_report_cap(session: Session, user_id: uuid.UUID) -> None:
    """Refuse (429) a new definition when the user already has `MAX_ACTIVE_REPORTS_PER_USER` active
    ones; deactivating one makes room."""
    _lock_user(session, user_id)
    active = session.scalar(
        sa.select(sa.func.count())
        .select_from(Report)
        .where(Report.created_by == user_id, Report.is_active.is_(True))
    )
    if active >= MAX_ACTIVE_REPORTS_PER_USER:
        raise LimitReached(
            f"you have {MAX_ACTIVE_REPORTS_PER_USER} active report definitions, the most a user may "
            "have; deactivate one (DELETE /api/v1/analytics/reports/{report_id}) first",
            retry_after=3600,
        )


def check_generation_rate(session: Session, user_id: uuid.UUID, now: datetime | None = None) -> None:
    """Refuse (429) a manual generation past `MAX_MANUAL_RUNS_PER_HOUR` in the last hour, saying
    when the oldest of them leaves the window."""
    now = now or utcnow()
    _lock_user(session, user_id)
    recent = session.scalars(
        sa.select(ReportRun.created_at)
        .where(
            ReportRun.requested_by == user_id,
            ReportRun.trigger == "manual",
            ReportRun.created_at > now - timedelta(hours=1),
        )
        .order_by(ReportRun.created_at.desc())
        .limit(MAX_MANUAL_RUNS_PER_HOUR)
    ).all()
    if len(recent) >= MAX_MANUAL_RUNS_PER_HOUR:
        oldest = as_utc(recent[-1])
        wait = max(1, int((oldest + timedelta(hours=1) - now).total_seconds()) + 1)
        raise LimitReached(
            f"at most {MAX_MANUAL_RUNS_PER_HOUR} report generations an hour per user; try again in {wait} s",
            retry_after=wait,
        )


def deactivate_report(session: Session, report: Report) -> None:
    """No more scheduled generations; the definition, its jobs and their files are kept."""
    report.is_active, report.next_run_at = False, None


def create_report(
    session: Session, new: NewReport, created_by: uuid.UUID | None, now: datetime | None = None
) -> Report:
    now = now or utcnow()
    name = new.name.strip()
    if not 1 <= len(name) <= 200:
        raise InvalidValue("name must be 1-200 characters", field="name")
    if new.report_type not in REPORT_TYPES:
        raise InvalidValue(f"report_type must be one of {', '.join(REPORT_TYPES)}", field="report_type")
    schedule = validate_schedule(new.schedule)
    report = Report(
        name=name,
        description=new.description,
        report_type=new.report_type,
        configuration=validate_configuration(new.configuration),
        schedule=schedule,
        recipients=resolve_recipients(session, new.recipients),
        is_active=new.is_active,
        next_run_at=cron.next_run(schedule, now) if schedule and new.is_active else None,
        created_by=created_by,
        created_at=now,
    )
    session.add(report)
    session.flush()
    return report


def period_of(configuration: Mapping[str, Any], now: datetime) -> tuple[date, date]:
    """[start, end) days a generation at `now` covers: whole UTC days before today."""
    today = now.astimezone(UTC).date()
    period = configuration.get("period", "last_7_days")
    if period == "custom":
        return date.fromisoformat(configuration["start"]), date.fromisoformat(
            configuration["end"]
        ) + timedelta(days=1)
    if period == "previous_day":
        return today - timedelta(days=1), today
    if period == "previous_week":  # Monday to Sunday before this week
        this_monday = today - timedelta(days=today.weekday())
        return this_monday - timedelta(days=7), this_monday
    if period == "previous_month":
        first = today.replace(day=1)
        return (first - timedelta(days=1)).replace(day=1), first
    days = 30 if period == "last_30_days" else 7
    return today - timedelta(days=days), today


def request_run(
    session: Session,
    report: Report,
    *,
    trigger: str,
    now: datetime | None = None,
    requested_by: uuid.UUID | None = None,
) -> ReportRun:
    now = now or utcnow()
    start, end = period_of(report.configuration, now)
    run = ReportRun(
        report_id=report.id,
        status="queued",
        trigger=trigger,
        period_start=datetime.combine(start, datetime.min.time(), UTC),
        period_end=datetime.combine(end, datetime.min.time(), UTC),
        requested_by=requested_by,
        created_at=now,
    )
    session.add(run)
    session.flush()
    return run


def queue_due(session: Session, now: datetime) -> list[ReportRun]:
    """A run for every active scheduled report whose time has come; its next time moves past `now`
    (a schedule missed while the platform was down runs once, not once per missed slot)."""
    due = session.scalars(
        sa.select(Report)
        .where(Report.is_active.is_(True), Report.next_run_at.is_not(None), Report.next_run_at <= now)
        .order_by(Report.next_run_at)
        .with_for_update(skip_locked=True)
    ).all()
    runs = []
    for report in due:
        runs.append(request_run(session, report, trigger="schedule", now=now))
        report.next_run_at = cron.next_run(report.schedule, now) if report.schedule else None
    return runs


STALE_QUEUED = timedelta(hours=1)


def fail_stale(session: Session, now: datetime, older_than: timedelta = STALE_QUEUED) -> int:
    """Fail the jobs still queued long after they were requested (their run was never launched or died
    before it started), so they neither block the queue nor look pending forever."""
    stale = session.scalars(
        sa.select(ReportRun).where(ReportRun.status == "queued", ReportRun.created_at < now - older_than)
    ).all()
    for run in stale:
        fail_run(
            session, run, f"not started within {older_than} of the request (the run was never launched)", now
        )
    return len(stale)


def queued_runs(session: Session, limit: int = 20) -> list[ReportRun]:
    return list(
        session.scalars(
            sa.select(ReportRun)
            .where(ReportRun.status == "queued")
            .order_by(ReportRun.created_at)
            .limit(limit)
        )
    )


def get_run(session: Session, run_id: uuid.UUID) -> tuple[ReportRun, Report]:
    run = session.get(ReportRun, run_id)
    if run is None:
        raise NotFound(f"no report job {run_id}")
    return run, session.get(Report, run.report_id)


def start_run(session: Session, run: ReportRun, now: datetime | None = None) -> None:
    run.status, run.started_at, run.error = "running", now or utcnow(), None


def period_label(run: ReportRun) -> str:
    last = (run.period_end - timedelta(days=1)).date()
    first = run.period_start.date()
    return first.isoformat() if first == last else f"{first.isoformat()} .. {last.isoformat()}"


def format_failures(failed: Mapping[str, str]) -> str:
    """`{"pdf": "ValueError: ..."}` -> "pdf failed: ValueError: ..." (one line per format)."""
    return "\n".join(f"{fmt} failed: {reason}" for fmt, reason in sorted(failed.items()))


def complete_run(
    session: Session,
    run: ReportRun,
    report: Report,
    files: Mapping[str, str],
    url: str,
    now: datetime | None = None,
    *,
    failed: Mapping[str, str] | None = None,
) -> None:
    """Record the files (format -> object key) and tell the recipients (`report.ready` in the outbox,
    turned into in-app and email notifications with the link). Formats that could not be rendered
    (`failed`: format -> reason) are named in the job's `error`; the job is still completed with the
    files it has."""
    now = now or utcnow()
    run.status, run.finished_at, run.files = "completed", now, dict(files)
    run.error = format_failures(failed)[:2000] if failed else None
    report.last_generated = now
    recipients = list(report.recipients)
    if run.requested_by is not None and str(run.requested_by) not in recipients:
        recipients.append(str(run.requested_by))
    if recipients:
        record_event(
            session,
            REPORT_READY,
            "report",
            report.id,
            {
                "name": report.name,
                "report_id": str(report.id),
                "job_id": str(run.id),
                "period": period_label(run),
                "formats": sorted(files),
                "failed_formats": sorted(failed or {}),
                "url": url,
                "recipients": recipients,
            },
            at=now,
        )


def fail_run(session: Session, run: ReportRun, reason: str, now: datetime | None = None) -> None:
    run.status, run.finished_at, run.error = "failed", now or utcnow(), reason[:2000]
