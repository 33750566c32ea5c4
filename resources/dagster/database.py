"""The operational database as a Dagster resource."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from resources.database import OperationalDatabase


class OperationalDatabaseResource(dg.ConfigurableResource):
    """The operational database: a SQLite file (embedded) or PostgreSQL (production), chosen by the
    URL's scheme. Each execution gets its own engine, disposed when the execution ends."""

    url: str

    def create_resource(self, context: dg.InitResourceContext) -> OperationalDatabase:
        return OperationalDatabase(url=self.url)

    @contextmanager
    def yield_for_execution(self, context: dg.InitResourceContext) -> Iterator[OperationalDatabase]:
        database = self.create_resource(context)
        try:
            yield database
        finally:
            database.dispose()
