"""The async operational-DB engine of the serving process and the per-request session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import sqlalchemy as sa
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from domain.db import async_url, ensure_sqlite_dir, sqlite_pragmas


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: AsyncEngine | None = None
        self.sessions: async_sessionmaker[AsyncSession] | None = None

    def start(self) -> None:
        ensure_sqlite_dir(self.url)
        options: dict = {"pool_pre_ping": True}
        if self.url.startswith("postgresql"):
            options.update(pool_size=10, max_overflow=20)
        self.engine = create_async_engine(async_url(self.url), **options)
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine.sync_engine, "connect", sqlite_pragmas)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    async def stop(self) -> None:
        if self.engine is not None:
            await self.engine.dispose()

    @asynccontextmanager
    async def lifespan(self, _app: Litestar) -> AsyncIterator[None]:
        self.start()
        try:
            yield
        finally:
            await self.stop()

    async def provide_session(self) -> AsyncIterator[AsyncSession]:
        assert self.sessions is not None, "database not started"
        async with self.sessions() as session:
            yield session
