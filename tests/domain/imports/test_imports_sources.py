"""Import sources: configuration checked per type, pause/resume/delete, who did it, the audit trail."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from domain.auth import audit
from domain.errors import Conflict, InvalidValue, NotFound
from domain.imports import polling, sources
from domain.schema import ImportSource, UserActivity
from resources.database import OperationalDatabase
from tests.domain.imports.conftest import CHANNEL_ID


def create(db: OperationalDatabase, editor: uuid.UUID, **fields) -> ImportSource:
    new = sources.NewSource(**{"name": "Source", **fields})
    with db.session() as session:
        source = sources.create_source(session, new, actor=editor)
        session.expunge(source)
        return source


def refused(db: OperationalDatabase, editor: uuid.UUID, **fields) -> InvalidValue:
    with pytest.raises(InvalidValue) as caught:
        create(db, editor, **fields)
    return caught.value


def test_each_type_s_configuration_is_accepted_with_its_locator(db, editor) -> None:
    youtube = create(
        db, editor, source_type="youtube", configuration={"channel_id": CHANNEL_ID}, schedule="0 * * * *"
    )
    handle = create(db, editor, source_type="youtube", configuration={"handle": "@Thmanyah"})
    rss = create(db, editor, source_type="rss", configuration={"url": "https://example.test/feed.xml"})
    api = create(
        db,
        editor,
        source_type="api",
        configuration={
            "url": "http://api.example.test/items",
            "auth": {"type": "api_key_header", "name": "X-Key"},
            "pagination": {"type": "cursor"},
        },
    )
    manual = create(db, editor, source_type="manual", configuration={"format": "csv"})
    assert [s.locator for s in (youtube, handle, rss, api, manual)] == [
        CHANNEL_ID,
        "@thmanyah",
        "https://example.test/feed.xml",
        "http://api.example.test/items",
        "",
    ]
    assert (
        youtube.created_by == editor
        and youtube.conflict_policy == "merge"
        and youtube.publish_policy == "draft"
    )
    assert youtube.next_poll_at is not None  # scheduled and active: due at once
    assert handle.next_poll_at is None  # no schedule: runs only when asked
    with db.session() as session:
        assert [s.id for s in sources.list_sources(session, source_type="youtube")] == [youtube.id, handle.id]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"source_type": "youtube", "configuration": {"channel_id": "UC123"}}, "configuration.channel_id"),
        (
            {"source_type": "youtube", "configuration": {"channel_id": "XX" + "a" * 22}},
            "configuration.channel_id",
        ),
        ({"source_type": "youtube", "configuration": {"handle": "no-at-sign"}}, "configuration.handle"),
        ({"source_type": "youtube", "configuration": {}}, "configuration.channel_id"),
        ({"source_type": "rss", "configuration": {"url": "ftp://example.test/feed"}}, "configuration.url"),
        ({"source_type": "rss", "configuration": {"url": "file:///etc/passwd"}}, "configuration.url"),
        ({"source_type": "rss", "configuration": {}}, "configuration.url"),
        ({"source_type": "api", "configuration": {"url": "javascript:alert(1)"}}, "configuration.url"),
        (
            {"source_type": "api", "configuration": {"url": "https://a.test", "auth": {"type": "oauth9"}}},
            "configuration.auth.type",
        ),
        (
            {
                "source_type": "api",
                "configuration": {"url": "https://a.test", "auth": {"type": "api_key_query"}},
            },
            "configuration.auth.name",
        ),
        (
            {
                "source_type": "api",
                "configuration": {"url": "https://a.test", "pagination": {"type": "scroll"}},
            },
            "configuration.pagination.type",
        ),
        ({"source_type": "manual", "configuration": {"format": "xml"}}, "configuration.format"),
        ({"source_type": "ftp", "configuration": {}}, "source_type"),
        (
            {"source_type": "rss", "configuration": {"url": "https://a.test"}, "schedule": "every hour"},
            "schedule",
        ),
        (
            {"source_type": "rss", "configuration": {"url": "https://a.test"}, "schedule": "61 * * * *"},
            "schedule",
        ),
        ({"source_type": "manual", "schedule": "0 * * * *"}, "schedule"),
        (
            {"source_type": "rss", "configuration": {"url": "https://a.test"}, "conflict_policy": "ours"},
            "conflict_policy",
        ),
        (
            {"source_type": "rss", "configuration": {"url": "https://a.test"}, "publish_policy": "live"},
            "publish_policy",
        ),
        ({"source_type": "rss", "configuration": {"url": "https://a.test"}, "name": " "}, "name"),
        (
            {"source_type": "rss", "configuration": {"url": "https://a.test"}, "mapping_rules": []},
            "mapping_rules",
        ),
    ],
)
def test_a_bad_configuration_is_refused_naming_the_field(db, editor, fields, field) -> None:
    error = refused(db, editor, **fields)
    assert error.field == field
    assert field.split(".")[-1] in error.detail
    with db.session() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(ImportSource)) == 0


def test_the_same_feed_is_subscribed_once_until_its_source_is_deleted(db, editor) -> None:
    first = create(db, editor, source_type="rss", configuration={"url": "https://example.test/feed.xml"})
    with pytest.raises(Conflict):
        create(db, editor, source_type="rss", configuration={"url": "https://example.test/feed.xml"})
    with db.session() as session:
        sources.delete_source(session, first.id, actor=editor)
    again = create(db, editor, source_type="rss", configuration={"url": "https://example.test/feed.xml"})
    assert again.id != first.id


def test_pause_resume_and_delete_record_who_and_are_audited(db, editor) -> None:
    source = create(
        db, editor, source_type="rss", configuration={"url": "https://a.test/f"}, schedule="0 * * * *"
    )
    with db.session() as session:
        paused = sources.pause_source(session, source.id, actor=editor)
        assert (paused.is_active, paused.next_poll_at, paused.updated_by) == (False, None, editor)
        paused.failure_count = 7
    with db.session() as session:
        resumed = sources.resume_source(session, source.id, actor=editor)
        assert resumed.is_active and resumed.failure_count == 0 and resumed.next_poll_at is not None
    with db.session() as session:
        sources.delete_source(session, source.id, actor=editor)
    with db.session() as session:
        with pytest.raises(NotFound):
            sources.get_source(session, source.id)
        assert sources.list_sources(session) == []
        assert (
            session.get(ImportSource, source.id).deleted_at is not None
        )  # kept for the origin of its content
        trail = session.execute(
            sa.select(UserActivity.action, UserActivity.user_id, UserActivity.resource_id)
            .where(UserActivity.resource == "import_source")
            .order_by(UserActivity.timestamp, UserActivity.id)
        ).all()
    assert [row.action for row in trail] == [
        audit.IMPORT_SOURCE_CREATED,
        audit.IMPORT_SOURCE_PAUSED,
        audit.IMPORT_SOURCE_RESUMED,
        audit.IMPORT_SOURCE_DELETED,
    ]
    assert {(row.user_id, row.resource_id) for row in trail} == {(editor, str(source.id))}


def test_pausing_twice_is_audited_once(db, editor) -> None:
    source = create(db, editor, source_type="manual")
    for _ in range(2):
        with db.session() as session:
            sources.pause_source(session, source.id, actor=editor)
    with db.session() as session:
        actions = session.scalars(
            sa.select(UserActivity.action).where(UserActivity.action == audit.IMPORT_SOURCE_PAUSED)
        ).all()
    assert actions == [audit.IMPORT_SOURCE_PAUSED]


def test_a_failing_source_backs_off_keeps_polling_and_recovers(db, editor) -> None:
    source = create(
        db, editor, source_type="rss", configuration={"url": "https://a.test/f"}, schedule="*/15 * * * *"
    )
    now = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)
    with db.session() as session:
        row = sources.get_source(session, source.id)
        for _ in range(12):
            sources.record_poll(row, now, error="HTTP 503", rand=lambda: 1.0)
        assert row.is_active and row.failure_count == 12 and row.last_error == "HTTP 503"
        assert row.next_poll_at == now + polling.MAX_BACKOFF  # polled at the cap
        sources.record_poll(row, now, error="HTTP 429", retry_after_s=9 * 3600, rand=lambda: 1.0)
        assert row.next_poll_at == now + timedelta(hours=9)  # Retry-After beyond the cap is honoured
        sources.record_poll(row, now)
        assert (row.failure_count, row.last_error) == (0, None)
        assert row.next_poll_at == datetime(2026, 12, 8, 10, 15, tzinfo=UTC)  # back on its schedule


def test_due_sources_are_the_active_scheduled_ones_whose_time_has_come(db, editor) -> None:
    now = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)
    due = create(
        db, editor, source_type="rss", configuration={"url": "https://a.test/1"}, schedule="0 * * * *"
    )
    later = create(
        db, editor, source_type="rss", configuration={"url": "https://a.test/2"}, schedule="0 * * * *"
    )
    paused = create(
        db, editor, source_type="rss", configuration={"url": "https://a.test/3"}, schedule="0 * * * *"
    )
    create(db, editor, source_type="rss", configuration={"url": "https://a.test/4"})  # no schedule
    with db.session() as session:
        session.get(ImportSource, due.id).next_poll_at = now - timedelta(minutes=1)
        session.get(ImportSource, later.id).next_poll_at = now + timedelta(minutes=1)
        session.get(ImportSource, paused.id).next_poll_at = now - timedelta(minutes=5)
        sources.pause_source(session, paused.id, actor=editor)
    with db.session() as session:
        assert [s.id for s in sources.due_sources(session, now)] == [due.id]
