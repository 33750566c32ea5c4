"""The account emails (address verification, password reset) as notification templates.

They are email templates like the others (per language, RTL layout for Arabic, editable through the
templates API as new versions), named `account.verify_email` and `account.password_reset`. Their only
data is `link`: nothing a registrant typed (names, usernames) goes into them, so an account flow
cannot be used to mail chosen text to someone else's address. An edited version that fails to render,
or renders without the link, is not sent: the built-in text is (the person is waiting for the link),
and the problem is logged without the link, which carries a secret.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from domain.notifications import service
from domain.notifications.templates import Rendered, TemplateError, TemplateSource, pick, render

log = logging.getLogger(__name__)

VERIFY_EMAIL = "account.verify_email"
PASSWORD_RESET = "account.password_reset"
CHANNEL = "email"

# name -> language -> (subject, text, html)
ACCOUNT_TEMPLATES: dict[str, dict[str, tuple[str, str, str]]] = {
    VERIFY_EMAIL: {
        "en": (
            "Confirm your email",
            "Hello, open the link and press “Activate” to activate your account (valid for 24 hours). "
            "Ignore this if you did not sign up.\n\n{{ link }}",
            "<p>Hello, open the link and press “Activate” to activate your account (valid for 24 hours). "
            'Ignore this if you did not sign up.</p>\n<p><a href="{{ link }}">Activate</a></p>',
        ),
        "ar": (
            "تأكيد بريدك الإلكتروني",
            "مرحبًا، افتح الرابط ثم اضغط «تفعيل الحساب» لتفعيل حسابك (صالح 24 ساعة). "
            "تجاهل الرسالة إن لم تنشئ حسابًا.\n\n{{ link }}",
            "<p>مرحبًا، افتح الرابط ثم اضغط «تفعيل الحساب» لتفعيل حسابك (صالح 24 ساعة). "
            'تجاهل الرسالة إن لم تنشئ حسابًا.</p>\n<p><a href="{{ link }}">تفعيل الحساب</a></p>',
        ),
    },
    PASSWORD_RESET: {
        "en": (
            "Reset your password",
            "Hello, open the link to choose a new password (valid for one hour). "
            "Ignore this if you did not ask.\n\n{{ link }}",
            "<p>Hello, open the link to choose a new password (valid for one hour). "
            'Ignore this if you did not ask.</p>\n<p><a href="{{ link }}">New password</a></p>',
        ),
        "ar": (
            "إعادة تعيين كلمة المرور",
            "مرحبًا، اضغط الرابط لاختيار كلمة مرور جديدة (صالح ساعة واحدة). "
            "تجاهل الرسالة إن لم تطلب ذلك.\n\n{{ link }}",
            "<p>مرحبًا، اضغط الرابط لاختيار كلمة مرور جديدة (صالح ساعة واحدة). "
            'تجاهل الرسالة إن لم تطلب ذلك.</p>\n<p><a href="{{ link }}">كلمة مرور جديدة</a></p>',
        ),
    },
}


def seed_templates(session: Session) -> int:
    """Add version 1 of every account template (email, Arabic and English) that has no version yet;
    edited ones are left alone. Returns how many were added. Idempotent."""
    return service.add_missing_templates(
        session,
        (
            (name, CHANNEL, language, TemplateSource(*parts))
            for name, languages in ACCOUNT_TEMPLATES.items()
            for language, parts in languages.items()
        ),
        template_data={"sample": {"link": "https://example.test/link?token=sample"}, "push": {}},
    )


def _stored(session: Session, name: str) -> dict[str, TemplateSource]:
    return {
        language: TemplateSource(row.subject_template or "", row.content_template, row.html_template)
        for language, row in service.active_templates(session, name, CHANNEL).items()
    }


def _builtin(name: str) -> dict[str, TemplateSource]:
    return {language: TemplateSource(*parts) for language, parts in ACCOUNT_TEMPLATES[name].items()}


def compose(session: Session, name: str, *, link: str, locale: str, default_language: str) -> Rendered:
    """The account email `name` for `link`, in the language of `locale` (its fallback chain ending
    in `default_language`): the active stored version, or the built-in one when none is stored for
    the language or the stored one cannot carry the link."""
    data = {"link": link}
    found = pick(_stored(session, name), locale, default_language)
    if found is not None:
        language, source = found
        try:
            rendered = render(
                source, data, language=language, channel=CHANNEL, default_language=default_language
            )
        except TemplateError as exc:
            log.warning(
                "%s (%s): the stored template fails (%s); sending the built-in one", name, language, exc
            )
        else:
            if link in rendered.text:
                return rendered
            log.warning(
                "%s (%s): the stored template leaves out the link; sending the built-in one", name, language
            )
    language, source = pick(_builtin(name), locale, default_language) or ("en", _builtin(name)["en"])
    return render(source, data, language=language, channel=CHANNEL, default_language=default_language)
