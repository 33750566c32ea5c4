"""Creating notifications (domain.notifications.service) and when they may go out
(domain.notifications.schedule), on a controlled clock, on both operational databases."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from domain.db import sync_engine
from domain.errors import InvalidValue
from domain.notifications import schedule
from domain.notifications.schedule import QuietHours, ScheduleError
from domain.notifications.service import NO_DESTINATION, Draft, send
from domain.schema import DeliveryLog, Notification, NotificationPreference, NotificationTemplate, User

RIYADH = "Asia/Riyadh"  # UTC+3 all year
TUESDAY = datetime(2026, 3, 10, tzinfo=UTC)  # a Tuesday


@pytest.fixture
def sessions(migrated_url: str) -> Iterator[sessionmaker[Session]]:
    engine = sync_engine(migrated_url)
    yield sessionmaker(engine, expire_on_commit=False)
    engine.dispose()


def _user(
    factory: sessionmaker[Session], *, email: str | None = None, locale: str | None = None
) -> uuid.UUID:
    name = f"u{uuid.uuid4().hex[:10]}"
    with factory.begin() as session:
        user = User(
            username=name,
            email=f"{name}@example.test" if email is None else email,
            is_active=True,
            preferences={"locale": locale} if locale else {},
        )
        session.add(user)
        session.flush()
        return user.id


def _prefer(factory: sessionmaker[Session], user_id: uuid.UUID, channel: str, **fields: object) -> None:
    with factory.begin() as session:
        session.add(
            NotificationPreference(
                user_id=user_id,
                notification_type=fields.pop("notification_type", "*"),
                channel=channel,
                **fields,
            )
        )


def _send(factory: sessionmaker[Session], draft: Draft, *recipients: uuid.UUID, now: datetime):
    with factory.begin() as session:
        outcome = send(session, draft, list(recipients), now=now)
        return outcome


def _logs(factory: sessionmaker[Session], notification_id: uuid.UUID) -> list[DeliveryLog]:
    with factory() as session:
        return list(
            session.scalars(sa.select(DeliveryLog).where(DeliveryLog.notification_id == notification_id))
        )


def _email(**fields: object) -> Draft:
    return Draft(category="content.published", channels=("email",), subject="New", content="Body", **fields)


# --- preferences -----------------------------------------------------------------------------------


def test_a_channel_turned_off_is_skipped_with_its_reason_and_others_still_go(
    sessions: sessionmaker[Session],
) -> None:
    user = _user(sessions)
    _prefer(sessions, user, "email", notification_type="content.published", is_enabled=False)
    draft = Draft(category="content.published", channels=("email", "in_app"), subject="s", content="c")

    outcome = _send(sessions, draft, user, now=TUESDAY)

    assert [n.channel for n in outcome.notifications] == ["in_app"]
    assert outcome.skipped == [
        {"recipient_id": str(user), "channel": "email", "reason": "turned off in the recipient's preferences"}
    ]


def test_the_any_type_preference_applies_unless_a_specific_one_exists(
    sessions: sessionmaker[Session],
) -> None:
    user = _user(sessions)
    _prefer(sessions, user, "email", is_enabled=False)  # "*": every type off by email...
    _prefer(sessions, user, "email", notification_type="security.alert", is_enabled=True)  # ...but this one

    off = _send(sessions, _email(), user, now=TUESDAY)
    on = _send(
        sessions, Draft(category="security.alert", channels=("email",), subject="s"), user, now=TUESDAY
    )

    assert off.notifications == [] and off.skipped[0]["channel"] == "email"
    assert len(on.notifications) == 1 and on.skipped == []


def test_critical_goes_out_even_when_turned_off(sessions: sessionmaker[Session]) -> None:
    user = _user(sessions)
    _prefer(sessions, user, "email", is_enabled=False)

    outcome = _send(sessions, _email(critical=True), user, now=TUESDAY)

    assert len(outcome.notifications) == 1 and outcome.skipped == []


def test_unknown_recipients_are_skipped_not_fatal(sessions: sessionmaker[Session]) -> None:
    user, ghost = _user(sessions), uuid.uuid4()

    outcome = _send(sessions, _email(), user, ghost, now=TUESDAY)

    assert len(outcome.notifications) == 1
    assert outcome.skipped == [{"recipient_id": str(ghost), "channel": "*", "reason": "no such user"}]


def test_a_draft_without_a_message_or_with_an_unknown_channel_is_refused() -> None:
    with pytest.raises(InvalidValue) as no_message:
        Draft(category="x", channels=("email",))
    with pytest.raises(InvalidValue) as bad_channel:
        Draft(category="x", channels=("fax",), subject="s")

    assert (no_message.value.field, bad_channel.value.field) == ("template", "channels")


# --- quiet hours -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "due"),
    [
        # 23:30 in Riyadh, inside 22:00-07:00: held until 07:00 local the next morning (04:00 UTC).
        (datetime(2026, 3, 10, 20, 30, tzinfo=UTC), datetime(2026, 3, 11, 4, 0, tzinfo=UTC)),
        # 05:00 in Riyadh, after midnight and still inside: held until 07:00 local the same day.
        (datetime(2026, 3, 11, 2, 0, tzinfo=UTC), datetime(2026, 3, 11, 4, 0, tzinfo=UTC)),
        # 22:00 sharp is inside; 07:00 sharp is outside.
        (datetime(2026, 3, 10, 19, 0, tzinfo=UTC), datetime(2026, 3, 11, 4, 0, tzinfo=UTC)),
        (datetime(2026, 3, 11, 4, 0, tzinfo=UTC), datetime(2026, 3, 11, 4, 0, tzinfo=UTC)),
        # 21:59 in Riyadh: not quiet yet, goes at once.
        (datetime(2026, 3, 10, 18, 59, tzinfo=UTC), datetime(2026, 3, 10, 18, 59, tzinfo=UTC)),
    ],
)
def test_quiet_hours_wrapping_midnight_in_riyadh_delay_the_delivery(
    sessions: sessionmaker[Session], now: datetime, due: datetime
) -> None:
    user = _user(sessions)
    _prefer(
        sessions, user, "email", quiet_hours_start=time(22, 0), quiet_hours_end=time(7, 0), timezone=RIYADH
    )

    outcome = _send(sessions, _email(), user, now=now)

    (notification,) = outcome.notifications
    (log,) = _logs(sessions, notification.id)
    assert (notification.status, log.status, log.next_retry) == ("pending", "queued", due)


def test_critical_bypasses_quiet_hours_and_digests(sessions: sessionmaker[Session]) -> None:
    user = _user(sessions)
    _prefer(
        sessions,
        user,
        "email",
        frequency="daily",
        quiet_hours_start=time(22, 0),
        quiet_hours_end=time(7, 0),
        timezone=RIYADH,
    )
    now = datetime(2026, 3, 10, 20, 30, tzinfo=UTC)  # 23:30 in Riyadh

    (notification,) = _send(sessions, _email(critical=True), user, now=now).notifications

    (log,) = _logs(sessions, notification.id)
    assert (log.next_retry, log.digest_key) == (now, None)


def test_quiet_hours_do_not_hold_in_app_notifications(sessions: sessionmaker[Session]) -> None:
    user = _user(sessions)
    _prefer(
        sessions, user, "in_app", quiet_hours_start=time(22, 0), quiet_hours_end=time(7, 0), timezone=RIYADH
    )
    now = datetime(2026, 3, 10, 20, 30, tzinfo=UTC)

    (notification,) = _send(
        sessions, Draft(category="c", channels=("in_app",), subject="s"), user, now=now
    ).notifications

    assert (notification.status, notification.sent_at) == ("sent", now)


def test_quiet_hours_that_cannot_hold_are_refused_naming_the_field() -> None:
    with pytest.raises(ScheduleError) as empty:
        QuietHours(time(22, 0), time(22, 0), RIYADH)
    with pytest.raises(ScheduleError) as hour:
        schedule.parse_time("25:00", "quiet_hours_start")
    with pytest.raises(ScheduleError) as zone:
        QuietHours(time(22, 0), time(7, 0), "Mars/Olympus_Mons")

    assert (empty.value.field, hour.value.field, zone.value.field) == (
        "quiet_hours_end",
        "quiet_hours_start",
        "timezone",
    )
    assert empty.value.status == 422


# --- digests ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frequency", "now", "boundary"),
    [
        ("hourly", datetime(2026, 3, 10, 10, 15, tzinfo=UTC), datetime(2026, 3, 10, 11, 0, tzinfo=UTC)),
        (
            "hourly",
            datetime(2026, 3, 10, 10, 0, tzinfo=UTC),
            datetime(2026, 3, 10, 11, 0, tzinfo=UTC),
        ),  # strictly after
        # daily: 08:00 in Riyadh = 05:00 UTC
        ("daily", datetime(2026, 3, 10, 4, 59, tzinfo=UTC), datetime(2026, 3, 10, 5, 0, tzinfo=UTC)),
        ("daily", datetime(2026, 3, 10, 5, 0, tzinfo=UTC), datetime(2026, 3, 11, 5, 0, tzinfo=UTC)),
        (
            "daily",
            datetime(2026, 3, 10, 22, 0, tzinfo=UTC),
            datetime(2026, 3, 11, 5, 0, tzinfo=UTC),
        ),  # 01:00 local
        # weekly: Monday 08:00 in Riyadh
        ("weekly", TUESDAY, datetime(2026, 3, 16, 5, 0, tzinfo=UTC)),
        ("weekly", datetime(2026, 3, 16, 4, 0, tzinfo=UTC), datetime(2026, 3, 16, 5, 0, tzinfo=UTC)),
        ("weekly", datetime(2026, 3, 16, 5, 0, tzinfo=UTC), datetime(2026, 3, 23, 5, 0, tzinfo=UTC)),
    ],
)
def test_digest_deliveries_wait_for_the_next_boundary_in_the_users_zone(
    sessions: sessionmaker[Session], frequency: str, now: datetime, boundary: datetime
) -> None:
    user = _user(sessions)
    _prefer(sessions, user, "email", frequency=frequency, timezone=RIYADH)

    (notification,) = _send(sessions, _email(), user, now=now).notifications

    (log,) = _logs(sessions, notification.id)
    assert log.next_retry == boundary
    assert log.digest_key == f"{user}|email|{frequency}"


def test_a_digest_boundary_inside_quiet_hours_moves_to_their_end() -> None:
    quiet = QuietHours(time(7, 0), time(9, 30), RIYADH)
    due = schedule.due_at(
        datetime(2026, 3, 10, 1, 0, tzinfo=UTC), frequency="daily", quiet=quiet, timezone=RIYADH
    )
    assert due == datetime(2026, 3, 10, 6, 30, tzinfo=UTC)  # 09:30 local, not 08:00


def test_scheduled_at_is_a_floor_for_the_delivery(sessions: sessionmaker[Session]) -> None:
    user = _user(sessions)
    later = TUESDAY + timedelta(days=2, hours=3)

    (notification,) = _send(sessions, _email(scheduled_at=later), user, now=TUESDAY).notifications

    (log,) = _logs(sessions, notification.id)
    assert (notification.scheduled_at, log.next_retry) == (later, later)


# --- unreachable recipients ------------------------------------------------------------------------


def test_a_recipient_without_an_email_address_gets_a_failed_delivery_with_the_reason(
    sessions: sessionmaker[Session],
) -> None:
    nobody = _user(sessions, email="")
    draft = Draft(category="content.published", channels=("email", "sms"), subject="s", content="c")

    outcome = _send(sessions, draft, nobody, now=TUESDAY)

    assert sorted((n.channel, n.status) for n in outcome.notifications) == [
        ("email", "failed"),
        ("sms", "failed"),
    ]
    reasons = {}
    for n in outcome.notifications:
        (log,) = _logs(sessions, n.id)
        assert log.status == "failed"
        reasons[n.channel] = log.error_message
    assert reasons == {"email": NO_DESTINATION["email"], "sms": NO_DESTINATION["sms"]}


# --- templates -------------------------------------------------------------------------------------


def _templates(factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        for language, subject in (("ar", "حلقة جديدة: {{ title }}"), ("en", "New episode: {{ title }}")):
            session.add(
                NotificationTemplate(
                    name="episode.published",
                    template_type="in_app",
                    language=language,
                    subject_template=subject,
                    content_template="{{ user.username }}",
                )
            )


@pytest.mark.parametrize(
    ("locale", "language", "subject", "direction"),
    [
        ("ar-SA", "ar", "حلقة جديدة: فنجان", "rtl"),  # ar-SA -> ar
        ("ar", "ar", "حلقة جديدة: فنجان", "rtl"),
        ("fr-FR", "en", "New episode: فنجان", "ltr"),  # -> the default language
        (None, "en", "New episode: فنجان", "ltr"),
    ],
)
def test_templates_fall_back_from_the_regional_locale_to_the_language_then_the_default(
    sessions: sessionmaker[Session], locale: str | None, language: str, subject: str, direction: str
) -> None:
    from domain.notifications.templates import text_direction

    _templates(sessions)
    user = _user(sessions, locale=locale)
    draft = Draft(category="episode.published", template="episode.published", data={"title": "فنجان"})

    (notification,) = _send(sessions, draft, user, now=TUESDAY).notifications

    assert (notification.language, notification.subject) == (language, subject)
    assert text_direction(notification.language) == direction
    with sessions() as session:
        stored = session.get(Notification, notification.id)
        assert stored.template_id is not None and stored.content.startswith("u")


def test_a_template_missing_for_the_channel_is_a_skip_with_the_reason(
    sessions: sessionmaker[Session],
) -> None:
    _templates(sessions)
    user = _user(sessions)
    draft = Draft(
        category="episode.published", channels=("email",), template="episode.published", data={"title": "x"}
    )

    outcome = _send(sessions, draft, user, now=TUESDAY)

    assert outcome.notifications == []
    assert outcome.skipped[0]["reason"] == "no active email template named 'episode.published'"
