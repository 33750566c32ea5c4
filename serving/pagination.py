"""Opaque page cursors shared by the list endpoints (content, users, notifications): the id of the
last item of a page, base64url-encoded without padding. Ids are UUIDv7 (time-ordered), so "after
this id" is an exact, stable position."""

from __future__ import annotations

import base64
import uuid

from domain.errors import InvalidValue


def encode_cursor(item_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(item_id.bytes).decode().rstrip("=")


def decode_cursor(cursor: str) -> uuid.UUID:
    """The id a cursor names; InvalidValue (a 422 naming `cursor`) for one this API did not return."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return uuid.UUID(bytes=raw)
    except (ValueError, TypeError) as exc:
        raise InvalidValue("cursor is not one this API returned", field="cursor") from exc
