"""Notification commands and queries of the API: sync ORM functions run by `Database.read/write`,
and the conversions from rows to response structs."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from domain.errors import InvalidValue, NotFound
from domain.notifications import audience, inbox, masking, schedule, templates
from domain.notifications.service import ANY_TYPE, Draft
from domain.schema import (
    Broadcast,
    DeliveryLog,
    Notification,
    NotificationPreference,
    NotificationSubscription,
    NotificationTemplate,
    utcnow,
)
from serving.notifications.schemas import (
    BroadcastRequest,
    BroadcastStatus,
    ContactOut,
    DeliveryOut,
    DeliveryReport,
    InboxItem,
    PreferenceIn,
    PreferenceOut,
    PreviewRequest,
    SubscriptionOut,
    TemplateIn,
    TemplateOut,
)

# Template parts as the API names them (the fields of a template body).
TEMPLATE_FIELDS = {"subject": "subject_template", "text": "content_template", "html": "html_template"}
_HIDDEN_METADATA = ("secret",)  # delivery metadata keys containing this are never returned


def aware(value: datetime | None, field: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise InvalidValue("give a time zone offset (e.g. 2026-05-01T09:00:00+03:00 or ...Z)", field=field)
    return value


# --- inbox ----------------------------------------------------------------------------------------


def inbox_item(entry: inbox.Entry, threads: bool) -> InboxItem:
    n = entry.notification
    item = InboxItem(
        id=n.id,
        thread_id=entry.thread_id,
        category=n.category,
        notification_type=n.notification_type,
        subject=n.subject,
        content=n.content,
        language=n.language,
        direction=templates.text_direction(n.language),
        status=n.status,
        critical=n.critical,
        read=n.read_at is not None,
        metadata=n.meta or {},
        created_at=n.created_at,
        delivered_at=n.delivered_at,
        read_at=n.read_at,
        event_id=n.event_id,
    )
    if threads:
        item.count, item.unread = entry.count, entry.unread
    return item


# --- preferences ----------------------------------------------------------------------------------


def _hhmm(value: time | None) -> str | None:
    return None if value is None else value.strftime("%H:%M")


def preference_out(row: NotificationPreference) -> PreferenceOut:
    return PreferenceOut(
        notification_type=row.notification_type,
        channel=row.channel,
        is_enabled=row.is_enabled,
        frequency=row.frequency,
        quiet_hours_start=_hhmm(row.quiet_hours_start),
        quiet_hours_end=_hhmm(row.quiet_hours_end),
        timezone=row.timezone,
        updated_at=row.updated_at,
    )


def _checked_preference(item: PreferenceIn, index: int) -> dict[str, Any]:
    """The column values of one preference, or `InvalidValue` naming `preferences[index].<field>`."""
    prefix = f"preferences[{index}]"
    try:
        schedule.zone(item.timezone)
        if item.notification_type != ANY_TYPE and not all(
            c.isalnum() or c in "_.:-" for c in item.notification_type
        ):
            raise InvalidValue(
                "notification_type is a category (letters, digits, _ . : -) or * for every type",
                field="notification_type",
            )
        start = end = None
        if (item.quiet_hours_start is None) != (item.quiet_hours_end is None):
            missing = "quiet_hours_end" if item.quiet_hours_end is None else "quiet_hours_start"
            raise InvalidValue("quiet hours need both a start and an end (HH:MM)", field=missing)
        if item.quiet_hours_start is not None and item.quiet_hours_end is not None:
            start = schedule.parse_time(item.quiet_hours_start, "quiet_hours_start")
            end = schedule.parse_time(item.quiet_hours_end, "quiet_hours_end")
            schedule.QuietHours(start, end, item.timezone)
    except InvalidValue as exc:
        raise InvalidValue(exc.detail, field=f"{prefix}.{exc.field}" if exc.field else prefix) from exc
    return {
        "is_enabled": item.is_enabled,
        "frequency": item.frequency,
        "quiet_hours_start": start,
        "quiet_hours_end": end,
        "timezone": item.timezone,
    }


def check_preferences(items: list[PreferenceIn]) -> list[tuple[PreferenceIn, dict[str, Any]]]:
    checked = [(item, _checked_preference(item, index)) for index, item in enumerate(items)]
    seen: dict[tuple[str, str], int] = {}
    for index, (item, _) in enumerate(checked):
        key = (item.notification_type, item.channel)
        if key in seen:
            raise InvalidValue(
                f"the same notification_type and channel as preferences[{seen[key]}]",
                field=f"preferences[{index}].notification_type",
            )
        seen[key] = index
    return checked


def save_preferences(
    session: Session, user_id: uuid.UUID, checked: list[tuple[PreferenceIn, dict[str, Any]]]
) -> list[NotificationPreference]:
    now = utcnow()
    for item, values in checked:
        row = session.get(NotificationPreference, (user_id, item.notification_type, item.channel))
        if row is None:
            row = NotificationPreference(
                user_id=user_id, notification_type=item.notification_type, channel=item.channel
            )
            session.add(row)
        for name, value in values.items():
            setattr(row, name, value)
        row.updated_at = now
    session.flush()
    return preferences_of(session, user_id)


def preferences_of(session: Session, user_id: uuid.UUID) -> list[NotificationPreference]:
    return list(
        session.scalars(
            sa.select(NotificationPreference)
            .where(NotificationPreference.user_id == user_id)
            .order_by(NotificationPreference.notification_type, NotificationPreference.channel)
        )
    )


# --- contacts and subscriptions -------------------------------------------------------------------


def contact_out(row: Any) -> ContactOut:
    return ContactOut(
        id=row.id,
        channel=row.channel,
        address=row.address,
        has_secret=bool(row.secret_encrypted),
        is_active=row.is_active,
        created_at=row.created_at,
    )


def follow(session: Session, user_id: uuid.UUID, topic: str) -> tuple[NotificationSubscription, bool]:
    topic = audience.check_topic(topic)
    row = session.get(NotificationSubscription, (user_id, topic))
    if row is not None:
        return row, False
    row = NotificationSubscription(user_id=user_id, topic=topic, created_at=utcnow())
    session.add(row)
    session.flush()
    return row, True


def unfollow(session: Session, user_id: uuid.UUID, topic: str) -> None:
    topic = audience.check_topic(topic)
    row = session.get(NotificationSubscription, (user_id, topic))
    if row is None:
        raise NotFound(f"you do not follow {topic}")
    session.delete(row)


def subscriptions_of(session: Session, user_id: uuid.UUID) -> list[SubscriptionOut]:
    rows = session.scalars(
        sa.select(NotificationSubscription)
        .where(NotificationSubscription.user_id == user_id)
        .order_by(NotificationSubscription.topic)
    )
    return [SubscriptionOut(topic=r.topic, created_at=r.created_at) for r in rows]


# --- templates ------------------------------------------------------------------------------------


def template_out(row: NotificationTemplate) -> TemplateOut:
    return TemplateOut(
        id=row.id,
        name=row.name,
        template_type=row.template_type,
        language=row.language,
        version=row.version,
        is_active=row.is_active,
        subject_template=row.subject_template,
        content_template=row.content_template,
        html_template=row.html_template,
        template_data=row.template_data or {},
        created_by=row.created_by,
        created_at=row.created_at,
    )


def normalized_language(tag: str) -> str:
    """`ar_sa` -> `ar-SA`: templates are keyed by the tag the locale chain compares with."""
    return templates.locale_chain(tag, "")[0]


def check_template(data: TemplateIn) -> templates.Rendered:
    """Compile and render the template with its sample data; `TemplateError` when it cannot."""
    source = templates.TemplateSource(data.subject_template, data.content_template, data.html_template)
    if not any(part and part.strip() for part in (source.subject, source.text, source.html)):
        raise InvalidValue("give at least a subject, a content or an HTML template", field="content_template")
    return templates.validate(
        source,
        language=normalized_language(data.language),
        channel=data.template_type,
        sample=data.template_data.sample,
    )


def save_template(session: Session, data: TemplateIn, created_by: uuid.UUID) -> NotificationTemplate:
    """Add version N+1 of (name, channel, language) and deactivate the active one, in one transaction
    (two saves racing for the same version number: the unique index refuses one, a 409)."""
    language = normalized_language(data.language)
    same = (
        NotificationTemplate.name == data.name,
        NotificationTemplate.template_type == data.template_type,
        NotificationTemplate.language == language,
    )
    latest = session.scalar(sa.select(sa.func.max(NotificationTemplate.version)).where(*same)) or 0
    session.execute(
        sa.update(NotificationTemplate)
        .where(*same, NotificationTemplate.is_active.is_(True))
        .values(is_active=False),
        execution_options={"synchronize_session": False},
    )
    row = NotificationTemplate(
        name=data.name,
        template_type=data.template_type,
        language=language,
        subject_template=data.subject_template,
        content_template=data.content_template,
        html_template=data.html_template,
        template_data={"sample": data.template_data.sample, "push": data.template_data.push},
        version=latest + 1,
        is_active=True,
        created_by=created_by,
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return row


def active_templates(session: Session, name: str | None, channel: str | None) -> list[NotificationTemplate]:
    query = sa.select(NotificationTemplate).where(NotificationTemplate.is_active.is_(True))
    if name:
        query = query.where(NotificationTemplate.name == name)
    if channel:
        query = query.where(NotificationTemplate.template_type == channel)
    order = (NotificationTemplate.name, NotificationTemplate.template_type, NotificationTemplate.language)
    return list(session.scalars(query.order_by(*order)))


def template_versions(
    session: Session, name: str, channel: str | None, language: str | None
) -> list[NotificationTemplate]:
    query = sa.select(NotificationTemplate).where(NotificationTemplate.name == name)
    if channel:
        query = query.where(NotificationTemplate.template_type == channel)
    if language:
        query = query.where(NotificationTemplate.language == normalized_language(language))
    order = (
        NotificationTemplate.template_type,
        NotificationTemplate.language,
        NotificationTemplate.version.desc(),
    )
    rows = list(session.scalars(query.order_by(*order)))
    if not rows:
        raise NotFound(f"no template named {name!r}")
    return rows


def preview_source(
    session: Session, data: PreviewRequest
) -> tuple[templates.TemplateSource, Mapping[str, Any], str, str]:
    """(source, data, language, channel) of a preview request."""
    if data.template_id is not None:
        row = session.get(NotificationTemplate, data.template_id)
        if row is None:
            raise NotFound(f"template {data.template_id} does not exist")
        source = templates.TemplateSource(row.subject_template, row.content_template, row.html_template)
        sample = data.data if data.data is not None else (row.template_data or {}).get("sample", {})
        return source, sample, row.language, row.template_type
    parts = (data.subject_template, data.content_template, data.html_template)
    if not any(p and p.strip() for p in parts):
        raise InvalidValue(
            "give a template_id, or a subject/content/html template to render", field="template_id"
        )
    source = templates.TemplateSource(
        data.subject_template or "", data.content_template or "", data.html_template
    )
    return source, data.data or {}, normalized_language(data.language), data.template_type


# --- deliveries -----------------------------------------------------------------------------------


def _public_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (metadata or {}).items() if not any(h in k.lower() for h in _HIDDEN_METADATA)}


def _delivery_out(log: DeliveryLog, reveal: bool) -> DeliveryOut:
    """One delivery; its destination (and error text naming it) in full only when `reveal`."""
    destination, error = log.destination, log.error_message
    if not reveal:
        error = masking.mask_text(error, log.channel, destination)
        destination = masking.mask_destination(log.channel, destination)
    return DeliveryOut(
        id=log.id,
        channel=log.channel,
        destination=destination,
        status=log.status,
        attempts=log.attempt_count,
        last_attempt=log.last_attempt,
        next_retry=log.next_retry,
        error_message=error,
        metadata=_public_metadata(log.delivery_metadata),
        created_at=log.created_at,
        updated_at=log.updated_at,
    )


def delivery_report(
    session: Session, notification_id: uuid.UUID, viewer: uuid.UUID, may_manage: bool
) -> DeliveryReport:
    """The report for its recipient, its sender, or a manager (`notifications:manage`); anyone else
    gets the 404 an unknown id gets. Destinations (and error text naming them) are masked for all
    but the recipient."""
    n = session.get(Notification, notification_id)
    if n is None or not (may_manage or viewer in (n.recipient_id, n.sender_id)):
        raise NotFound(f"notification {notification_id} does not exist")
    reveal = n.recipient_id == viewer
    logs = session.scalars(
        sa.select(DeliveryLog)
        .where(DeliveryLog.notification_id == n.id)
        .order_by(DeliveryLog.created_at, DeliveryLog.id)
    )
    return DeliveryReport(
        notification_id=n.id,
        recipient_id=n.recipient_id,
        channel=n.channel,
        category=n.category,
        status=n.status,
        critical=n.critical,
        created_at=n.created_at,
        scheduled_at=n.scheduled_at,
        sent_at=n.sent_at,
        delivered_at=n.delivered_at,
        read_at=n.read_at,
        pushed_at=n.pushed_at,
        deliveries=[_delivery_out(log, reveal) for log in logs],
    )


# --- broadcasts -----------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    return dict(value) if isinstance(value, Mapping) else value


def create_broadcast(
    session: Session, data: BroadcastRequest, created_by: uuid.UUID, *, default_language: str
) -> tuple[Broadcast, int]:
    """Check and queue a broadcast; (row, how many users match its criteria now)."""
    aware(data.scheduled_at, "scheduled_at")
    Draft(  # the same checks a send gets: channels, severity, a template or a message
        category=data.category,
        channels=data.channels,
        template=data.template,
        subject=data.subject,
        content=data.content,
        notification_type=data.notification_type,
    )
    raw = {
        k: getattr(data.criteria, k) for k in audience.CRITERIA_KEYS if getattr(data.criteria, k) is not None
    }
    criteria = audience.check_criteria(session, raw)
    if data.template:
        for channel in data.channels:
            exists = session.scalar(
                sa.select(NotificationTemplate.id)
                .where(
                    NotificationTemplate.name == data.template,
                    NotificationTemplate.template_type == channel,
                    NotificationTemplate.is_active.is_(True),
                )
                .limit(1)
            )
            if exists is None:
                raise InvalidValue(
                    f"there is no active {channel} template named {data.template!r}", field="template"
                )
    now = utcnow()
    row = Broadcast(
        name=data.name,
        category=data.category,
        notification_type=data.notification_type,
        template_name=data.template,
        message={"subject": _plain(data.subject), "content": _plain(data.content)},
        data=data.data,
        criteria=criteria,
        channels=list(data.channels),
        critical=data.critical,
        status="queued",
        scheduled_at=data.scheduled_at,
        created_by=created_by,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    return row, audience.count(session, criteria, now=now, default_language=default_language)


def broadcast_status(session: Session, broadcast_id: uuid.UUID) -> BroadcastStatus:
    row = session.get(Broadcast, broadcast_id)
    if row is None:
        raise NotFound(f"broadcast {broadcast_id} does not exist")
    if row.total_recipients:
        percent = min(100.0, 100.0 * row.processed_recipients / row.total_recipients)
    else:
        percent = 100.0 if row.status == "completed" else 0.0
    return BroadcastStatus(
        broadcast_id=row.id,
        name=row.name,
        status=row.status,
        channels=list(row.channels or []),
        criteria=row.criteria or {},
        total_recipients=row.total_recipients,
        processed_recipients=row.processed_recipients,
        notifications_created=row.notifications_created,
        percent=round(percent, 1),
        error=row.error,
        scheduled_at=row.scheduled_at,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )
