"""`/api/v1/analytics/reports` and `/api/v1/analytics/alerts`: report definitions and jobs, alert rules
and the alerts they raised.

Reports are rendered by the Dagster job `analytics_report_job`, which `analytics_reports_sensor`
launches for every queued job; this API only queues, lists and serves the files. Alert rules are
evaluated every 30 s by `analytics_alerts_sensor` (see `domain.analytics.alerts`).

Who may do what: reading definitions, jobs, files, rules and alerts takes `analytics:read`; creating
and generating report definitions and creating alert rules take `analytics:manage` (editors and
admins), and a definition or a rule is deactivated only by the user who created it or an admin (any
manager may generate any definition now). Per-user limits and the recipients rule are in
`domain.analytics.report_jobs`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

import anyio
import msgspec
import sqlalchemy as sa
from litestar import Controller, Request, delete, get, post
from litestar.di import NamedDependency
from litestar.exceptions import PermissionDeniedException, TooManyRequestsException
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.response import Stream
from litestar.status_codes import HTTP_201_CREATED, HTTP_202_ACCEPTED
from sqlalchemy.orm import Session

from domain.analytics import alerts, report_jobs
from domain.analytics.reports import formats
from domain.errors import InvalidValue, NotFound
from domain.schema import Alert, AlertRule, Report, ReportRun, utcnow
from resources.object_store import ObjectStore
from serving.auth.principal import Principal
from serving.db import Database
from serving.deployment import Backends
from serving.permissions import ANALYTICS_MANAGE, ANALYTICS_READ, requires

AuthedRequest = Request[Principal, Any, Any]
ADMIN_ROLE = "admin"
T = TypeVar("T")


def _check_owner(principal: Principal, created_by: uuid.UUID | None, what: str) -> None:
    """Only the creator of a definition or rule, or an admin, changes it."""
    if created_by != principal.user_id and ADMIN_ROLE not in principal.roles:
        raise PermissionDeniedException(f"only the creator of this {what} or an admin may change it")


def _found(session: Session, model: type[T], row_id: uuid.UUID, what: str) -> T:
    """The row of `model` with this id, or a 404 naming `what` was asked for."""
    row = session.get(model, row_id)
    if row is None:
        raise NotFound(f"no {what} {row_id}")
    return row


class GenerateReport(msgspec.Struct, forbid_unknown_fields=True):
    """Either `report_id` (generate an existing definition now) or a new definition: `name`,
    `report_type`, and optionally `description`, `configuration` (`formats`: csv/xlsx/pdf/json,
    `language`: ar/en, `period`: previous_day/previous_week/previous_month/last_7_days/last_30_days or
    custom with `start`/`end`, `top`), `schedule` (cron, UTC: the report is also generated on it) and
    `recipients` (user ids or users' emails; they are notified with the link when it is ready)."""

    report_id: uuid.UUID | None = None
    name: str | None = None
    report_type: Literal["content", "user", "search", "system", "custom"] | None = None
    description: str = ""
    configuration: dict[str, Any] = {}
    schedule: str | None = None
    recipients: list[str] = []
    run_now: bool = True


class ReportJobOut(msgspec.Struct):
    job_id: str
    report_id: str
    status: str
    trigger: str
    period_start: str
    period_end: str
    created_at: str
    started_at: str | None
    finished_at: str | None
    error: str | None
    files: dict[str, str]  # format -> download path


class ReportOut(msgspec.Struct):
    report_id: str
    name: str
    description: str
    report_type: str
    configuration: dict[str, Any]
    schedule: str | None
    recipients: list[str]
    is_active: bool
    last_generated: str | None
    next_run_at: str | None
    created_at: str
    jobs: list[ReportJobOut] = []


class GenerateResult(msgspec.Struct):
    report_id: str
    job_id: str | None
    status: str
    next_run_at: str | None


class AlertRuleIn(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    metric: str
    threshold: float
    kind: str = "absolute"
    comparison: str = "above"
    window_minutes: int = 5
    recipients: list[str] = []
    escalate_after: int = 3
    escalation_recipients: list[str] = []


class AlertRuleOut(msgspec.Struct):
    rule_id: str
    name: str
    metric: str
    kind: str
    comparison: str
    threshold: float
    window_minutes: int
    recipients: list[str]
    escalate_after: int
    escalation_recipients: list[str]
    is_active: bool
    created_at: str


class AlertOut(msgspec.Struct):
    alert_id: str
    rule_id: str
    rule_name: str
    status: str
    value: float
    baseline: float | None
    breaches: int
    message: str
    fired_at: str
    last_evaluated_at: str
    escalated_at: str | None
    resolved_at: str | None


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _job_out(run: ReportRun) -> ReportJobOut:
    return ReportJobOut(
        job_id=str(run.id),
        report_id=str(run.report_id),
        status=run.status,
        trigger=run.trigger,
        period_start=run.period_start.date().isoformat(),
        period_end=run.period_end.date().isoformat(),
        created_at=run.created_at.isoformat(),
        started_at=_iso(run.started_at),
        finished_at=_iso(run.finished_at),
        error=run.error,
        files={
            fmt: f"/api/v1/analytics/reports/jobs/{run.id}/files/{fmt}" for fmt in sorted(run.files or {})
        },
    )


def _report_out(report: Report, jobs: list[ReportRun] | None = None) -> ReportOut:
    return ReportOut(
        report_id=str(report.id),
        name=report.name,
        description=report.description,
        report_type=report.report_type,
        configuration=dict(report.configuration),
        schedule=report.schedule,
        recipients=list(report.recipients),
        is_active=report.is_active,
        last_generated=_iso(report.last_generated),
        next_run_at=_iso(report.next_run_at),
        created_at=report.created_at.isoformat(),
        jobs=[_job_out(j) for j in jobs or []],
    )


def _rule_out(rule: AlertRule) -> AlertRuleOut:
    return AlertRuleOut(
        rule_id=str(rule.id),
        name=rule.name,
        metric=rule.metric,
        kind=rule.kind,
        comparison=rule.comparison,
        threshold=rule.threshold,
        window_minutes=rule.window_minutes,
        recipients=list(rule.recipients),
        escalate_after=rule.escalate_after,
        escalation_recipients=list(rule.escalation_recipients),
        is_active=rule.is_active,
        created_at=rule.created_at.isoformat(),
    )


def _alert_out(alert: Alert, rule_name: str) -> AlertOut:
    return AlertOut(
        alert_id=str(alert.id),
        rule_id=str(alert.rule_id),
        rule_name=rule_name,
        status=alert.status,
        value=alert.value,
        baseline=alert.baseline,
        breaches=alert.breaches,
        message=alert.message,
        fired_at=alert.fired_at.isoformat(),
        last_evaluated_at=alert.last_evaluated_at.isoformat(),
        escalated_at=_iso(alert.escalated_at),
        resolved_at=_iso(alert.resolved_at),
    )


def _recent_jobs(session: Session, report_id: uuid.UUID, limit: int = 10) -> list[ReportRun]:
    return list(
        session.scalars(
            sa.select(ReportRun)
            .where(ReportRun.report_id == report_id)
            .order_by(ReportRun.created_at.desc())
            .limit(limit)
        )
    )


class AnalyticsManagementController(Controller):
    path = "/api/v1/analytics"
    tags = ["analytics"]

    @post(
        "/reports/generate",
        opt=requires(ANALYTICS_MANAGE),
        operation_id="generateReport",
        summary="Generate a report now (an existing definition, or a new one, optionally scheduled)",
        description="Queues a report job and answers 202 with its `job_id`; the job renders the requested "
        "formats (CSV, Excel and PDF with charts, JSON) within seconds once the Dagster sensor picks it up, "
        "and the recipients (and you) get a notification with the link. With a `schedule` (cron, UTC) the "
        "definition is also generated on that schedule (at most hourly). `run_now: false` only saves the "
        "definition. Each user has at most 50 active definitions and 20 generations an hour (429 with "
        "`Retry-After`); recipients are users who hold `analytics:read`.",
        status_code=HTTP_202_ACCEPTED,
    )
    async def generate(
        self, request: AuthedRequest, data: JSONBody[GenerateReport], db: NamedDependency[Database]
    ) -> GenerateResult:
        user_id = request.user.user_id

        def queue(session: Session) -> GenerateResult:
            if data.report_id is not None:
                report = _found(session, Report, data.report_id, "report")
                if data.run_now:
                    report_jobs.check_generation_rate(session, user_id)
            else:
                if not data.name:
                    raise InvalidValue("name is required for a new report (or give report_id)", field="name")
                if data.report_type is None:
                    raise InvalidValue("report_type is required for a new report", field="report_type")
                report_jobs.check_report_cap(session, user_id)
                if data.run_now:
                    report_jobs.check_generation_rate(session, user_id)
                report = report_jobs.create_report(
                    session,
                    report_jobs.NewReport(
                        name=data.name,
                        report_type=data.report_type,
                        description=data.description,
                        configuration=data.configuration,
                        schedule=data.schedule,
                        recipients=data.recipients,
                    ),
                    created_by=user_id,
                )
            run = (
                report_jobs.request_run(session, report, trigger="manual", requested_by=user_id)
                if data.run_now
                else None
            )
            return GenerateResult(
                report_id=str(report.id),
                job_id=str(run.id) if run else None,
                status=run.status if run else "saved",
                next_run_at=_iso(report.next_run_at),
            )

        try:
            return await db.write(queue)
        except report_jobs.LimitReached as exc:
            raise TooManyRequestsException(exc.detail, headers={"Retry-After": str(exc.retry_after)}) from exc

    @delete(
        "/reports/{report_id:uuid}",
        opt=requires(ANALYTICS_MANAGE),
        operation_id="deactivateReport",
        summary="Deactivate a report definition (no more scheduled generations; its jobs and files are kept)",
        description="Only the definition's creator or an admin may; a deactivated definition no longer "
        "counts towards the creator's 50 active ones.",
    )
    async def deactivate_report(
        self, request: AuthedRequest, report_id: FromPath[uuid.UUID], db: NamedDependency[Database]
    ) -> None:
        principal = request.user

        def off(session: Session) -> None:
            report = _found(session, Report, report_id, "report")
            _check_owner(principal, report.created_by, "report")
            report_jobs.deactivate_report(session, report)

        await db.write(off)

    @get(
        "/reports",
        opt=requires(ANALYTICS_READ),
        operation_id="listReports",
        summary="Report definitions, newest first",
    )
    async def list_reports(
        self, db: NamedDependency[Database], limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50
    ) -> list[ReportOut]:
        def read(session: Session) -> list[ReportOut]:
            rows = session.scalars(sa.select(Report).order_by(Report.created_at.desc()).limit(limit))
            return [_report_out(r) for r in rows]

        return await db.read(read)

    @get(
        "/reports/{report_id:uuid}",
        opt=requires(ANALYTICS_READ),
        operation_id="getReport",
        summary="A report definition with its 10 latest jobs",
    )
    async def get_report(self, report_id: FromPath[uuid.UUID], db: NamedDependency[Database]) -> ReportOut:
        def read(session: Session) -> ReportOut:
            report = _found(session, Report, report_id, "report")
            return _report_out(report, _recent_jobs(session, report_id))

        return await db.read(read)

    @get(
        "/reports/jobs/{job_id:uuid}",
        opt=requires(ANALYTICS_READ),
        operation_id="getReportJob",
        summary="A report job: its status, and the download path of each file once completed",
    )
    async def get_job(self, job_id: FromPath[uuid.UUID], db: NamedDependency[Database]) -> ReportJobOut:
        return await db.read(lambda s: _job_out(report_jobs.get_run(s, job_id)[0]))

    @get(
        "/reports/jobs/{job_id:uuid}/files/{fmt:str}",
        opt=requires(ANALYTICS_READ),
        operation_id="downloadReportFile",
        summary="Download one file of a completed report job (csv, xlsx, pdf or json)",
        media_type="application/octet-stream",
    )
    async def download(
        self,
        job_id: FromPath[uuid.UUID],
        fmt: FromPath[str],
        db: NamedDependency[Database],
        backends: NamedDependency[Backends],
    ) -> Stream:
        run, report = await db.read(lambda s: report_jobs.get_run(s, job_id))
        key = (run.files or {}).get(fmt)
        if key is None:
            raise NotFound(f"report job {job_id} has no {fmt!r} file (status: {run.status})")
        store: ObjectStore = backends.object_store
        filename = f"report-{run.period_start.date().isoformat()}{formats.EXTENSIONS[fmt]}"
        if not await anyio.to_thread.run_sync(store.exists, key):
            raise NotFound(f"the {fmt} file of report job {job_id} is no longer in the object store")

        async def chunks() -> AsyncIterator[bytes]:
            source = await anyio.to_thread.run_sync(store.open, key)  # opened only once streaming starts
            try:
                while block := await anyio.to_thread.run_sync(source.read, 1 << 20):
                    yield block
            finally:
                source.close()

        return Stream(
            chunks(),
            media_type=formats.CONTENT_TYPES[fmt],
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    @post(
        "/alerts/rules",
        opt=requires(ANALYTICS_MANAGE),
        operation_id="createAlertRule",
        summary="Create an alert rule on a live metric",
        description="`metric`: `events.<type>` (tracked events), `http.requests`, `http.error_rate`, "
        "`http.client_error_rate` (percent) or `http.p95_ms`, summed over the last `window_minutes` "
        "complete minutes. `kind`: `absolute` (the value against `threshold`), `percent_change` (change in "
        "percent against the window before) or `same_hour_last_week` (change in percent against the same "
        "window 7 days earlier); `comparison`: above or below. Evaluated every 30 s; the `recipients` (user "
        "ids or emails of users who hold `analytics:read`; default: admins) are notified when it fires and "
        "resolves, the `escalation_recipients` when it is still firing after `escalate_after` evaluations.",
        status_code=HTTP_201_CREATED,
    )
    async def create_rule(
        self, request: AuthedRequest, data: JSONBody[AlertRuleIn], db: NamedDependency[Database]
    ) -> AlertRuleOut:
        errors = alerts.validate_rule(
            data.metric, data.kind, data.comparison, data.threshold, data.window_minutes
        )
        if not data.name.strip():
            errors.append(("name", "must not be empty"))
        if not 0 <= data.escalate_after <= 10_000:
            errors.append(("escalate_after", "must be from 0 (never) to 10000 evaluations"))
        if errors:
            field, message = errors[0]
            raise InvalidValue(f"{field}: {message}", field=field)
        user_id = request.user.user_id

        def save(session: Session) -> AlertRuleOut:
            rule = AlertRule(
                name=data.name.strip()[:200],
                metric=data.metric,
                kind=data.kind,
                comparison=data.comparison,
                threshold=data.threshold,
                window_minutes=data.window_minutes,
                recipients=report_jobs.resolve_recipients(session, data.recipients),
                escalate_after=data.escalate_after,
                escalation_recipients=report_jobs.resolve_recipients(session, data.escalation_recipients),
                created_by=user_id,
                created_at=utcnow(),
            )
            session.add(rule)
            session.flush()
            return _rule_out(rule)

        return await db.write(save)

    @get("/alerts/rules", opt=requires(ANALYTICS_READ), operation_id="listAlertRules", summary="Alert rules")
    async def list_rules(self, db: NamedDependency[Database]) -> list[AlertRuleOut]:
        return await db.read(
            lambda s: [_rule_out(r) for r in s.scalars(sa.select(AlertRule).order_by(AlertRule.created_at))]
        )

    @delete(
        "/alerts/rules/{rule_id:uuid}",
        opt=requires(ANALYTICS_MANAGE),
        operation_id="deactivateAlertRule",
        summary="Deactivate an alert rule (its open alert is resolved; its history is kept)",
        description="Only the rule's creator or an admin may.",
    )
    async def deactivate_rule(
        self, request: AuthedRequest, rule_id: FromPath[uuid.UUID], db: NamedDependency[Database]
    ) -> None:
        principal = request.user

        def off(session: Session) -> None:
            rule = _found(session, AlertRule, rule_id, "alert rule")
            _check_owner(principal, rule.created_by, "alert rule")
            rule.is_active = False
            now = utcnow()
            for alert in session.scalars(
                sa.select(Alert).where(Alert.rule_id == rule_id, Alert.status == "firing")
            ):
                alert.status, alert.resolved_at, alert.last_evaluated_at = "resolved", now, now
                alert.message = f"{alert.message} (rule deactivated)".strip()

        await db.write(off)

    @get(
        "/alerts",
        opt=requires(ANALYTICS_READ),
        operation_id="listAlerts",
        summary="Alerts raised by the rules, newest first (firing ones with `status=firing`)",
    )
    async def list_alerts(
        self,
        db: NamedDependency[Database],
        status: Annotated[Literal["firing", "resolved"] | None, QueryParameter()] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> list[AlertOut]:
        def read(session: Session) -> list[AlertOut]:
            query = (
                sa.select(Alert, AlertRule.name)
                .join(AlertRule, AlertRule.id == Alert.rule_id)
                .order_by(Alert.fired_at.desc())
                .limit(limit)
            )
            if status:
                query = query.where(Alert.status == status)
            return [_alert_out(alert, name) for alert, name in session.execute(query)]

        return await db.read(read)
