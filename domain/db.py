"""Database URLs and engines for the operational DB (SQLite embedded, PostgreSQL in production)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url


def _driver(url: str, sqlite: str, postgres: str) -> str:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername=sqlite).render_as_string(hide_password=False)
    if backend == "postgresql":
        return parsed.set(drivername=postgres).render_as_string(hide_password=False)
    raise ValueError(f"unsupported operational database {backend!r}: use sqlite or postgresql")


def sync_url(url: str) -> str:
    return _driver(url, "sqlite+pysqlite", "postgresql+psycopg")


def async_url(url: str) -> str:
    return _driver(url, "sqlite+aiosqlite", "postgresql+asyncpg")


def backend_name(url: str) -> str:
    return make_url(url).get_backend_name()


def safe_url(url: str) -> str:
    """The URL with its password masked, for logs and health output."""
    return make_url(url).render_as_string(hide_password=True)


def sqlite_pragmas(dbapi_conn, _record) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def ensure_sqlite_dir(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def sync_engine(url: str, **kwargs) -> sa.Engine:
    ensure_sqlite_dir(url)
    engine = sa.create_engine(sync_url(url), **kwargs)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", sqlite_pragmas)
    return engine
