"""Request and response bodies of the notifications API (explicit structs, never ORM objects)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

Channel = Literal["email", "sms", "push", "in_app", "webhook"]
ContactChannel = Literal["sms", "push", "webhook"]
Severity = Literal["info", "warning", "error", "success"]
Frequency = Literal["immediate", "hourly", "daily", "weekly"]
Category = Annotated[str, Meta(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:\-]+$")]
TemplateName = Annotated[str, Meta(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:\-]+$")]
LanguageTag = Annotated[
    str, Meta(min_length=2, max_length=16, pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")
]
Text = Annotated[str, Meta(max_length=20_000)]
# A literal message: one string, or one per language ({"ar": ..., "en": ...}).
Localized = Text | Annotated[dict[LanguageTag, Text], Meta(min_length=1, max_length=20)]
Channels = Annotated[list[Channel], Meta(min_length=1, max_length=5)]


class SendRequest(Struct, forbid_unknown_fields=True):
    """A template name (rendered in each recipient's language) or a literal subject/content."""

    recipient_ids: Annotated[list[uuid.UUID], Meta(min_length=1, max_length=1000)]
    category: Category
    channels: Channels = msgspec.field(default_factory=lambda: ["in_app"])
    template: TemplateName | None = None
    subject: Localized | None = None
    content: Localized | None = None
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    notification_type: Severity = "info"
    critical: bool = False
    scheduled_at: datetime | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class SentOut(Struct):
    id: uuid.UUID
    recipient_id: uuid.UUID
    channel: str
    status: str


class SkippedOut(Struct):
    recipient_id: str
    channel: str
    reason: str


class SendResult(Struct):
    notifications: list[SentOut]
    skipped: list[SkippedOut]


class InboxItem(Struct):
    id: uuid.UUID
    thread_id: uuid.UUID
    category: str
    notification_type: str
    subject: str
    content: str
    language: str
    direction: str
    status: str
    critical: bool
    read: bool
    metadata: dict[str, Any]
    created_at: datetime
    delivered_at: datetime | None
    read_at: datetime | None
    event_id: uuid.UUID | None
    count: int | msgspec.UnsetType = msgspec.UNSET  # threads only: notifications in the thread
    unread: int | msgspec.UnsetType = msgspec.UNSET  # threads only: unread ones


class InboxPage(Struct):
    items: list[InboxItem]
    next_cursor: str | None
    unread_count: int


class ReadRequest(Struct, forbid_unknown_fields=True):
    read: bool = True


class ReadResult(Struct):
    id: uuid.UUID
    status: str
    read: bool
    read_at: datetime | None
    unread_count: int


class ReadAllRequest(Struct, forbid_unknown_fields=True):
    category: Category | None = None


class ReadAllResult(Struct):
    marked: int
    unread_count: int


class PreferenceIn(Struct, forbid_unknown_fields=True):
    channel: Channel
    notification_type: Annotated[str, Meta(min_length=1, max_length=100)] = "*"
    is_enabled: bool = True
    frequency: Frequency = "immediate"
    quiet_hours_start: str | None = None  # HH:MM in `timezone`
    quiet_hours_end: str | None = None
    timezone: Annotated[str, Meta(max_length=64)] = "UTC"


class PreferencesRequest(Struct, forbid_unknown_fields=True):
    preferences: Annotated[list[PreferenceIn], Meta(min_length=1, max_length=200)]
    user_id: uuid.UUID | None = None  # default: yourself; another user's needs notifications:manage


class PreferenceOut(Struct):
    notification_type: str
    channel: str
    is_enabled: bool
    frequency: str
    quiet_hours_start: str | None
    quiet_hours_end: str | None
    timezone: str
    updated_at: datetime


class PreferencesOut(Struct):
    user_id: uuid.UUID
    preferences: list[PreferenceOut]


class ContactIn(Struct, forbid_unknown_fields=True):
    channel: ContactChannel
    address: Annotated[str, Meta(min_length=1, max_length=1000)]
    secret: Annotated[str, Meta(max_length=200)] | None = None  # webhooks: the signing secret
    is_active: bool = True


class ContactOut(Struct):
    id: uuid.UUID
    channel: str
    address: str
    has_secret: bool
    is_active: bool
    created_at: datetime


class SubscriptionIn(Struct, forbid_unknown_fields=True):
    topic: Annotated[str, Meta(min_length=3, max_length=200)]


class SubscriptionOut(Struct):
    topic: str
    created_at: datetime


class TemplateData(Struct, forbid_unknown_fields=True):
    sample: dict[str, Any] = msgspec.field(default_factory=dict)  # rendered at save time
    push: dict[str, Any] = msgspec.field(default_factory=dict)  # extra data for push messages


class TemplateIn(Struct, forbid_unknown_fields=True):
    name: TemplateName
    template_type: Channel
    language: LanguageTag
    subject_template: Annotated[str, Meta(max_length=2_000)] = ""
    content_template: Annotated[str, Meta(max_length=100_000)] = ""
    html_template: Annotated[str, Meta(max_length=200_000)] | None = None
    template_data: TemplateData = msgspec.field(default_factory=TemplateData)


class TemplateOut(Struct):
    id: uuid.UUID
    name: str
    template_type: str
    language: str
    version: int
    is_active: bool
    subject_template: str
    content_template: str
    html_template: str | None
    template_data: dict[str, Any]
    created_by: uuid.UUID | None
    created_at: datetime


class PreviewRequest(Struct, forbid_unknown_fields=True):
    """Render a saved template (`template_id`) or the given sources, with `data`."""

    template_type: Channel = "email"
    language: LanguageTag = "en"
    template_id: uuid.UUID | None = None
    subject_template: Annotated[str, Meta(max_length=2_000)] | None = None
    content_template: Annotated[str, Meta(max_length=100_000)] | None = None
    html_template: Annotated[str, Meta(max_length=200_000)] | None = None
    data: dict[str, Any] | None = None  # default: the saved template's sample


class PreviewOut(Struct):
    subject: str
    text: str
    html: str | None
    language: str
    direction: str


class DeliveryOut(Struct):
    id: uuid.UUID
    channel: str
    destination: str
    status: str
    attempts: int
    last_attempt: datetime | None
    next_retry: datetime | None
    error_message: str | None
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class DeliveryReport(Struct):
    notification_id: uuid.UUID
    recipient_id: uuid.UUID
    channel: str
    category: str
    status: str
    critical: bool
    created_at: datetime
    scheduled_at: datetime | None
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None
    pushed_at: datetime | None
    deliveries: list[DeliveryOut]


class Criteria(Struct, forbid_unknown_fields=True):
    roles: Annotated[list[str], Meta(max_length=100)] | None = None
    languages: Annotated[list[str], Meta(max_length=100)] | None = None
    subscribed_to: Annotated[list[str], Meta(max_length=100)] | None = None
    active_within_days: int | None = None


class BroadcastRequest(Struct, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    category: Category = "broadcast"
    channels: Channels = msgspec.field(default_factory=lambda: ["in_app"])
    template: TemplateName | None = None
    subject: Localized | None = None
    content: Localized | None = None
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    criteria: Criteria = msgspec.field(default_factory=Criteria)
    notification_type: Severity = "info"
    critical: bool = False
    scheduled_at: datetime | None = None


class BroadcastAccepted(Struct):
    broadcast_id: uuid.UUID
    status: str
    matching_recipients: int
    status_url: str


class BroadcastStatus(Struct):
    broadcast_id: uuid.UUID
    name: str
    status: str
    channels: list[str]
    criteria: dict[str, Any]
    total_recipients: int | None
    processed_recipients: int
    notifications_created: int
    percent: float
    error: str | None
    scheduled_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
