"""Alembic migrations of the operational DB, runnable from code (CLI, tests, Dagster)."""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from domain.db import ensure_sqlite_dir, safe_url, sync_engine, sync_url

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", sync_url(url).replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    ensure_sqlite_dir(url)
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


@functools.cache
def _revisions() -> tuple[str | None, frozenset[str]]:
    """The head revision of the migrations and every revision they know (read once per process)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    script = ScriptDirectory.from_config(config)
    return script.get_current_head(), frozenset(rev.revision for rev in script.walk_revisions())


class NotMigrated(SystemExit):
    """The database is not at the schema this code needs. A `SystemExit` whose text says what is
    wrong and what to run: a process starting on it stops with that one line (exit status 1), not
    with a traceback from the first query that misses a table."""


def require_current(url: str) -> None:
    """Raise `NotMigrated` unless the database has every migration this code knows. A database ahead
    of the code (a newer release migrated it first, as in a rolling deploy) is accepted."""
    head, known = _revisions()
    engine = sync_engine(url)
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
    if current == head:
        return
    where = safe_url(url)
    if current is None:
        raise NotMigrated(f"the database {where} has no schema yet: run `thmnayah migrate` first")
    if current in known:
        raise NotMigrated(
            f"the database {where} is at migration {current}, this code needs {head}: "
            "run `thmnayah migrate` first"
        )
