"""Identifiers: UUIDv7 (time-ordered), so primary keys sort by creation time."""

from __future__ import annotations

import uuid

import uuid_utils


def new_id() -> uuid.UUID:
    return uuid.UUID(bytes=uuid_utils.uuid7().bytes)


# The author of changes no person made (the scheduler publishing a due item): recorded as the actor
# of the write and of its event, so every write names who made it. It is not a user row.
SYSTEM_ACTOR = uuid.UUID("00000000-0000-0000-0000-000000000001")
