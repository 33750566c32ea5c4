"""OperationalDatabase: transactions and health on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from domain.outbox import max_seq, record_event
from domain.schema import OutboxEvent
from resources.database import OperationalDatabase


@pytest.fixture
def database(migrated_url: str):
    db = OperationalDatabase(url=migrated_url)
    yield db
    db.dispose()


def _count(db: OperationalDatabase) -> int:
    with db.engine().connect() as conn:
        return conn.scalar(sa.select(sa.func.count()).select_from(OutboxEvent))


def test_session_commits_when_the_block_ends(database: OperationalDatabase) -> None:
    with database.session() as session:
        event = record_event(session, "content.created", "content", uuid.uuid4(), {"n": 1})
    # expire_on_commit=False: what was written stays readable after the block.
    assert event.seq is not None
    assert event.event_id is not None
    assert _count(database) == 1
    with database.session() as session:
        assert max_seq(session) == event.seq
        stored = session.scalar(sa.select(OutboxEvent))
        assert stored.payload == {"n": 1}
        assert stored.occurred_at.tzinfo is not None


def test_session_rolls_back_on_error(database: OperationalDatabase) -> None:
    with pytest.raises(RuntimeError, match="boom"), database.session() as session:
        record_event(session, "content.created", "content", uuid.uuid4(), {})
        session.flush()
        assert session.scalar(sa.select(sa.func.count()).select_from(OutboxEvent)) == 1
        raise RuntimeError("boom")
    assert _count(database) == 0


def test_a_failed_statement_rolls_back_the_whole_transaction(database: OperationalDatabase) -> None:
    duplicate = uuid.uuid4()
    with pytest.raises(sa.exc.IntegrityError), database.session() as session:
        record_event(session, "a", "content", "1", {})
        session.flush()
        session.add(
            OutboxEvent(event_id=duplicate, event_type="b", aggregate_type="c", aggregate_id="2", payload={})
        )
        session.add(
            OutboxEvent(event_id=duplicate, event_type="b", aggregate_type="c", aggregate_id="3", payload={})
        )
    assert _count(database) == 0


def test_health_and_backend(database: OperationalDatabase, migrated_url: str) -> None:
    health = database.health()
    expected = "sqlite" if migrated_url.startswith("sqlite") else "postgresql"
    assert database.backend == expected
    assert health["backend"] == expected
    assert health["url"].startswith(expected)


def test_health_masks_the_password(postgres_url: str) -> None:
    url = sa.engine.make_url(postgres_url).set(password="s3cret").render_as_string(hide_password=False)
    database = OperationalDatabase(url=url)  # trust auth: the password is ignored by the server
    health = database.health()
    assert "s3cret" not in health["url"]
    assert "***" in health["url"]
    database.dispose()


def test_health_fails_when_the_database_is_unreachable() -> None:
    database = OperationalDatabase(url="postgresql://postgres@127.0.0.1:1/none?connect_timeout=1")
    with pytest.raises(sa.exc.OperationalError):
        database.health()
    database.dispose()


def test_sqlite_engine_uses_wal_and_foreign_keys(sqlite_url: str) -> None:
    database = OperationalDatabase(url=sqlite_url)
    with database.engine().connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    database.dispose()
