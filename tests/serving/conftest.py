from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from domain.settings import Settings
from serving.app import create_app


@pytest.fixture
async def client(migrated_url: str, data_dir: Path) -> AsyncIterator[AsyncTestClient]:
    """The app on a migrated database of each backend (SQLite and PostgreSQL)."""
    app = create_app(Settings(deployment="local", data_dir=data_dir, database_url=migrated_url))
    async with AsyncTestClient(app=app) as client:
        yield client


@pytest.fixture
async def sqlite_client(sqlite_url: str, data_dir: Path) -> AsyncIterator[AsyncTestClient]:
    from domain.migrate import upgrade

    upgrade(sqlite_url)
    app = create_app(Settings(deployment="local", data_dir=data_dir, database_url=sqlite_url))
    async with AsyncTestClient(app=app) as client:
        yield client
