"""Fixtures of the import domain tests: an editor (every write names who made it) and sources."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from domain.auth import audit, users
from domain.imports import sources
from resources.database import OperationalDatabase

CHANNEL_ID = "UC" + "a1B2c3D4e5F6g7H8i9J0kL"  # UC and 22 characters


@pytest.fixture
def editor(db: OperationalDatabase) -> uuid.UUID:
    with db.session() as session:
        user = users.create_user(
            session,
            users.NewUser("importer", "importer@example.test", None, roles=["editor"], is_active=True),
            created_by=None,
            origin=audit.Origin(),
        )
        return user.id


@pytest.fixture
def make_source(db: OperationalDatabase, editor: uuid.UUID) -> Callable[..., uuid.UUID]:
    """Adds an RSS source (each with its own feed URL) with the given policies; returns its id."""
    count = iter(range(1, 1000))

    def make(**overrides) -> uuid.UUID:
        new = sources.NewSource(
            name="Feed",
            source_type="rss",
            configuration={"url": f"https://feeds.example.test/{next(count)}.xml"},
            schedule="*/15 * * * *",
        )
        for name, value in overrides.items():
            setattr(new, name, value)
        with db.session() as session:
            return sources.create_source(session, new, actor=editor).id

    return make
