"""Where a user's SMS, push and webhook notifications go: phone numbers, device tokens, webhook URLs.

A webhook's signing secret is stored encrypted under the keyring's `keys.WEBHOOK_SECRET` key (the same
Fernet scheme as TOTP secrets, under its own HKDF purpose), never returned by the API; the delivery
job decrypts it with `decrypt` right before signing a request.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.orm import Session

from domain.auth.keys import WEBHOOK_SECRET, Keyring
from domain.errors import InvalidValue, NotFound
from domain.notifications import webhooks
from domain.schema import NotificationContact, utcnow

CONTACT_CHANNELS = ("sms", "push", "webhook")
ADDRESS_MAX = 1000
SECRET_MIN, SECRET_MAX = 16, 200
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_TOKEN = re.compile(r"^[!-~]{8,1000}$")  # printable ASCII, no spaces (FCM tokens are ~160 chars)


def encrypt(secret: str, keys: Keyring) -> str:
    """The webhook signing `secret` encrypted for `NotificationContact.secret_encrypted`."""
    return keys.encrypt(WEBHOOK_SECRET, secret)


def decrypt(token: str, keys: Keyring) -> str:
    """The signing secret back from `secret_encrypted` (made under the current or a previous platform
    secret); raises `keys.SecretDecryptionError` when it was tampered with or its secret is gone."""
    return keys.decrypt(WEBHOOK_SECRET, token)


def normalize_phone(value: str) -> str:
    """E.164 (`+9665XXXXXXXX`); spaces, dashes, dots and parentheses are dropped first."""
    phone = re.sub(r"[\s\-.()]", "", value or "")
    if phone.startswith("00"):
        phone = "+" + phone[2:]
    if not _E164.match(phone):
        raise InvalidValue(
            f"{value!r} is not a phone number in E.164 form (+ country code and number, e.g. +966501234567)",
            field="address",
        )
    return phone


def check_webhook_url(value: str, *, allow_private_networks: bool = False) -> str:
    """An http(s) URL with a host and no credentials; unless `allow_private_networks`, a host written
    as an IP address must be public (`webhooks.is_public_address`). Host names are resolved by the
    caller (`resources.webhook_http.check_destination`): that is I/O."""
    url = (value or "").strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or len(url) > ADDRESS_MAX:
        raise InvalidValue(
            f"{value!r} is not an http(s) URL with a host (at most {ADDRESS_MAX} characters)", field="address"
        )
    if parts.username or parts.password:
        raise InvalidValue(
            "a webhook URL must not carry credentials; use the signing secret", field="address"
        )
    if not allow_private_networks and webhooks.parse_address(parts.hostname) is not None:
        refused = webhooks.non_public(parts.hostname, [parts.hostname])
        if refused:
            raise InvalidValue(refused, field="address")
    return url


def check_device_token(value: str) -> str:
    token = (value or "").strip()
    if not _TOKEN.match(token):
        raise InvalidValue("a device token is 8 to 1000 printable characters without spaces", field="address")
    return token


def check_address(channel: str, address: str, *, allow_private_networks: bool = False) -> str:
    if channel == "sms":
        return normalize_phone(address)
    if channel == "push":
        return check_device_token(address)
    if channel == "webhook":
        return check_webhook_url(address, allow_private_networks=allow_private_networks)
    raise InvalidValue(f"channel must be one of {', '.join(CONTACT_CHANNELS)}", field="channel")


@dataclass(frozen=True)
class NewContact:
    channel: str
    address: str
    secret: str | None = None
    is_active: bool = True


def register(
    session: Session,
    user_id: uuid.UUID,
    new: NewContact,
    *,
    keys: Keyring,
    allow_private_networks: bool = False,
) -> NotificationContact:
    """Add a contact, or update the one with the same channel and address (its secret, its state).
    A webhook URL naming a non-public IP address is refused unless `allow_private_networks`."""
    address = check_address(new.channel, new.address, allow_private_networks=allow_private_networks)
    if new.channel == "webhook":
        if not new.secret or not (SECRET_MIN <= len(new.secret) <= SECRET_MAX):
            raise InvalidValue(
                f"a webhook needs a signing secret of {SECRET_MIN} to {SECRET_MAX} characters", field="secret"
            )
    elif new.secret:
        raise InvalidValue("only webhooks take a secret", field="secret")
    row = session.scalar(
        sa.select(NotificationContact).where(
            NotificationContact.user_id == user_id,
            NotificationContact.channel == new.channel,
            NotificationContact.address == address,
        )
    )
    if row is None:
        row = NotificationContact(user_id=user_id, channel=new.channel, address=address, created_at=utcnow())
        session.add(row)
    row.is_active = new.is_active
    row.secret_encrypted = encrypt(new.secret, keys) if new.secret else None
    session.flush()
    return row


def of_user(session: Session, user_id: uuid.UUID) -> list[NotificationContact]:
    return list(
        session.scalars(
            sa.select(NotificationContact)
            .where(NotificationContact.user_id == user_id)
            .order_by(NotificationContact.channel, NotificationContact.created_at)
        )
    )


def remove(session: Session, user_id: uuid.UUID, contact_id: uuid.UUID) -> None:
    row = session.get(NotificationContact, contact_id)
    if row is None or row.user_id != user_id:
        raise NotFound(f"contact {contact_id} does not exist")
    session.delete(row)
    session.flush()
