"""Re-encrypting the secrets stored at rest under the current platform secret (`thmnayah rotate-keys`).

What is signed (access tokens, links, media URLs) expires on its own within a day, but what is
encrypted at rest lives until it is re-encrypted: TOTP secrets (`users`), webhook signing secrets
(`notification_contacts`) and their copies on webhook deliveries (`delivery_logs`). After a new
`THMNAYAH_SECRET_KEY` is set with the old one in `THMNAYAH_SECRET_KEY_PREVIOUS`, this re-encrypts each
value still under an older secret; once it reports nothing left to re-encrypt (and the signed values'
lifetimes have passed), the old secret can leave `THMNAYAH_SECRET_KEY_PREVIOUS`. A value no key of the
ring decrypts is left as it is and counted, so the operator learns that some older secret is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from domain.auth.keys import TOTP, WEBHOOK_SECRET, Keyring, SecretDecryptionError
from domain.schema import DeliveryLog, NotificationContact, User


@dataclass
class Tally:
    rotated: int = 0  # re-encrypted under the current secret
    current: int = 0  # already under it
    unreadable: int = 0  # under no secret of the ring (left as it is)


def _rotate(keys: Keyring, purpose: str, token: str, tally: Tally) -> str | None:
    """The token re-encrypted under the current key, or None when it needs nothing or cannot be read."""
    if keys.is_current(purpose, token):
        tally.current += 1
        return None
    try:
        rotated = keys.rotate(purpose, token)
    except SecretDecryptionError:
        tally.unreadable += 1
        return None
    tally.rotated += 1
    return rotated


def _column(session: Session, keys: Keyring, purpose: str, column: Any, key_column: Any) -> Tally:
    tally = Tally()
    table = column.class_
    rows = session.execute(sa.select(key_column, column).where(column.is_not(None)).with_for_update()).all()
    for row_id, token in rows:
        if token and (rotated := _rotate(keys, purpose, token, tally)) is not None:
            session.execute(sa.update(table).where(key_column == row_id).values({column.key: rotated}))
    return tally


def _deliveries(session: Session, keys: Keyring) -> Tally:
    tally = Tally()
    rows = session.execute(
        sa.select(DeliveryLog.id, DeliveryLog.delivery_metadata)
        .where(DeliveryLog.channel == "webhook")
        .with_for_update()
    ).all()
    for row_id, metadata in rows:
        token = (metadata or {}).get("secret_encrypted")
        if token and (rotated := _rotate(keys, WEBHOOK_SECRET, token, tally)) is not None:
            session.execute(
                sa.update(DeliveryLog)
                .where(DeliveryLog.id == row_id)
                .values(delivery_metadata={**metadata, "secret_encrypted": rotated})
            )
    return tally


def reencrypt_stored_secrets(session: Session, keys: Keyring) -> dict[str, Tally]:
    """Re-encrypt every stored secret under the current platform secret; what was done, per table."""
    return {
        "users.totp_secret_encrypted": _column(session, keys, TOTP, User.totp_secret_encrypted, User.id),
        "notification_contacts.secret_encrypted": _column(
            session, keys, WEBHOOK_SECRET, NotificationContact.secret_encrypted, NotificationContact.id
        ),
        "delivery_logs.delivery_metadata.secret_encrypted": _deliveries(session, keys),
    }
