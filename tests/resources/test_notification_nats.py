"""Notification events reach NATS JetStream through the outbox relay, each stored once: created by
`service.send`, delivered by the drain, relayed with `Nats-Msg-Id` = event id, and a re-relay after
a crash between publish and mark is dropped by JetStream as a duplicate."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from domain.auth import audit, rbac, users
from domain.auth.keys import Keyring
from domain.notifications import delivery, service
from domain.schema import OutboxEvent
from resources.database import OperationalDatabase
from resources.event_bus import NatsEventBus
from resources.notifiers.email import FileEmailTransport
from tests.resources.conftest import delete_stream, stream_messages

pytestmark = pytest.mark.nats

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
def bus(nats_url: str) -> Iterator[NatsEventBus]:
    token = uuid.uuid4().hex[:12]
    yield NatsEventBus(url=nats_url, stream=f"TEST_NOTIFY_{token}", subject_prefix=f"test{token}")
    asyncio.run(delete_stream(nats_url, f"TEST_NOTIFY_{token}"))


@pytest.fixture
def database(migrated_url: str) -> Iterator[OperationalDatabase]:
    db = OperationalDatabase(url=migrated_url)
    yield db
    db.engine().dispose()


def test_notification_events_are_published_once_with_their_event_ids(
    database: OperationalDatabase, bus: NatsEventBus, tmp_path: Path
) -> None:
    with database.session() as session:
        rbac.seed_system_roles(session)
        reader = users.create_user(
            session,
            users.NewUser("reader", "reader@example.test", None),
            created_by=None,
            origin=audit.Origin(),
        )
        service.send(
            session,
            service.Draft(category="news", channels=("in_app", "email"), subject={"ar": "خبر", "en": "News"}),
            [reader.id],
            now=T0,
        )
    transport = FileEmailTransport(directory=str(tmp_path / "mail"), sender="t <t@example.test>")
    tally = delivery.drain(
        database.session, {"email": transport}, now=T0, policy=delivery.Policy(keys=Keyring("k" * 40))
    )
    assert tally.total("sent") == 1
    with database.session() as session:
        expected = {
            str(e.event_id): e.event_type
            for e in session.scalars(
                sa.select(OutboxEvent).where(OutboxEvent.event_type.like("notification.%"))
            )
        }
    assert sorted(expected.values()) == [
        "notification.created",
        "notification.created",
        "notification.delivered",
    ]

    first = bus.relay(database)
    assert first.duplicates == 0 and first.pending == 0
    messages = asyncio.run(stream_messages(bus.url, bus.stream))
    published = {m.msg_id: (m.subject, m.body) for m in messages}
    for event_id, event_type in expected.items():
        subject, body = published[event_id]
        assert subject == f"{bus.subject_prefix}.{event_type}" and body["id"] == event_id
    delivered = next(
        body for subject, body in published.values() if subject.endswith("notification.delivered")
    )
    assert (
        delivered["payload"]["recipient_id"] == str(reader.id) and delivered["payload"]["channel"] == "email"
    )

    # The relay crashed after JetStream's ack but before marking: the same rows go out again.
    with database.session() as session:
        session.execute(
            sa.update(OutboxEvent)
            .where(OutboxEvent.event_id.in_([uuid.UUID(e) for e in expected]))
            .values(relayed_at=None)
        )
    again = bus.relay(database)
    assert (again.published, again.duplicates) == (0, len(expected))
    assert len(asyncio.run(stream_messages(bus.url, bus.stream))) == len(messages)
