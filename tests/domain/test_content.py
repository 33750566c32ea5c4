"""The CMS content workflow on both operational databases (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from domain import content
from domain.content import NewContent
from domain.db import sync_engine
from domain.errors import Conflict, IllegalTransition, InvalidValue, NotFound, PreconditionFailed
from domain.schema import ContentItem, OutboxEvent

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def sessions(migrated_url: str) -> Iterator[sessionmaker[Session]]:
    engine = sync_engine(migrated_url)
    yield sessionmaker(engine, expire_on_commit=False)
    engine.dispose()


def _events(factory: sessionmaker[Session], aggregate_id: object | None = None) -> list[OutboxEvent]:
    with factory() as session:
        query = sa.select(OutboxEvent).order_by(OutboxEvent.seq)
        if aggregate_id is not None:
            query = query.where(OutboxEvent.aggregate_id == str(aggregate_id))
        return list(session.scalars(query))


def _count(factory: sessionmaker[Session], model: type) -> int:
    with factory() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(model))


def _create(factory: sessionmaker[Session], **fields: object) -> ContentItem:
    new = NewContent(**{"type": "video", "title": {"en": "An Episode", "ar": "حلقة"}, **fields})
    with factory.begin() as session:
        return content.create_content(session, new)


def _to_review(factory: sessionmaker[Session], item: ContentItem) -> ContentItem:
    with factory.begin() as session:
        return content.update_content(
            session, item.id, {"status": "in_review"}, expected_version=item.version
        )


def test_create_writes_the_item_and_its_event_in_one_transaction(
    sessions: sessionmaker[Session],
) -> None:
    actor = uuid.uuid4()
    with sessions.begin() as session:
        item = content.create_content(
            session,
            NewContent(type="article", title={"en": "Hello World", "ar": "مَرْحَبًا"}, tags=["News", "news"]),
            actor=actor,
        )
    assert (item.slug, item.status, item.version, item.tags) == ("hello-world", "draft", 1, ["news"])

    [event] = _events(sessions)
    assert event.event_type == "content.created"
    assert event.aggregate_type == "content"
    assert event.aggregate_id == str(item.id)
    assert event.payload["slug"] == "hello-world"
    assert event.payload["actor"] == str(actor)
    assert event.relayed_at is None
    with sessions() as session:
        stored = session.get(ContentItem, item.id)
        assert stored.title == {"en": "Hello World", "ar": "مَرْحَبًا"}
        # search text is normalized (diacritics gone) and space-delimited
        assert " مرحبا " in stored.search_text
        assert stored.created_at.tzinfo is not None


def test_rollback_loses_both_the_item_and_its_event(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        item = content.create_content(session, NewContent(type="video", title={"en": "Gone"}))
        # Inside the transaction both exist...
        assert session.scalar(sa.select(sa.func.count()).select_from(OutboxEvent)) == 1
        session.rollback()
    assert item.slug == "gone"
    assert _count(sessions, ContentItem) == 0
    assert _count(sessions, OutboxEvent) == 0


def test_duplicate_slug_is_a_conflict(sessions: sessionmaker[Session]) -> None:
    _create(sessions, slug="same")
    with pytest.raises(Conflict) as info, sessions.begin() as session:
        content.create_content(session, NewContent(type="audio", title={"en": "Other"}, slug="same"))
    assert info.value.field == "slug"
    assert _count(sessions, ContentItem) == 1


def test_soft_delete_frees_the_slug(sessions: sessionmaker[Session]) -> None:
    first = _create(sessions, slug="reused")
    with sessions.begin() as session:
        content.soft_delete(session, first.id, expected_version=first.version)
    second = _create(sessions, slug="reused")
    assert second.id != first.id
    with sessions() as session, pytest.raises(NotFound):
        content.get_live(session, first.id)
    assert [e.event_type for e in _events(sessions, first.id)] == ["content.created", "content.deleted"]


def test_illegal_transition_raises_and_changes_nothing(sessions: sessionmaker[Session]) -> None:
    item = _create(sessions)
    with pytest.raises(IllegalTransition) as info, sessions.begin() as session:
        content.publish(session, item.id, expected_version=1, now=T0)
    assert info.value.field == "status"
    assert "'draft' to 'published'" in info.value.detail
    with sessions() as session:
        stored = content.get_live(session, item.id)
        assert (stored.status, stored.version, stored.published_at) == ("draft", 1, None)
    assert [e.event_type for e in _events(sessions)] == ["content.created"]


def test_check_transition_table() -> None:
    content.check_transition("draft", "in_review")
    content.check_transition("scheduled", "published")
    content.check_transition("archived", "draft")
    with pytest.raises(IllegalTransition):
        content.check_transition("published", "draft")
    with pytest.raises(InvalidValue) as info:
        content.check_transition("draft", "live")
    assert info.value.field == "status"


def test_update_with_a_stale_version_is_refused(sessions: sessionmaker[Session]) -> None:
    item = _create(sessions)
    with sessions.begin() as session:
        updated = content.update_content(session, item.id, {"tags": ["a"]}, expected_version=1)
    assert updated.version == 2
    with pytest.raises(PreconditionFailed) as info, sessions.begin() as session:
        content.update_content(session, item.id, {"tags": ["b"]}, expected_version=1)
    assert info.value.field == "If-Match"
    with pytest.raises(PreconditionFailed), sessions.begin() as session:
        content.update_content(session, item.id, {"tags": ["b"]}, expected_version=None)
    with sessions() as session:
        assert content.get_live(session, item.id).tags == ["a"]


def test_a_concurrent_update_is_a_precondition_failure_not_a_crash(
    sessions: sessionmaker[Session],
) -> None:
    """Editor A read version 1 in a session still open; editor B updates first."""
    item = _create(sessions)
    editor_a = sessions()
    try:
        # A keeps the object it read (as a service computing an ETag does).
        read_by_a = content.get_live(editor_a, item.id)
        assert read_by_a.version == 1
        with sessions.begin() as editor_b:
            content.update_content(editor_b, item.id, {"tags": ["from-b"]}, expected_version=1)
        with pytest.raises(PreconditionFailed):
            content.update_content(editor_a, item.id, {"tags": ["from-a"]}, expected_version=1)
        editor_a.rollback()
    finally:
        editor_a.close()
    with sessions() as session:
        stored = content.get_live(session, item.id)
        assert (stored.tags, stored.version) == (["from-b"], 2)


def test_schedule_then_publish_due_publishes_and_emits(sessions: sessionmaker[Session]) -> None:
    item = _to_review(sessions, _create(sessions))
    at = T0 + timedelta(hours=2)
    with sessions.begin() as session:
        scheduled = content.schedule(session, item.id, at, expected_version=item.version, now=T0)
    assert scheduled.status == "scheduled"

    with sessions.begin() as session:
        assert content.publish_due(session, now=at - timedelta(seconds=1)) == []
    with sessions.begin() as session:
        assert content.publish_due(session, now=at + timedelta(minutes=1)) == [item.id]

    with sessions() as session:
        stored = content.get_live(session, item.id)
        assert stored.status == "published"
        assert stored.published_at == at + timedelta(minutes=1)
        assert stored.publish_at == at
    published = [e for e in _events(sessions, item.id) if e.event_type == "content.published"]
    assert len(published) == 1
    assert published[0].payload["scheduled_for"] == at.isoformat()
    assert published[0].payload["status"] == "published"


def test_publish_due_twice_publishes_once(sessions: sessionmaker[Session]) -> None:
    items = [_to_review(sessions, _create(sessions, slug=f"item-{i}")) for i in range(3)]
    for offset, item in enumerate(items):
        with sessions.begin() as session:
            content.schedule(session, item.id, T0 + timedelta(minutes=offset + 1), now=T0)
    later = T0 + timedelta(hours=1)
    with sessions.begin() as session:
        first = content.publish_due(session, now=later)
    with sessions.begin() as session:
        second = content.publish_due(session, now=later)
    assert first == [item.id for item in items]  # in publish_at order
    assert second == []
    published = [e for e in _events(sessions) if e.event_type == "content.published"]
    assert sorted(e.aggregate_id for e in published) == sorted(str(i.id) for i in items)


def test_schedule_refuses_past_or_naive_times(sessions: sessionmaker[Session]) -> None:
    item = _to_review(sessions, _create(sessions))
    with pytest.raises(InvalidValue) as info, sessions.begin() as session:
        content.schedule(session, item.id, T0 - timedelta(minutes=1), now=T0)
    assert info.value.field == "publish_at"
    with pytest.raises(InvalidValue), sessions.begin() as session:
        content.schedule(session, item.id, datetime(2030, 1, 1), now=T0)


def test_over_long_title_names_the_field(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(InvalidValue) as info, sessions.begin() as session:
        content.create_content(
            session, NewContent(type="video", title={"ar": "عنوان", "en": "x" * (content.TITLE_MAX + 1)})
        )
    assert info.value.field == "title.en"
    assert info.value.status == 422
    # Exactly at the limit is fine.
    _create(sessions, title={"en": "x" * content.TITLE_MAX})
    assert _count(sessions, OutboxEvent) == 1


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"type": "podcast"}, "type"),
        ({"title": {}}, "title"),
        ({"title": {"fr": "Bonjour"}}, "title.fr"),
        ({"slug": "Bad Slug"}, "slug"),
        ({"slug": "under_score"}, "slug"),
        ({"tags": ["a|b"]}, "tags"),
    ],
)
def test_invalid_input_names_its_field(sessions: sessionmaker[Session], fields: dict, field: str) -> None:
    with pytest.raises(InvalidValue) as info, sessions.begin() as session:
        content.create_content(session, NewContent(**{"type": "video", "title": {"en": "T"}, **fields}))
    assert info.value.field == field
    assert _count(sessions, ContentItem) == 0


def test_derived_slugs_are_valid_slugs(sessions: sessionmaker[Session]) -> None:
    for title in ({"en": "snake_case Title"}, {"ar": "الحَلْقَة الأولى"}, {"en": "Café -- Crème"}):
        item = _create(sessions, title=title)
        assert content._slug(item.slug) == item.slug
    with sessions() as session:
        slugs = set(session.scalars(sa.select(ContentItem.slug)))
    assert slugs == {"snake-case-title", "الحلقه-الاولي", "cafe-creme"}


def test_tag_filter_on_both_backends(sessions: sessionmaker[Session]) -> None:
    a = _create(sessions, slug="a", tags=["Drama", "كوميديا"])
    b = _create(sessions, slug="b", tags=["drama-x"])
    c = _create(sessions, slug="c", tags=["news"])

    def tagged(tag: str) -> set[uuid.UUID]:
        with sessions() as session:
            return set(session.scalars(sa.select(ContentItem.id).where(content.tag_filter(tag))))

    assert tagged("drama") == {a.id}  # whole tags only, not prefixes
    assert tagged(" DRAMA ") == {a.id}
    assert tagged("drama-x") == {b.id}
    assert tagged("كوميديا") == {a.id}
    assert tagged("news") == {c.id}
    assert tagged("missing") == set()
    # LIKE wildcards in a searched tag match literally, never as wildcards.
    assert tagged("drama_x") == set()
    assert tagged("%") == set()
    assert tagged("n_ws") == set()

    with sessions.begin() as session:
        content.update_content(session, c.id, {"tags": ["drama"]}, expected_version=1)
    assert tagged("drama") == {a.id, c.id}
    assert tagged("news") == set()


def test_derived_slugs_are_made_unique(sessions: sessionmaker[Session]) -> None:
    """Without an explicit slug, a title that collides gets a numeric suffix instead of a conflict."""
    titles = [{"en": "Weekly Show"}, {"en": "weekly  SHOW!"}, {"en": "Weekly Show"}]
    with sessions.begin() as session:
        slugs = [content.create_content(session, NewContent(type="audio", title=t)).slug for t in titles]
    assert slugs == ["weekly-show", "weekly-show-2", "weekly-show-3"]
