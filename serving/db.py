"""The operational-DB engines of the serving process and the per-request session.

Writes and PostgreSQL reads go through the async engine (aiosqlite / asyncpg). Reads on the embedded
SQLite backend take a different path: a point lookup in SQLite costs tens of microseconds, while
aiosqlite hands every step (checkout, execute, fetch, reset) to a worker thread and back, which
under concurrency costs far more than the query. So SQLite reads run on a synchronous engine:
point lookups inline on the event loop, list/search queries in one worker-thread hop. WAL mode
means these readers never wait for a writer.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio
import sqlalchemy as sa
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session

from domain.db import async_url, ensure_sqlite_dir, sqlite_pragmas, sync_engine

T = TypeVar("T")


class PreparedRead:
    """A select compiled once for SQLite and run on the DB-API connection with SQLAlchemy's own
    bind and result processors: the same values as `Connection.execute`, without rebuilding the
    statement's cache key on every call (which costs several times the lookup itself)."""

    def __init__(self, statement: sa.Select, dialect: sa.Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        if compiled.positiontup is None:
            raise ValueError("PreparedRead needs a positional-parameter dialect (SQLite)")
        self.sql = str(compiled)
        self.params = [
            (name, compiled.binds[name].type._cached_bind_processor(dialect), compiled.binds[name].value)
            for name in compiled.positiontup
        ]
        columns = list(statement.selected_columns)
        self.row = namedtuple("Row", [c.key for c in columns])  # noqa: PYI024
        self.processors = [c.type._cached_result_processor(dialect, None) for c in columns]

    def run(self, conn: Any, values: dict[str, Any]) -> list[Any]:
        args = []
        for name, process, default in self.params:
            value = values.get(name, default)
            args.append(process(value) if process else value)
        cursor = conn.cursor()
        try:
            cursor.execute(self.sql, args)
            raw_rows = cursor.fetchall()
        finally:
            cursor.close()
        processors = self.processors
        return [
            self.row(*[p(v) if p else v for p, v in zip(processors, raw, strict=True)]) for raw in raw_rows
        ]


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: AsyncEngine | None = None
        self.sessions: async_sessionmaker[AsyncSession] | None = None
        self.reader: sa.Engine | None = None
        self._prepared: dict[int, PreparedRead] = {}
        self._inline: Any = None  # the SQLite connection of point reads, used on the event-loop thread only

    def start(self) -> None:
        ensure_sqlite_dir(self.url)
        options: dict[str, Any] = {}
        if self.url.startswith("postgresql"):
            options.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        self.engine = create_async_engine(async_url(self.url), **options)
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine.sync_engine, "connect", sqlite_pragmas)
            self.reader = sync_engine(self.url, pool_size=8, max_overflow=8)
            self._inline = self.reader.raw_connection()
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    async def stop(self) -> None:
        if self._inline is not None:
            self._inline.close()
            self._inline = None
        if self.engine is not None:
            await self.engine.dispose()
        if self.reader is not None:
            self.reader.dispose()

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

    def _read(self, statement: sa.Executable, params: dict[str, Any] | None = None) -> list[sa.Row]:
        assert self.reader is not None
        with self.reader.connect() as conn:
            return list(conn.execute(statement, params))

    def _read_prepared(self, statement: sa.Select, params: dict[str, Any]) -> list[Any]:
        assert self.reader is not None
        prepared = self._prepared.get(id(statement))
        if prepared is None:
            prepared = self._prepared[id(statement)] = PreparedRead(statement, self.reader.dialect)
        return prepared.run(self._inline.driver_connection, params)

    async def first(self, statement: sa.Select, params: dict[str, Any] | None = None) -> Any | None:
        """One row of a point lookup (by primary or unique key). `statement` must be a module-level
        constant with bind parameters (it is compiled once and cached by identity)."""
        if self.reader is not None:
            rows = self._read_prepared(statement, params or {})
            return rows[0] if rows else None
        assert self.engine is not None
        async with self.engine.connect() as conn:
            return (await conn.execute(statement, params)).first()

    async def read(self, fn: Callable[[Session], T]) -> T:
        """Run `fn(session)` (sync ORM code) in a read-only session: in a worker thread on SQLite,
        through `run_sync` on PostgreSQL."""
        if self.reader is not None:

            def run() -> T:
                with Session(self.reader, expire_on_commit=False) as session:
                    return fn(session)

            return await anyio.to_thread.run_sync(run)
        assert self.sessions is not None
        async with self.sessions() as session:
            return await session.run_sync(fn)

    async def write(self, fn: Callable[[Session], T]) -> T:
        """Run `fn(session)` in one transaction (committed when it returns, rolled back if it raises)."""
        assert self.sessions is not None
        async with self.sessions() as session, session.begin():
            return await session.run_sync(fn)

    async def all(self, statement: sa.Executable) -> list[sa.Row]:
        """Every row of a query that may scan (lists, searches)."""
        if self.reader is not None:
            return await anyio.to_thread.run_sync(self._read, statement)
        assert self.engine is not None
        async with self.engine.connect() as conn:
            return list(await conn.execute(statement))
