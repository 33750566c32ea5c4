"""The outbox relay to NATS JetStream: exactly once in the stream across relay crashes and restarts."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from domain.outbox import record_event
from domain.schema import OutboxEvent
from resources.database import OperationalDatabase
from resources.event_bus import NatsEventBus, OutboxEventBus, RelayResult
from tests.resources.conftest import delete_stream, stream_messages

pytestmark = pytest.mark.nats


@pytest.fixture
def database(migrated_url: str) -> Iterator[OperationalDatabase]:
    db = OperationalDatabase(url=migrated_url)
    yield db
    db.engine().dispose()


@pytest.fixture
def bus_config(nats_url: str) -> Iterator[dict]:
    """A stream and subject prefix of this test's own, deleted afterwards."""
    token = uuid.uuid4().hex[:12]
    config = {"url": nats_url, "stream": f"TEST_{token}", "subject_prefix": f"test{token}"}
    yield config
    asyncio.run(delete_stream(nats_url, config["stream"]))


def _record(database: OperationalDatabase, count: int, *, event_type: str = "content.created") -> list[str]:
    with database.session() as session:
        events = [
            record_event(session, event_type, "content", uuid.uuid4(), {"n": n, "title": {"ar": "حلقة"}})
            for n in range(count)
        ]
        session.flush()
        return [str(e.event_id) for e in events]


def _unmark(database: OperationalDatabase, event_ids: list[str]) -> None:
    """What a relay crash between JetStream's ack and the commit of `relayed_at` leaves behind."""
    with database.session() as session:
        session.execute(
            sa.update(OutboxEvent)
            .where(OutboxEvent.event_id.in_([uuid.UUID(e) for e in event_ids]))
            .values(relayed_at=None)
        )


def _unrelayed(database: OperationalDatabase) -> int:
    with database.session() as session:
        return session.scalar(
            sa.select(sa.func.count()).select_from(OutboxEvent).where(OutboxEvent.relayed_at.is_(None))
        )


def test_relay_is_exactly_once_across_a_crash_and_restart(
    database: OperationalDatabase, bus_config: dict
) -> None:
    n, m = 7, 4
    first_ids = _record(database, n)

    result = NatsEventBus(**bus_config).relay(database, batch_size=3)
    assert result == RelayResult(published=n, duplicates=0, pending=0)
    assert _unrelayed(database) == 0
    messages = asyncio.run(stream_messages(bus_config["url"], bus_config["stream"]))
    assert len(messages) == n
    assert len({msg.msg_id for msg in messages}) == n
    assert [msg.msg_id for msg in messages] == first_ids  # in outbox order
    for msg in messages:
        assert msg.subject == f"{bus_config['subject_prefix']}.content.created"
        assert msg.body["id"] == msg.msg_id
        assert msg.body["type"] == "content.created"
        assert msg.body["payload"]["title"] == {"ar": "حلقة"}
    assert [msg.body["payload"]["n"] for msg in messages] == list(range(n))

    # Crash after publishing but before marking: some rows are unrelayed again.
    crashed = first_ids[2:5]
    _unmark(database, crashed)
    assert _unrelayed(database) == len(crashed)

    restarted = NatsEventBus(**bus_config)  # a new process: nothing carried over in memory
    result = restarted.relay(database)
    assert result == RelayResult(published=0, duplicates=len(crashed), pending=0)
    assert _unrelayed(database) == 0
    messages = asyncio.run(stream_messages(bus_config["url"], bus_config["stream"]))
    assert len(messages) == n
    assert len({msg.msg_id for msg in messages}) == n

    more_ids = _record(database, m, event_type="content.published")
    result = NatsEventBus(**bus_config).relay(database)
    assert result == RelayResult(published=m, duplicates=0, pending=0)
    messages = asyncio.run(stream_messages(bus_config["url"], bus_config["stream"]))
    assert len(messages) == n + m
    assert [msg.msg_id for msg in messages] == first_ids + more_ids
    assert {msg.subject for msg in messages[n:]} == {f"{bus_config['subject_prefix']}.content.published"}


def test_relay_with_nothing_to_do(database: OperationalDatabase, bus_config: dict) -> None:
    result = NatsEventBus(**bus_config).relay(database)
    assert result == RelayResult(published=0, duplicates=0, pending=0)
    # The stream exists (created on first use) and is empty.
    assert asyncio.run(stream_messages(bus_config["url"], bus_config["stream"])) == []


def test_relay_stops_after_max_batches_and_reports_what_is_pending(
    database: OperationalDatabase, bus_config: dict
) -> None:
    _record(database, 10)
    bus = NatsEventBus(**bus_config)
    result = bus.relay(database, batch_size=2, max_batches=2)
    assert (result.published, result.duplicates, result.pending) == (4, 0, 6)
    assert _unrelayed(database) == 6
    result = bus.relay(database, batch_size=2)
    assert (result.published, result.pending) == (6, 0)
    assert len(asyncio.run(stream_messages(bus_config["url"], bus_config["stream"]))) == 10


def test_nats_health(bus_config: dict) -> None:
    bus = NatsEventBus(**bus_config)
    assert bus.relays is True
    health = bus.health()
    assert health["backend"] == "nats"
    assert isinstance(health["streams"], int)


def test_outbox_bus_does_not_relay(sqlite_url: str) -> None:
    from domain.migrate import upgrade

    upgrade(sqlite_url)
    database = OperationalDatabase(url=sqlite_url)
    _record(database, 2)
    bus = OutboxEventBus()
    assert bus.relays is False
    result = bus.relay(database)
    assert (result.published, result.duplicates) == (0, 0)
    assert result.skipped_reason is not None
    assert "outbox" in result.skipped_reason
    assert _unrelayed(database) == 2  # the outbox is left for sensors to read by cursor
    assert bus.health() == {"backend": "outbox"}
    database.engine().dispose()
