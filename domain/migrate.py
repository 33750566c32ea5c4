"""Alembic migrations of the operational DB, runnable from code (CLI, tests, Dagster).

`require_current`, which every API process runs at start, reads the revisions without alembic (from
the scripts' `revision`/`down_revision` lines and the `alembic_version` table): alembic, and with it
every migration script, is imported only when migrating.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from domain.db import ensure_sqlite_dir, safe_url, sync_engine, sync_url

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
VERSION_TABLE = "alembic_version"  # alembic's default, which env.py keeps


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", sync_url(url).replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    from alembic import command

    ensure_sqlite_dir(url)
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    from alembic import command

    command.downgrade(alembic_config(url), revision)


def _script_revision(path: Path) -> tuple[str, tuple[str, ...]]:
    """(revision, the revisions it follows) as a migration script assigns them at its top level."""
    found: dict[str, object] = {}
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in {"revision", "down_revision"}:
            found[target.id] = ast.literal_eval(value)
    if not isinstance(found.get("revision"), str):
        raise RuntimeError(f"{path} assigns no `revision`")
    down = found.get("down_revision")
    return found["revision"], (down,) if isinstance(down, str) else tuple(down or ())


@functools.cache
def _revisions() -> tuple[str | None, frozenset[str]]:
    """The head revision of the migrations and every revision they know (read once per process)."""
    follows = dict(_script_revision(path) for path in sorted((MIGRATIONS / "versions").glob("*.py")))
    heads = set(follows) - {down for downs in follows.values() for down in downs}
    if len(heads) > 1:
        raise RuntimeError(f"the migrations have several heads ({', '.join(sorted(heads))}): merge them")
    return next(iter(heads), None), frozenset(follows)


def current_revision(url: str) -> str | None:
    """The revision the database is at (None: never migrated)."""
    engine = sync_engine(url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(VERSION_TABLE):
                return None
            rows = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    finally:
        engine.dispose()
    if len(rows) > 1:
        raise RuntimeError(f"the database is at several heads ({', '.join(sorted(rows))})")
    return rows[0] if rows else None


class NotMigrated(SystemExit):
    """The database is not at the schema this code needs. A `SystemExit` whose text says what is
    wrong and what to run: a process starting on it stops with that one line (exit status 1), not
    with a traceback from the first query that misses a table."""


def require_current(url: str) -> None:
    """Raise `NotMigrated` unless the database has every migration this code knows. A database ahead
    of the code (a newer release migrated it first, as in a rolling deploy) is accepted."""
    head, known = _revisions()
    current = current_revision(url)
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
