"""Fixtures shared by the domain tests that need the operational DB."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from domain.auth import rbac
from resources.database import OperationalDatabase


@pytest.fixture
def db(migrated_url: str) -> Iterator[OperationalDatabase]:
    """The migrated DB (SQLite, or PostgreSQL where parametrized) with the system roles; `db.session()`
    is one committed transaction."""
    database = OperationalDatabase(url=migrated_url)
    with database.session() as session:
        rbac.seed_system_roles(session)
    yield database
    database.engine().dispose()
