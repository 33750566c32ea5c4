"""The account emails as notification templates (domain.notifications.account): seeded once per
language, rendered in the account's language (RTL for Arabic), edited versions used, and the
built-in text sent when an edited version cannot carry the link."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

from domain.notifications import account
from domain.schema import NotificationTemplate
from resources.database import OperationalDatabase as DB

LINK = "https://media.example/api/v1/auth/verify-email?token=SECRET-TOKEN-123"


def _edit(db: DB, name: str, language: str, subject: str, text: str, html: str | None = None) -> None:
    """A new active version, as the templates API saves one."""
    with db.session() as session:
        session.execute(
            sa.update(NotificationTemplate)
            .where(NotificationTemplate.name == name, NotificationTemplate.language == language)
            .values(is_active=False)
        )
        session.add(
            NotificationTemplate(
                name=name,
                template_type="email",
                language=language,
                subject_template=subject,
                content_template=text,
                html_template=html,
                version=2,
                is_active=True,
            )
        )


def _compose(db: DB, name: str, locale: str, default: str = "en"):
    with db.session() as session:
        return account.compose(session, name, link=LINK, locale=locale, default_language=default)


def test_seeding_adds_each_language_once_and_keeps_edits(db: DB) -> None:
    with db.session() as session:
        assert account.seed_templates(session) == 4  # two emails, Arabic and English
    _edit(db, account.VERIFY_EMAIL, "en", "Edited", "{{ link }}")
    with db.session() as session:
        assert account.seed_templates(session) == 0
        rows = session.execute(
            sa.select(
                NotificationTemplate.name, NotificationTemplate.language, NotificationTemplate.template_type
            )
            .where(NotificationTemplate.name.like("account.%"), NotificationTemplate.is_active.is_(True))
            .order_by(NotificationTemplate.name, NotificationTemplate.language)
        ).all()
    assert [tuple(r) for r in rows] == [
        (account.PASSWORD_RESET, "ar", "email"),
        (account.PASSWORD_RESET, "en", "email"),
        (account.VERIFY_EMAIL, "ar", "email"),
        (account.VERIFY_EMAIL, "en", "email"),
    ]
    assert _compose(db, account.VERIFY_EMAIL, "en").subject == "Edited"


def test_each_language_gets_its_own_text_and_arabic_reads_right_to_left(db: DB) -> None:
    with db.session() as session:
        account.seed_templates(session)
    arabic = _compose(db, account.VERIFY_EMAIL, "ar-SA")
    english = _compose(db, account.PASSWORD_RESET, "fr", default="en")

    assert (arabic.subject, arabic.language, arabic.direction) == ("تأكيد بريدك الإلكتروني", "ar", "rtl")
    assert LINK in arabic.text and 'dir="rtl"' in arabic.html and 'lang="ar"' in arabic.html
    assert f'href="{LINK}"' in arabic.html
    assert (english.subject, english.language, english.direction) == ("Reset your password", "en", "ltr")
    assert english.text.endswith(LINK) and "one hour" in english.text


def test_without_stored_templates_the_built_in_ones_are_sent(db: DB) -> None:
    rendered = _compose(db, account.PASSWORD_RESET, "ar")
    assert rendered.subject == "إعادة تعيين كلمة المرور" and LINK in rendered.text


@pytest.mark.parametrize(
    "text",
    ["Hello {{ user.first_name }}: {{ link }}", "Welcome! (the link was deleted)", "{% if %}"],
    ids=["data-it-does-not-get", "no-link", "syntax-error"],
)
def test_an_edited_version_that_cannot_carry_the_link_falls_back_to_the_built_in_one(
    db: DB, text: str, caplog: pytest.LogCaptureFixture
) -> None:
    with db.session() as session:
        account.seed_templates(session)
    _edit(db, account.VERIFY_EMAIL, "en", "Edited subject", text)
    caplog.set_level(logging.WARNING, logger="domain.notifications.account")

    rendered = _compose(db, account.VERIFY_EMAIL, "en")

    assert rendered.subject == "Confirm your email" and LINK in rendered.text
    assert account.VERIFY_EMAIL in caplog.text
    assert "SECRET-TOKEN" not in caplog.text  # the link is a secret: never logged
