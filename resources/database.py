"""The operational database as a Dagster resource (synchronous engine for run workers and sensors)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
import sqlalchemy as sa
from pydantic import PrivateAttr
from sqlalchemy.orm import Session

from domain.db import backend_name, safe_url, sync_engine


class OperationalDatabase(dg.ConfigurableResource):
    """SQLite file (embedded) or PostgreSQL (production), chosen by the URL's scheme."""

    url: str

    _engine: sa.Engine | None = PrivateAttr(default=None)

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

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._engine is not None:
            self._engine.dispose()
