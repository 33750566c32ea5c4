"""Alembic migrations of the operational DB, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from domain.db import sync_engine
from domain.migrate import _revisions, alembic_config, current_revision, downgrade, upgrade
from domain.schema import Base

TABLES = set(Base.metadata.tables)  # every table of the models, created by the migrations alone


def _tables(url: str) -> set[str]:
    engine = sync_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def _current_revision(url: str) -> str | None:
    engine = sync_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def _schema_diff(url: str) -> list:
    engine = sync_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(database_url: str) -> None:
    head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
    assert _tables(database_url) == set()

    upgrade(database_url)
    assert _tables(database_url) == TABLES
    assert _current_revision(database_url) == head

    # One step down removes exactly what the newest migration added; then all the way down.
    script = ScriptDirectory.from_config(alembic_config(database_url))
    previous = script.get_revision(head).down_revision
    downgrade(database_url, previous or "base")
    assert _current_revision(database_url) == previous
    downgrade(database_url)
    assert _tables(database_url) == set()
    assert _current_revision(database_url) is None

    upgrade(database_url)
    assert _tables(database_url) == TABLES
    assert _current_revision(database_url) == head


def test_the_start_check_reads_the_revisions_as_alembic_does(database_url: str) -> None:
    """`require_current` reads the head, the known revisions and the database's revision without
    alembic; each agrees with alembic's own reading, before, between and after migrations."""
    script = ScriptDirectory.from_config(alembic_config(database_url))
    assert _revisions() == (script.get_current_head(), {rev.revision for rev in script.walk_revisions()})
    assert current_revision(database_url) is None and _current_revision(database_url) is None
    upgrade(database_url, "0002")
    assert current_revision(database_url) == _current_revision(database_url) == "0002"
    upgrade(database_url)
    assert current_revision(database_url) == _current_revision(database_url) == script.get_current_head()


def test_migrated_schema_matches_the_models(migrated_url: str) -> None:
    assert _schema_diff(migrated_url) == []


def test_a_diverging_schema_is_detected(migrated_url: str) -> None:
    """Guards the comparison above: it must see a difference when there is one."""
    engine = sync_engine(migrated_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE INDEX ix_stray ON content_items (slug, status)"))
    engine.dispose()
    diff = _schema_diff(migrated_url)
    assert [entry[0] for entry in diff] == ["remove_index"]
    assert diff[0][1].name == "ix_stray"


def _content_row(**overrides: object) -> dict:
    now = datetime.now(UTC)
    return {
        "id": uuid.uuid4(),
        "type": "video",
        "title": {"en": "t"},
        "description": {},
        "slug": "same-slug",
        "status": "draft",
        "tags": [],
        "tag_index": "",
        "metadata": {},
        "search_text": "",
        "created_at": now,
        "updated_at": now,
        "deleted_at": None,
        "version": 1,
        **overrides,
    }


def test_migrated_constraints_hold(migrated_url: str) -> None:
    """Live slugs are unique (deleted ones are not) and the status check is enforced."""
    table = Base.metadata.tables["content_items"]
    engine = sync_engine(migrated_url)
    deleted = datetime.now(UTC)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.insert(table),
                [_content_row(deleted_at=deleted), _content_row(deleted_at=deleted), _content_row()],
            )
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(sa.insert(table), [_content_row()])
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(sa.insert(table), [_content_row(slug="other", status="bogus")])
        with engine.connect() as conn:
            assert conn.scalar(sa.select(sa.func.count()).select_from(table)) == 3
    finally:
        engine.dispose()
