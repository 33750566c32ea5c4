"""The operational database for run workers and sensors: a synchronous SQLAlchemy engine, opened on
first use and disposed by whoever built the client (its Dagster wrapper, after each execution)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from domain.db import backend_name, safe_url, sync_engine


class OperationalDatabase:
    """SQLite file (embedded) or PostgreSQL (production), chosen by the URL's scheme."""

    def __init__(self, *, url: str) -> None:
        self.url = url
        self._engine: sa.Engine | None = None

    def __repr__(self) -> str:
        return f"OperationalDatabase(url={safe_url(self.url)!r})"

    @property
    def backend(self) -> str:
        return backend_name(self.url)

    def engine(self) -> sa.Engine:
        if self._engine is None:
            self._engine = sync_engine(self.url, pool_pre_ping=True)
        return self._engine

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose transaction commits when the block ends and rolls back on error."""
        with Session(self.engine(), expire_on_commit=False) as session, session.begin():
            yield session

    def health(self) -> dict[str, Any]:
        with self.engine().connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return {"backend": self.backend, "url": safe_url(self.url)}

    def dispose(self) -> None:
        """Close the engine's pooled connections (the next use opens a new engine)."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
