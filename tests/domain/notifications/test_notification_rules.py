"""The notification rules: each outbox event type notifies the right people, in their language, once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time

import pytest
import sqlalchemy as sa

from domain import content, outbox
from domain.auth import audit, users
from domain.auth.keys import Keyring
from domain.ids import new_id
from domain.media import jobs as media_jobs
from domain.notifications import rules
from domain.schema import (
    DeliveryLog,
    Notification,
    NotificationEvent,
    NotificationPreference,
    NotificationSubscription,
    NotificationTemplate,
)
from resources.database import OperationalDatabase as DB
from tests.conftest import record_test_upload

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def seeded(db: DB) -> DB:
    with db.session() as session:
        rules.seed_default_templates(session)
    return db


def make_user(
    db: DB, name: str, *, roles: tuple[str, ...] = ("viewer",), locale: str | None = None, active: bool = True
) -> uuid.UUID:
    with db.session() as session:
        user = users.create_user(
            session,
            users.NewUser(
                name,
                f"{name}@example.test",
                None,
                first_name=name.title(),
                roles=list(roles),
                is_active=active,
                preferences={"locale": locale} if locale else {},
            ),
            created_by=None,
            origin=audit.Origin(),
        )
        return user.id


def subscribe(db: DB, user_id: uuid.UUID, *topics: str) -> None:
    with db.session() as session:
        for topic in topics:
            session.add(NotificationSubscription(user_id=user_id, topic=topic))


def process(db: DB, after: int = 0) -> rules.Summary:
    return rules.process_events(db.session, after=after, now=NOW)


def notifications(db: DB, **where) -> list[Notification]:
    with db.session() as session:
        query = sa.select(Notification).order_by(Notification.created_at, Notification.id)
        for name, value in where.items():
            query = query.where(getattr(Notification, name) == value)
        return list(session.scalars(query))


def recipients(db: DB, channel: str = "in_app") -> set[uuid.UUID]:
    return {n.recipient_id for n in notifications(db, channel=channel)}


def test_seed_default_templates_is_idempotent_and_keeps_edits(db: DB) -> None:
    expected = len(rules.DEFAULT_TEMPLATES) * len(rules.TEMPLATE_CHANNELS) * 2
    with db.session() as session:
        assert rules.seed_default_templates(session) == expected
    with db.session() as session:
        edited = session.scalar(
            sa.select(NotificationTemplate).where(
                NotificationTemplate.name == "content.published",
                NotificationTemplate.template_type == "email",
                NotificationTemplate.language == "en",
            )
        )
        edited.is_active = False
        session.add(
            NotificationTemplate(
                name="content.published",
                template_type="email",
                language="en",
                subject_template="Edited {{ content.slug }}",
                content_template="x",
                version=2,
            )
        )
    with db.session() as session:
        assert rules.seed_default_templates(session) == 0
        assert session.scalar(sa.select(sa.func.count()).select_from(NotificationTemplate)) == expected + 1
    # Every rule has a template for both channels and languages.
    for rule in rules.RULES.values():
        for language in ("ar", "en"):
            assert language in rules.DEFAULT_TEMPLATES[rule.template]


def test_content_published_notifies_subscribers_of_its_topics_only(seeded: DB) -> None:
    db = seeded
    series = new_id()
    by_tag = make_user(db, "tagfan", locale="ar-SA")
    by_series = make_user(db, "seriesfan")
    by_category = make_user(db, "catfan")
    by_item = make_user(db, "itemfan")
    unrelated = make_user(db, "other")
    inactive = make_user(db, "gone", active=False)
    subscribe(db, unrelated, "tag:sports")
    subscribe(db, inactive, "tag:news")
    subscribe(db, by_tag, "tag:news")
    subscribe(db, by_series, f"series:{series}")
    subscribe(db, by_category, "category:culture")
    with db.session() as session:
        item = content.create_content(
            session,
            content.NewContent(
                type="episode",
                title={"ar": "حلقة جديدة", "en": "A new episode"},
                tags=["news"],
                metadata={"series_id": str(series), "category": "culture"},
            ),
        )
        content.update_content(session, item.id, {"status": "in_review"}, expected_version=item.version)
        item_id = item.id
    subscribe(db, by_item, f"content:{item_id}")
    with db.session() as session:
        content.publish(session, item_id)

    summary = process(db)
    assert summary.processed == 1 and summary.failed == 0
    assert summary.by_type == {"content.published": 1}
    assert recipients(db, "in_app") == {by_tag, by_series, by_category, by_item}
    assert recipients(db, "email") == {by_tag, by_series, by_category, by_item}
    arabic = notifications(db, recipient_id=by_tag, channel="in_app")[0]
    assert (arabic.subject, arabic.language) == ("جديد: حلقة جديدة", "ar")
    english = notifications(db, recipient_id=by_series, channel="email")[0]
    assert english.subject == "New: A new episode" and 'dir="ltr"' in english.content_html
    with db.session() as session:
        event = session.scalar(sa.select(NotificationEvent))
        assert (event.event_type, event.status, event.notification_count) == (
            "content.published",
            "processed",
            8,
        )
        assert {n.event_id for n in session.scalars(sa.select(Notification))} == {event.id}  # one thread
        assert session.scalar(sa.select(sa.func.count()).select_from(DeliveryLog)) == 4

    again = process(db)  # a re-run over the same outbox range notifies nobody twice
    assert again.processed == 0 and again.skipped == 1
    assert len(notifications(db)) == 8


def test_media_processed_and_failed_notify_the_uploader(seeded: DB) -> None:
    db = seeded
    uploader = make_user(db, "uploader", roles=("author",))
    make_user(db, "bystander")
    ids = []
    with db.session() as session:
        for name in ("clip.mp4", "broken.mp4"):
            asset, _ = record_test_upload(session, filename=name, uploaded_by=uploader)
            ids.append(asset.id)
        record_test_upload(session, filename="anon.mp4")
    with db.session() as session:
        media_jobs.complete(session, ids[0], None, {"duration_s": 3.0})
        media_jobs.fail(session, ids[1], None, "no video stream", stage="metadata")
    summary = process(db)
    assert summary.by_type == {"media.processed": 1, "media.failed": 1}
    mine = notifications(db, recipient_id=uploader, channel="in_app")
    assert [(n.category, n.notification_type) for n in mine] == [
        ("media.processed", "success"),
        ("media.failed", "error"),
    ]
    assert "clip.mp4" in mine[0].content
    assert "broken.mp4" in mine[1].content and "no video stream" in mine[1].content
    assert recipients(db) == {uploader}


def test_import_completed_notifies_editors_and_admins(seeded: DB) -> None:
    db = seeded
    editor = make_user(db, "editor1", roles=("editor",))
    admin = make_user(db, "admin1", roles=("admin",), locale="ar")
    make_user(db, "viewer1")
    make_user(db, "author1", roles=("author",))
    make_user(db, "oldeditor", roles=("editor",), active=False)
    with db.session() as session:
        outbox.record_event(
            session,
            "import.completed",
            "import_source",
            "rss-1",
            {"source_name": "Podcast feed", "created": 12, "updated": 3, "failed": 1},
            at=NOW,
        )
    process(db)
    assert recipients(db) == {editor, admin}
    english = notifications(db, recipient_id=editor, channel="in_app")[0]
    assert english.subject == "Import finished: Podcast feed"
    assert "12 created, 3 updated, 1 failed" in english.content
    assert (
        notifications(db, recipient_id=admin, channel="in_app")[0].subject == "اكتمل الاستيراد: Podcast feed"
    )


def test_a_verified_account_is_welcomed_once(seeded: DB) -> None:
    db = seeded
    with db.session() as session:
        user = users.register(
            session,
            users.NewUser("newbie", "newbie@example.test", None, first_name="Noor"),
            origin=audit.Origin(),
        )
        user_id = user.id
        token = users.issue_link_token(session, user, "verify_email", Keyring("secret"))
    make_user(db, "someone")
    process(db)
    assert notifications(db) == []  # registered, not yet verified: no welcome
    with db.session() as session:
        users.verify_email(session, token, Keyring("secret"), origin=audit.Origin())
    process(db)
    welcome = notifications(db, channel="in_app")
    assert [(n.recipient_id, n.category, n.subject) for n in welcome] == [
        (user_id, "user.welcome", "Welcome, Noor")
    ]
    email = notifications(db, channel="email")
    assert [n.recipient_id for n in email] == [user_id]


def test_report_ready_notifies_the_listed_recipients(seeded: DB) -> None:
    db = seeded
    manager = make_user(db, "manager")
    make_user(db, "other")
    with db.session() as session:
        outbox.record_event(
            session,
            "report.ready",
            "report",
            "weekly",
            {
                "name": "Weekly views",
                "url": "https://example.test/r/1.pdf",
                "recipients": [str(manager), "not-a-uuid", str(new_id())],
            },
            at=NOW,
        )
    summary = process(db)
    assert recipients(db) == {manager}
    note = notifications(db, recipient_id=manager, channel="email")[0]
    assert note.subject == "Report ready: Weekly views" and "https://example.test/r/1.pdf" in note.content
    assert summary.not_notified["no such user"] == 1  # the unknown id, reported, not raised


def test_alert_fired_goes_to_admins_by_default_critical_through_quiet_hours(seeded: DB) -> None:
    db = seeded
    admin = make_user(db, "admin1", roles=("admin",))
    ops = make_user(db, "ops", roles=("analyst",))
    make_user(db, "viewer1")
    with db.session() as session:
        # The admin is in quiet hours at NOW (12:00 UTC) and turned alert emails off: critical wins.
        session.add(
            NotificationPreference(
                user_id=admin,
                notification_type="*",
                channel="email",
                is_enabled=False,
                quiet_hours_start=time(11),
                quiet_hours_end=time(13),
            )
        )
        outbox.record_event(
            session,
            "alert.fired",
            "alert",
            "views-drop",
            {"name": "Views dropped", "message": "-40% in an hour"},
            at=NOW,
        )
        outbox.record_event(
            session,
            "alert.fired",
            "alert",
            "etl",
            {"name": "ETL late", "message": "2 h", "roles": ["analyst"]},
            at=NOW,
        )
    process(db)
    first = notifications(db, recipient_id=admin, channel="email")
    assert [(n.subject, n.critical, n.notification_type) for n in first] == [
        ("Alert: Views dropped", True, "error")
    ]
    with db.session() as session:
        log = session.scalar(sa.select(DeliveryLog).where(DeliveryLog.notification_id == first[0].id))
        assert log.next_retry == NOW and log.digest_key is None  # not delayed by quiet hours
    assert [n.subject for n in notifications(db, recipient_id=ops, channel="in_app")] == ["Alert: ETL late"]


def test_a_failing_event_is_recorded_and_the_others_go_on(seeded: DB) -> None:
    db = seeded
    manager = make_user(db, "manager")
    with db.session() as session:
        for row in session.scalars(
            sa.select(NotificationTemplate).where(NotificationTemplate.name == "report.ready")
        ):
            row.content_template = "{{ report.name }} {{ report.missing_field.deeper }}"
        outbox.record_event(
            session, "report.ready", "report", "r1", {"name": "R1", "recipients": [str(manager)]}
        )
        outbox.record_event(
            session,
            "alert.fired",
            "alert",
            "a1",
            {"name": "A1", "message": "m", "recipients": [str(manager)]},
        )
    summary = process(db)
    assert (summary.processed, summary.failed) == (1, 1)
    assert summary.errors[0]["event_type"] == "report.ready" and "missing_field" in summary.errors[0]["error"]
    with db.session() as session:
        rows = {e.event_type: e for e in session.scalars(sa.select(NotificationEvent))}
    assert rows["report.ready"].status == "failed" and "TemplateError" in rows["report.ready"].error
    assert rows["alert.fired"].status == "processed"
    assert {n.category for n in notifications(db)} == {"alert.fired"}  # the failed event left nothing behind

    with db.session() as session:  # fixed: a run over the range retries the failed event only
        for row in session.scalars(
            sa.select(NotificationTemplate).where(NotificationTemplate.name == "report.ready")
        ):
            row.content_template = "{{ report.name }}"
    retry = process(db)
    assert (retry.processed, retry.skipped) == (1, 1)
    assert {n.category for n in notifications(db)} == {"alert.fired", "report.ready"}


def test_without_templates_recipients_are_reported_not_notified(db: DB) -> None:
    manager = make_user(db, "manager")
    with db.session() as session:
        outbox.record_event(
            session, "report.ready", "report", "r1", {"name": "R1", "recipients": [str(manager)]}
        )
    summary = process(db)
    assert summary.processed == 1 and summary.notifications == 0
    assert summary.not_notified == {
        "no active in_app template named 'report.ready'": 1,
        "no active email template named 'report.ready'": 1,
    }


def test_unmapped_events_are_not_read_and_the_cursor_bounds_work(seeded: DB) -> None:
    db = seeded
    manager = make_user(db, "manager")
    with db.session() as session:
        outbox.record_event(session, "content.created", "content", "x", {})
        first = outbox.record_event(
            session, "report.ready", "report", "r1", {"name": "R1", "recipients": [str(manager)]}
        )
        second = outbox.record_event(
            session, "report.ready", "report", "r2", {"name": "R2", "recipients": [str(manager)]}
        )
        session.flush()
        seqs = (first.seq, second.seq)
    with db.session() as session:
        assert [e.seq for e in rules.pending_events(session, after=0)] == list(seqs)
    summary = rules.process_events(db.session, after=0, upto=seqs[0], now=NOW)
    assert (summary.events, summary.last_seq) == (1, seqs[0])
    with db.session() as session:
        assert rules.last_handled_seq(session) == seqs[0]
    assert [n.subject for n in notifications(db, channel="in_app")] == ["Report ready: R1"]
