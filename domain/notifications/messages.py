"""Building the messages of claimed deliveries: one `Message` per delivery, or one per digest (the
due rows sharing a `digest_key` and a destination become ONE message, "N new notifications" in the
user's language, listing them); webhook secrets are decrypted here, right before use. The drain in
`domain.notifications.delivery` claims the rows and sends what this builds."""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from domain.auth.keys import Keyring
from domain.notifications import contacts, service, templates
from domain.notifications.outgoing import DeliveryFailed, Outgoing
from domain.notifications.rules import DEFAULT_TEMPLATES, DIGEST_TEMPLATE, ERROR_MAX
from domain.schema import DeliveryLog, Notification


@dataclass
class Message:
    """One message to send: a single delivery, or a digest standing for several."""

    channel: str
    delivery_ids: list[uuid.UUID]
    outgoing: Outgoing | None  # None: could not be built (see `problem`)
    problem: DeliveryFailed | None = None

    @property
    def is_digest(self) -> bool:
        return len(self.delivery_ids) > 1


def _payload(notification: Notification) -> dict[str, Any]:
    return {
        "notification_id": str(notification.id),
        "category": notification.category,
        "type": notification.notification_type,
        "critical": notification.critical,
        "event_id": str(notification.event_id) if notification.event_id else None,
        "created_at": notification.created_at.isoformat(),
    }


def _secret(row: DeliveryLog, keys: Keyring | None) -> str | None:
    token = (row.delivery_metadata or {}).get("secret_encrypted")
    if not token:
        return None
    if keys is None:
        raise ValueError("the delivery policy has no keyring to decrypt it with")
    return contacts.decrypt(token, keys)


def _digest_source(
    session: Session, channel: str, language: str, default_language: str, cache: dict[str, Any]
) -> tuple[str, templates.TemplateSource]:
    """The digest template for `channel` in the closest language: the active database version
    (the channel's, else the email one), else the built-in default."""
    key = f"{channel}|{language}"
    if key not in cache:
        found = None
        for template_channel in dict.fromkeys((channel, "email")):
            rows = service.active_templates(session, DIGEST_TEMPLATE, template_channel)
            picked = templates.pick(rows, language, default_language)
            if picked is not None:
                lang, row = picked
                found = (
                    lang,
                    templates.TemplateSource(row.subject_template, row.content_template, row.html_template),
                )
                break
        if found is None:
            defaults = DEFAULT_TEMPLATES[DIGEST_TEMPLATE]
            lang, (subject, text) = templates.pick(defaults, language, default_language) or (
                "en",
                defaults["en"],
            )
            found = (lang, templates.TemplateSource(subject, text))
        cache[key] = found
    return cache[key]


def render_digest(
    session: Session,
    channel: str,
    notifications: Sequence[Notification],
    *,
    frequency: str,
    default_language: str,
    cache: dict[str, Any] | None = None,
) -> templates.Rendered:
    """One message listing `notifications` (oldest first), in their language."""
    language = Counter(n.language for n in notifications).most_common(1)[0][0]
    lang, source = _digest_source(
        session, channel, language, default_language, cache if cache is not None else {}
    )
    data = {
        "count": len(notifications),
        "frequency": frequency,
        "items": [
            {
                "subject": n.subject,
                "text": n.content,
                "category": n.category,
                "created_at": n.created_at.isoformat(),
            }
            for n in notifications
        ],
    }
    return templates.render(source, data, language=lang, channel=channel, default_language=default_language)


def build_messages(
    session: Session,
    delivery_ids: Sequence[uuid.UUID],
    *,
    keys: Keyring | None,
    default_language: str,
) -> list[Message]:
    """The messages for claimed rows: digests merged, webhook secrets decrypted with `keys`, digest
    templates in the recipients' language or else `default_language`. A row whose message cannot be
    built (an undecryptable secret, a broken digest template) gets a permanent `problem`."""
    rows = session.execute(
        sa.select(DeliveryLog, Notification)
        .join(Notification, Notification.id == DeliveryLog.notification_id)
        .where(DeliveryLog.id.in_(list(delivery_ids)))
        .order_by(Notification.created_at, DeliveryLog.id)
    ).all()
    singles: list[tuple[DeliveryLog, Notification]] = []
    digests: dict[tuple[str, str], list[tuple[DeliveryLog, Notification]]] = defaultdict(list)
    for row, notification in rows:
        if row.digest_key:
            digests[(row.digest_key, row.destination)].append((row, notification))
        else:
            singles.append((row, notification))
    messages: list[Message] = []
    for row, notification in singles:
        messages.append(_single(row, notification, row.destination, keys))
    cache: dict[str, Any] = {}
    for (key, destination), group in digests.items():
        lead, _ = group[0]
        ids = [row.id for row, _ in group]
        if len(group) == 1:  # a digest of one: the notification itself
            messages.append(_single(lead, group[0][1], destination, keys))
            continue
        notifications = [n for _, n in group]
        try:
            secret = _secret(lead, keys)
            rendered = render_digest(
                session,
                lead.channel,
                notifications,
                frequency=key.rsplit("|", 1)[-1],
                default_language=default_language,
                cache=cache,
            )
        except Exception as exc:  # noqa: BLE001 - a broken digest template fails this digest, not the drain
            messages.append(_unbuildable(lead.channel, ids, f"digest: {exc}"))
            continue
        outgoing = Outgoing(
            delivery_id=lead.id,
            notification_id=lead.notification_id,
            channel=lead.channel,
            to=destination,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            language=rendered.language,
            data={
                "digest": True,
                "count": len(group),
                "notification_ids": [str(n.id) for n in notifications],
                "delivery_ids": [str(i) for i in ids],
            },
            secret=secret,
        )
        messages.append(Message(lead.channel, ids, outgoing))
    return messages


def _single(row: DeliveryLog, notification: Notification, destination: str, keys: Keyring | None) -> Message:
    """The message of one delivery: the notification itself, to `destination`."""
    try:
        secret = _secret(row, keys)
    except Exception as exc:  # noqa: BLE001 - a stored secret we cannot read fails this row only
        return _unbuildable(row.channel, [row.id], f"webhook secret: {exc}")
    outgoing = Outgoing(
        delivery_id=row.id,
        notification_id=notification.id,
        channel=row.channel,
        to=destination,
        subject=notification.subject,
        text=notification.content,
        html=notification.content_html,
        language=notification.language,
        data=_payload(notification),
        secret=secret,
    )
    return Message(row.channel, [row.id], outgoing)


def _unbuildable(channel: str, ids: list[uuid.UUID], reason: str) -> Message:
    return Message(channel, ids, None, DeliveryFailed(reason[:ERROR_MAX], permanent=True))
