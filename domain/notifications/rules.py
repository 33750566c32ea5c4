"""Which domain events notify whom: the outbox -> notifications mapping, and its default templates.

Each rule is data: the event type it answers, the notification category (what preferences and
templates are keyed by), the channels, the template name, the severity, whether it is critical
(bypasses quiet hours, digests and a turned-off preference), a recipient resolver and a builder of
the template's data. `handle` turns one outbox event into a `NotificationEvent` row (unique by
`outbox_seq`, so a re-run never notifies twice) and the notifications of `service.send`, threaded
under that row; a failure (a broken template, a bad payload) is recorded on the row, not raised.

`seed_default_templates` adds Arabic and English in-app and email templates for every rule and for
the digest email (version 1, only where no version exists yet).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from domain.analytics.event_types import ALERT_ESCALATED, ALERT_FIRED, ALERT_RESOLVED, REPORT_READY
from domain.auth.events import USER_VERIFIED
from domain.auth.rbac import users_with_roles
from domain.content import CONTENT_PUBLISHED
from domain.imports.events import IMPORT_COMPLETED
from domain.notifications import service
from domain.notifications.templates import TemplateSource
from domain.schema import (
    ContentItem,
    MediaAsset,
    NotificationEvent,
    NotificationSubscription,
    OutboxEvent,
    User,
)

SessionFactory = Callable[[], AbstractContextManager[Session]]
DIGEST_TEMPLATE = "notification.digest"
TEMPLATE_CHANNELS = ("in_app", "email")
ERROR_MAX = 2000


@dataclass(frozen=True)
class DomainEvent:
    """What a rule reads of an outbox row (a plain value: rules never touch the outbox table)."""

    seq: int
    event_type: str
    aggregate_id: str
    payload: Mapping[str, Any]
    occurred_at: datetime

    @classmethod
    def of(cls, row: OutboxEvent) -> DomainEvent:
        return cls(row.seq, row.event_type, row.aggregate_id, dict(row.payload or {}), row.occurred_at)


Resolver = Callable[[Session, DomainEvent], list[uuid.UUID]]
DataBuilder = Callable[[Session, DomainEvent], dict[str, Any]]


@dataclass(frozen=True)
class Rule:
    event_type: str
    category: str
    channels: tuple[str, ...]
    template: str
    severity: str  # the notification's `notification_type`: info | warning | error | success
    critical: bool
    recipients: Resolver
    data: DataBuilder


# --- recipient resolvers ------------------------------------------------------------------------------


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        return None


def _uuids(values: Iterable[Any]) -> list[uuid.UUID]:
    found = [_uuid(v) for v in values]
    return list(dict.fromkeys(v for v in found if v is not None))


def _as_list(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    if isinstance(value, list | tuple | set):
        return list(value)
    return [value]


def content_topics(item: ContentItem | None, payload: Mapping[str, Any]) -> list[str]:
    """The subscription topics a content item belongs to: itself, its tags, and the series and
    categories its metadata names (`series_id`/`series`, `category`/`categories`, as ids or slugs)."""
    meta: Mapping[str, Any] = (item.meta if item is not None else None) or {}
    topics = [f"content:{item.id if item is not None else payload.get('id')}"]
    tags = item.tags if item is not None else payload.get("tags")
    topics += [f"tag:{tag}" for tag in _as_list(tags)]
    for key in ("series_id", "series"):
        for series in _as_list(meta.get(key) or payload.get(key)):
            series = series.get("id") if isinstance(series, Mapping) else series
            if series:
                topics.append(f"series:{series}")
    for key in ("category", "categories", "category_slug"):
        for category in _as_list(meta.get(key) or payload.get(key)):
            category = (
                category.get("slug") or category.get("id") if isinstance(category, Mapping) else category
            )
            if category:
                topics.append(f"category:{category}")
    return list(dict.fromkeys(topics))


def _active_users(session: Session, user_ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
    if not user_ids:
        return []
    found = set(session.scalars(sa.select(User.id).where(User.id.in_(user_ids), User.is_active.is_(True))))
    return [u for u in user_ids if u in found]


def subscribers(session: Session, event: DomainEvent) -> list[uuid.UUID]:
    item_id = _uuid(event.payload.get("id") or event.aggregate_id)
    item = session.get(ContentItem, item_id) if item_id else None
    topics = content_topics(item, event.payload)
    query = (
        sa.select(NotificationSubscription.user_id)
        .join(User, User.id == NotificationSubscription.user_id)
        .where(NotificationSubscription.topic.in_(topics), User.is_active.is_(True))
        .distinct()
        .order_by(NotificationSubscription.user_id)
    )
    return list(session.scalars(query))


def uploader(session: Session, event: DomainEvent) -> list[uuid.UUID]:
    media_id = _uuid(event.payload.get("media_id") or event.aggregate_id)
    asset = session.get(MediaAsset, media_id) if media_id else None
    return [asset.uploaded_by] if asset is not None and asset.uploaded_by else []


def role_members(*names: str) -> Resolver:
    def resolve(session: Session, event: DomainEvent) -> list[uuid.UUID]:
        return users_with_roles(session, names, event.occurred_at)

    return resolve


def the_user(session: Session, event: DomainEvent) -> list[uuid.UUID]:
    found = _uuid(event.payload.get("id") or event.aggregate_id)
    return [found] if found else []


def listed_recipients(session: Session, event: DomainEvent) -> list[uuid.UUID]:
    return _uuids(_as_list(event.payload.get("recipients")))


def alert_recipients(session: Session, event: DomainEvent) -> list[uuid.UUID]:
    """The alert's `recipients` (user ids), else the members of its `roles` (default: admin)."""
    listed = _uuids(_as_list(event.payload.get("recipients")))
    if listed:
        return listed
    roles = [str(r) for r in _as_list(event.payload.get("roles"))] or ["admin"]
    return users_with_roles(session, roles, event.occurred_at)


# --- template data -------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def content_data(session: Session, event: DomainEvent) -> dict[str, Any]:
    p = event.payload
    return {
        "content": {
            "id": _text(p.get("id") or event.aggregate_id),
            "title": dict(p.get("title") or {}),
            "type": _text(p.get("type")),
            "slug": _text(p.get("slug")),
        }
    }


def media_data(session: Session, event: DomainEvent) -> dict[str, Any]:
    p = event.payload
    media_id = _uuid(p.get("media_id") or event.aggregate_id)
    asset = session.get(MediaAsset, media_id) if media_id else None
    return {
        "media": {
            "id": _text(media_id),
            "filename": asset.original_filename if asset is not None else "",
            "kind": _text(p.get("kind") or (asset.content_type if asset is not None else "")),
            "reason": _text(p.get("reason")),
            "content_item_id": _text(p.get("content_item_id")),
        }
    }


def _count(value: Any) -> int:
    if isinstance(value, list | tuple):
        return len(value)
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def import_data(session: Session, event: DomainEvent) -> dict[str, Any]:
    p = event.payload
    return {
        "import": {
            "source": _text(
                p.get("source_name") or p.get("source") or p.get("source_id") or event.aggregate_id
            ),
            "created": _count(p.get("created")),
            "updated": _count(p.get("updated")),
            "failed": _count(p.get("failed") or p.get("errors")),
        }
    }


def welcome_data(session: Session, event: DomainEvent) -> dict[str, Any]:
    return {}  # the service adds `user` (id, username, first_name, last_name) for every recipient


def report_data(session: Session, event: DomainEvent) -> dict[str, Any]:
    p = event.payload
    return {
        "report": {
            "name": _text(p.get("name") or p.get("report") or event.aggregate_id),
            "url": _text(p.get("url")),
            "period": _text(p.get("period")),
        }
    }


def alert_data(session: Session, event: DomainEvent) -> dict[str, Any]:
    p = event.payload
    return {
        "alert": {
            "name": _text(p.get("name") or p.get("alert") or event.aggregate_id),
            "message": _text(p.get("message")),
            "severity": _text(p.get("severity") or "critical"),
        }
    }


BOTH = ("in_app", "email")

# fmt: off
_RULES = (
    #    event type           category             chan. template             severity   critical recipients / template data
    Rule(CONTENT_PUBLISHED,   "content.published", BOTH, "content.published", "info",    False, subscribers,           content_data),
    Rule("media.processed",   "media.processed",   BOTH, "media.processed",   "success", False, uploader,              media_data),
    Rule("media.failed",      "media.failed",      BOTH, "media.failed",      "error",   False, uploader,              media_data),
    Rule(IMPORT_COMPLETED,    "import.completed",  BOTH, "import.completed",  "info",    False, role_members("editor", "admin"), import_data),
    Rule(USER_VERIFIED,       "user.welcome",      BOTH, "user.welcome",      "info",    False, the_user,              welcome_data),
    Rule(REPORT_READY,        "report.ready",      BOTH, "report.ready",      "info",    False, listed_recipients,     report_data),
    Rule(ALERT_FIRED,         "alert.fired",       BOTH, "alert.fired",       "error",   True,  alert_recipients,      alert_data),
    Rule(ALERT_ESCALATED,     "alert.escalated",   BOTH, "alert.escalated",   "error",   True,  alert_recipients,      alert_data),
    Rule(ALERT_RESOLVED,      "alert.resolved",    BOTH, "alert.resolved",    "success", False, alert_recipients,      alert_data),
)
# fmt: on
RULES: dict[str, Rule] = {rule.event_type: rule for rule in _RULES}
EVENT_TYPES: tuple[str, ...] = tuple(RULES)


# --- default templates (Jinja, rendered by domain.notifications.templates) ----------------------------

# name -> language -> (subject, text). The email HTML is made from the text (in the RTL layout for
# Arabic); editors add HTML versions through the templates API.
DEFAULT_TEMPLATES: dict[str, dict[str, tuple[str, str]]] = {
    "content.published": {
        "en": ("New: {{ content.title | t }}", "{{ content.title | t }} has just been published."),
        "ar": ("جديد: {{ content.title | t }}", "نُشر للتو: {{ content.title | t }}"),
    },
    "media.processed": {
        "en": (
            "Your upload is ready",
            "{{ media.filename or media.kind }} has been processed and is ready to use.",
        ),
        "ar": ("ملفك جاهز", "اكتملت معالجة {{ media.filename or media.kind }} وأصبح جاهزًا للاستخدام."),
    },
    "media.failed": {
        "en": (
            "Your upload could not be processed",
            "{{ media.filename or media.kind }} could not be processed: {{ media.reason }}",
        ),
        "ar": ("تعذّرت معالجة ملفك", "تعذّرت معالجة {{ media.filename or media.kind }}: {{ media.reason }}"),
    },
    "import.completed": {
        "en": (
            "Import finished: {{ import.source }}",
            "The import from {{ import.source }} finished: {{ import.created | number }} created, "
            "{{ import.updated | number }} updated, {{ import.failed | number }} failed.",
        ),
        "ar": (
            "اكتمل الاستيراد: {{ import.source }}",
            "اكتمل الاستيراد من {{ import.source }}: {{ import.created | number }} جديد، "
            "{{ import.updated | number }} محدَّث، {{ import.failed | number }} فشل.",
        ),
    },
    "user.welcome": {
        "en": (
            "Welcome, {{ user.first_name or user.username }}",
            "Welcome to Thmnayah, {{ user.first_name or user.username }}. Your account is ready.",
        ),
        "ar": (
            "أهلًا بك يا {{ user.first_name or user.username }}",
            "أهلًا بك في ثمانية يا {{ user.first_name or user.username }}. حسابك جاهز.",
        ),
    },
    "report.ready": {
        "en": (
            "Report ready: {{ report.name }}",
            "The report {{ report.name }}{% if report.period %} ({{ report.period }}){% endif %} is ready."
            "{% if report.url %}\n\n{{ report.url }}{% endif %}",
        ),
        "ar": (
            "التقرير جاهز: {{ report.name }}",
            "التقرير {{ report.name }}{% if report.period %} ({{ report.period }}){% endif %} جاهز."
            "{% if report.url %}\n\n{{ report.url }}{% endif %}",
        ),
    },
    "alert.fired": {
        "en": ("Alert: {{ alert.name }}", "{{ alert.name }} ({{ alert.severity }}): {{ alert.message }}"),
        "ar": ("تنبيه: {{ alert.name }}", "{{ alert.name }} ({{ alert.severity }}): {{ alert.message }}"),
    },
    "alert.escalated": {
        "en": (
            "Escalated alert: {{ alert.name }}",
            "{{ alert.name }} ({{ alert.severity }}) is still firing: {{ alert.message }}",
        ),
        "ar": (
            "تصعيد تنبيه: {{ alert.name }}",
            "ما زال التنبيه {{ alert.name }} ({{ alert.severity }}) قائمًا: {{ alert.message }}",
        ),
    },
    "alert.resolved": {
        "en": ("Resolved: {{ alert.name }}", "{{ alert.name }} is resolved: {{ alert.message }}"),
        "ar": ("زال التنبيه: {{ alert.name }}", "زال التنبيه {{ alert.name }}: {{ alert.message }}"),
    },
    # The digest of several notifications in one message (built by domain.notifications.delivery):
    # `count`, `frequency` and `items` (each with subject, text, category, created_at).
    DIGEST_TEMPLATE: {
        "en": (
            "{{ count | number }} new notification{{ '' if count == 1 else 's' }}",
            "{% for item in items %}- {{ item.subject }}\n"
            "{% if item.text and item.text != item.subject %}  {{ item.text }}\n{% endif %}{% endfor %}",
        ),
        "ar": (
            "{{ count | number }} {{ 'إشعار جديد' if count == 1 else 'إشعارات جديدة' }}",
            "{% for item in items %}- {{ item.subject }}\n"
            "{% if item.text and item.text != item.subject %}  {{ item.text }}\n{% endif %}{% endfor %}",
        ),
    },
}


def seed_default_templates(session: Session) -> int:
    """Add version 1 of every default template (in-app and email, Arabic and English) that has no
    version yet; edited templates are left alone. Returns how many were added. Idempotent."""
    return service.add_missing_templates(
        session,
        (
            (name, channel, language, TemplateSource(subject, text))
            for name, languages in DEFAULT_TEMPLATES.items()
            for channel in TEMPLATE_CHANNELS
            for language, (subject, text) in languages.items()
        ),
    )


# --- handling events -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Handled:
    seq: int
    event_type: str
    status: str  # processed | failed | skipped (processed by an earlier run) | unmapped
    notifications: int = 0
    error: str | None = None
    skipped: Counter[str] = field(default_factory=Counter)  # recipients not notified, by reason


@dataclass
class Summary:
    events: int = 0
    processed: int = 0
    failed: int = 0
    skipped: int = 0
    notifications: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    notifications_by_type: Counter[str] = field(default_factory=Counter)
    errors: list[dict[str, Any]] = field(default_factory=list)
    not_notified: Counter[str] = field(default_factory=Counter)  # recipients skipped, by reason
    last_seq: int | None = None

    def add(self, handled: Handled) -> None:
        self.events += 1
        self.last_seq = handled.seq if self.last_seq is None else max(self.last_seq, handled.seq)
        if handled.status == "processed":
            self.processed += 1
            self.by_type[handled.event_type] += 1
            self.notifications += handled.notifications
            self.notifications_by_type[handled.event_type] += handled.notifications
            self.not_notified.update(handled.skipped)
        elif handled.status == "failed":
            self.failed += 1
            self.errors.append({"seq": handled.seq, "event_type": handled.event_type, "error": handled.error})
        else:
            self.skipped += 1


def handle(
    session: Session,
    event: DomainEvent,
    *,
    now: datetime,
    default_language: str = "en",
    rules: Mapping[str, Rule] = RULES,
) -> Handled:
    """Notify for one event in the caller's transaction. The event's row is kept either way: a
    processed one is never notified again; a failed one carries its error and is retried by the next
    run that reads its seq."""
    rule = rules.get(event.event_type)
    if rule is None:
        return Handled(event.seq, event.event_type, "unmapped")
    row = session.scalar(sa.select(NotificationEvent).where(NotificationEvent.outbox_seq == event.seq))
    if row is not None and row.status == "processed":
        return Handled(event.seq, event.event_type, "skipped", row.notification_count)
    if row is None:
        row = NotificationEvent(
            event_type=event.event_type,
            source_service=event.event_type.split(".", 1)[0],
            payload=dict(event.payload),
            outbox_seq=event.seq,
            status="pending",
            created_at=now,
        )
        try:
            with session.begin_nested():
                session.add(row)
        except sa.exc.IntegrityError:  # a concurrent run took this event first
            return Handled(event.seq, event.event_type, "skipped")
    try:
        with session.begin_nested():
            recipients = rule.recipients(session, event)
            outcome = service.send(
                session,
                service.Draft(
                    category=rule.category,
                    channels=rule.channels,
                    template=rule.template,
                    data=rule.data(session, event),
                    notification_type=rule.severity,
                    critical=rule.critical,
                    event_id=row.id,
                    metadata={"event_type": event.event_type, "outbox_seq": event.seq},
                ),
                recipients,
                now=now,
                default_language=default_language,
            )
    except Exception as exc:  # noqa: BLE001 - any failure of one event is recorded on its row
        row.status, row.processed_at = "failed", now
        row.error = f"{type(exc).__name__}: {exc}"[:ERROR_MAX]
        return Handled(event.seq, event.event_type, "failed", 0, row.error)
    row.status, row.processed_at, row.error = "processed", now, None
    row.notification_count = len(outcome.notifications)
    reasons = Counter(skip["reason"] for skip in outcome.skipped)
    return Handled(event.seq, event.event_type, "processed", row.notification_count, skipped=reasons)


def pending_events(
    session: Session, *, after: int, upto: int | None = None, limit: int = 500
) -> list[DomainEvent]:
    """Mapped outbox events with `after < seq <= upto`, in order."""
    query = (
        sa.select(OutboxEvent)
        .where(OutboxEvent.seq > after, OutboxEvent.event_type.in_(EVENT_TYPES))
        .order_by(OutboxEvent.seq)
        .limit(limit)
    )
    if upto is not None:
        query = query.where(OutboxEvent.seq <= upto)
    return [DomainEvent.of(row) for row in session.scalars(query)]


def last_handled_seq(session: Session) -> int:
    """The newest outbox seq a run has read (processed or failed), 0 when none."""
    return session.scalar(sa.select(sa.func.coalesce(sa.func.max(NotificationEvent.outbox_seq), 0))) or 0


def process_events(
    open_session: SessionFactory,
    *,
    after: int,
    upto: int | None = None,
    now: datetime,
    default_language: str = "en",
    batch_size: int = 200,
    progress: Callable[[Summary], None] | None = None,
) -> Summary:
    """Handle every mapped outbox event in `(after, upto]`, each in its own transaction (a long burst
    never holds the database's write lock for long), `batch_size` events read at a time."""
    summary = Summary()
    cursor = after
    while True:
        with open_session() as session:
            events = pending_events(session, after=cursor, upto=upto, limit=batch_size)
        if not events:
            return summary
        for event in events:
            with open_session() as session:
                summary.add(handle(session, event, now=now, default_language=default_language))
        cursor = events[-1].seq
        if progress is not None:
            progress(summary)
