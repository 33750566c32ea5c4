"""Identifiers: UUIDv7 (time-ordered), so primary keys sort by creation time."""

from __future__ import annotations

import uuid

import uuid_utils


def new_id() -> uuid.UUID:
    return uuid.UUID(bytes=uuid_utils.uuid7().bytes)
