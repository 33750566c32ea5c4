"""Creating notifications: templates per recipient language, preferences, quiet hours, digests.

`send` is the one way a notification comes to exist (API calls, event rules, broadcasts): for each
recipient and channel it applies the recipient's preference (off, frequency, quiet hours), renders
the template in the recipient's language (`ar-SA` -> `ar` -> default), inserts the `Notification`
and, for email/SMS/push/webhook, one `DeliveryLog` per destination, due when the preference allows.
In-app notifications are `sent` at once; the serving layer pushes them over the WebSocket.

A recipient who cannot be reached on a channel (no email address, no device) gets the notification
recorded as `failed` with the reason, so the sender sees why in the delivery API.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from domain import outbox
from domain.errors import InvalidValue
from domain.ids import new_id
from domain.notifications import schedule, templates
from domain.notifications.events import NOTIFICATION_CREATED
from domain.notifications.outgoing import CHANNELS
from domain.schema import (
    NOTIFICATION_SEVERITIES,
    DeliveryLog,
    Notification,
    NotificationContact,
    NotificationPreference,
    NotificationTemplate,
    User,
    utcnow,
)

ANY_TYPE = "*"


@dataclass(frozen=True)
class Preference:
    is_enabled: bool = True
    frequency: str = "immediate"
    quiet: schedule.QuietHours | None = None
    timezone: str = "UTC"


DEFAULT_PREFERENCE = Preference()


@dataclass
class Draft:
    """What to send. Either `template` (a template name; rendered per recipient language) or literal
    `subject`/`content` (a string, or `{"ar": ..., "en": ...}`) must be given."""

    category: str
    channels: Sequence[str] = ("in_app",)
    template: str | None = None
    subject: str | Mapping[str, str] | None = None
    content: str | Mapping[str, str] | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    notification_type: str = "info"
    critical: bool = False
    sender_id: uuid.UUID | None = None
    event_id: uuid.UUID | None = None
    broadcast_id: uuid.UUID | None = None
    scheduled_at: datetime | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [c for c in self.channels if c not in CHANNELS]
        if unknown or not self.channels:
            raise InvalidValue(
                f"channels must be some of {', '.join(CHANNELS)}; got {unknown or 'none'}", field="channels"
            )
        if self.notification_type not in NOTIFICATION_SEVERITIES:
            raise InvalidValue(
                f"notification_type must be one of {', '.join(NOTIFICATION_SEVERITIES)}",
                field="notification_type",
            )
        if not self.template and not (self.subject or self.content):
            raise InvalidValue("give a template name or a subject/content", field="template")


@dataclass
class Outcome:
    notifications: list[Notification] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"recipient_id", "channel", "reason"}


def user_locale(user: User, default: str) -> str:
    prefs = user.preferences or {}
    return str(prefs.get("locale") or prefs.get("language") or default)


def preferences_for(
    session: Session, user_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, dict[tuple[str, str], Preference]]:
    ids = list(user_ids)
    found: dict[uuid.UUID, dict[tuple[str, str], Preference]] = {}
    for chunk in _chunks(ids, 500):
        for row in session.scalars(
            sa.select(NotificationPreference).where(NotificationPreference.user_id.in_(chunk))
        ):
            quiet = None
            if row.quiet_hours_start is not None and row.quiet_hours_end is not None:
                quiet = schedule.QuietHours(row.quiet_hours_start, row.quiet_hours_end, row.timezone or "UTC")
            found.setdefault(row.user_id, {})[(row.notification_type, row.channel)] = Preference(
                row.is_enabled, row.frequency, quiet, row.timezone or "UTC"
            )
    return found


def effective(prefs: Mapping[tuple[str, str], Preference], category: str, channel: str) -> Preference:
    return prefs.get((category, channel)) or prefs.get((ANY_TYPE, channel)) or DEFAULT_PREFERENCE


def active_templates(session: Session, name: str, channel: str) -> dict[str, NotificationTemplate]:
    rows = session.scalars(
        sa.select(NotificationTemplate).where(
            NotificationTemplate.name == name,
            NotificationTemplate.template_type == channel,
            NotificationTemplate.is_active.is_(True),
        )
    )
    return {row.language: row for row in rows}


def add_missing_templates(
    session: Session,
    wanted: Iterable[tuple[str, str, str, templates.TemplateSource]],
    *,
    template_data: Mapping[str, Any] | None = None,
) -> int:
    """Add version 1 of each (name, channel, language, source) in `wanted` that has no version yet;
    edited templates are left alone. Returns how many were added. Idempotent: how the built-in
    templates (rules' defaults, the account emails) reach the database."""
    wanted = list(wanted)
    names = sorted({name for name, _, _, _ in wanted})
    existing = set(
        session.execute(
            sa.select(
                NotificationTemplate.name, NotificationTemplate.template_type, NotificationTemplate.language
            ).where(NotificationTemplate.name.in_(names))
        ).tuples()
    )
    added = 0
    for name, channel, language, source in wanted:
        if (name, channel, language) in existing:
            continue
        session.add(
            NotificationTemplate(
                name=name,
                template_type=channel,
                language=language,
                subject_template=source.subject,
                content_template=source.text,
                html_template=source.html,
                template_data=dict(template_data or {}),
                version=1,
                is_active=True,
            )
        )
        added += 1
    session.flush()
    return added


def _literal(value: str | Mapping[str, str] | None, locale: str, default: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    picked = templates.pick(value, locale, default)
    if picked is None:
        picked = next(iter(value.items()), ("", ""))
    return picked[1]


def compose(
    draft: Draft,
    channel: str,
    locale: str,
    default_language: str,
    available: Mapping[str, NotificationTemplate],
    data: Mapping[str, Any],
) -> tuple[templates.Rendered, uuid.UUID | None] | None:
    """The rendered message for one channel and locale, and the template used (None: literal)."""
    if draft.template and available:
        picked = templates.pick(available, locale, default_language)
        if picked is not None:
            language, row = picked
            source = templates.TemplateSource(row.subject_template, row.content_template, row.html_template)
            return templates.render(source, data, language=language, channel=channel), row.id
    if draft.subject or draft.content:
        language = locale.split("-")[0].lower() if locale else default_language
        if isinstance(draft.content, Mapping) or isinstance(draft.subject, Mapping):
            keys = {
                **(draft.subject if isinstance(draft.subject, Mapping) else {}),
                **(draft.content if isinstance(draft.content, Mapping) else {}),
            }
            picked = templates.pick(keys, locale, default_language)
            language = picked[0] if picked else language
        subject = " ".join(_literal(draft.subject, locale, default_language).split())
        text = _literal(draft.content, locale, default_language)
        source = templates.TemplateSource("{{ s }}", "{{ t }}")
        rendered = templates.render(source, {"s": subject, "t": text}, language=language, channel=channel)
        return rendered, None
    return None


def destinations(
    session: Session, users: Sequence[User], channel: str
) -> dict[uuid.UUID, list[tuple[str, str | None]]]:
    """Where each user's messages on `channel` go: (address, encrypted secret or None)."""
    if channel == "email":
        return {u.id: [(u.email, None)] if u.email else [] for u in users}
    found: dict[uuid.UUID, list[tuple[str, str | None]]] = {u.id: [] for u in users}
    for chunk in _chunks([u.id for u in users], 500):
        rows = session.execute(
            sa.select(
                NotificationContact.user_id, NotificationContact.address, NotificationContact.secret_encrypted
            )
            .where(
                NotificationContact.user_id.in_(chunk),
                NotificationContact.channel == channel,
                NotificationContact.is_active.is_(True),
            )
            .order_by(NotificationContact.created_at)
        )
        for user_id, address, secret in rows:
            found[user_id].append((address, secret))
    return found


NO_DESTINATION = {
    "email": "the recipient has no email address",
    "sms": "the recipient has no phone number for SMS",
    "push": "the recipient has no registered device for push",
    "webhook": "the recipient has no webhook endpoint",
}


def send(
    session: Session,
    draft: Draft,
    recipient_ids: Sequence[uuid.UUID],
    *,
    now: datetime | None = None,
    default_language: str = "en",
    record_events: bool = True,
) -> Outcome:
    """Create the notifications of `draft` for `recipient_ids` (in the caller's transaction)."""
    now = now or utcnow()
    outcome = Outcome()
    logs: list[DeliveryLog] = []
    users = list(session.scalars(sa.select(User).where(User.id.in_(list(recipient_ids)))))
    missing = set(recipient_ids) - {u.id for u in users}
    for user_id in sorted(missing, key=str):
        outcome.skipped.append({"recipient_id": str(user_id), "channel": "*", "reason": "no such user"})
    prefs = preferences_for(session, [u.id for u in users])
    for channel in draft.channels:
        available = active_templates(session, draft.template, channel) if draft.template else {}
        where = destinations(session, users, channel) if channel != "in_app" else {}
        for user in users:
            pref = effective(prefs.get(user.id, {}), draft.category, channel)
            if not pref.is_enabled and not draft.critical:
                outcome.skipped.append(
                    {
                        "recipient_id": str(user.id),
                        "channel": channel,
                        "reason": "turned off in the recipient's preferences",
                    }
                )
                continue
            locale = user_locale(user, default_language)
            data = {
                **draft.data,
                "user": {
                    "id": str(user.id),
                    "username": user.username,
                    "first_name": user.first_name,
                    "last_name": user.last_name,
                },
            }
            composed = compose(draft, channel, locale, default_language, available, data)
            if composed is None:
                outcome.skipped.append(
                    {
                        "recipient_id": str(user.id),
                        "channel": channel,
                        "reason": f"no active {channel} template named {draft.template!r}",
                    }
                )
                continue
            rendered, template_id = composed
            notification = Notification(
                id=new_id(),
                recipient_id=user.id,
                sender_id=draft.sender_id,
                notification_type=draft.notification_type,
                category=draft.category,
                channel=channel,
                subject=rendered.subject,
                content=rendered.text,
                content_html=rendered.html,
                language=rendered.language,
                template_id=template_id,
                event_id=draft.event_id,
                broadcast_id=draft.broadcast_id,
                critical=draft.critical,
                scheduled_at=draft.scheduled_at,
                meta=dict(draft.metadata),
                created_at=now,
            )
            if channel == "in_app":
                notification.status = "sent"
                notification.sent_at = now
            else:
                targets = where.get(user.id, [])
                if not targets:
                    notification.status = "failed"
                    session.add(notification)
                    logs.append(
                        DeliveryLog(
                            notification_id=notification.id,
                            channel=channel,
                            status="failed",
                            error_message=NO_DESTINATION[channel],
                            created_at=now,
                            updated_at=now,
                        )
                    )
                    outcome.notifications.append(notification)
                    continue
                notification.status = "pending"
                when = schedule.due_at(
                    now,
                    frequency=pref.frequency,
                    quiet=pref.quiet,
                    critical=draft.critical,
                    not_before=draft.scheduled_at,
                    timezone=pref.timezone,
                )
                key = None if draft.critical else schedule.digest_key(user.id, channel, pref.frequency)
                session.add(notification)
                for address, secret in targets:
                    logs.append(
                        DeliveryLog(
                            notification_id=notification.id,
                            channel=channel,
                            destination=address,
                            status="queued",
                            next_retry=when,
                            digest_key=key,
                            created_at=now,
                            updated_at=now,
                            delivery_metadata={"secret_encrypted": secret} if secret else {},
                        )
                    )
            session.add(notification)
            outcome.notifications.append(notification)
            if record_events:
                outbox.record_event(
                    session,
                    NOTIFICATION_CREATED,
                    "notification",
                    notification.id,
                    {
                        "recipient_id": str(user.id),
                        "channel": channel,
                        "category": draft.category,
                        "event_id": str(draft.event_id) if draft.event_id else None,
                    },
                    at=now,
                )
    # No relationship() links the two tables, so the unit of work does not order their INSERTs:
    # the notifications go first, then their delivery rows (whose foreign key needs them).
    session.flush()
    session.add_all(logs)
    session.flush()
    return outcome


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
