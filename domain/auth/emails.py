"""The account emails, in Arabic and English (plain text and HTML).

They carry our fixed text and the link only: nothing a registrant typed (names, usernames) goes into
them, so an account flow cannot be used to mail chosen text to someone else's address."""

from __future__ import annotations

from html import escape


def _html(paragraphs: list[str], link: str | None = None, label: str = "") -> str:
    body = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    if link:
        body += f'<p><a href="{escape(link, quote=True)}">{escape(label)}</a></p>'
    return f'<html><body><div dir="rtl" lang="ar">{body}</div></body></html>'


def verification(link: str) -> tuple[str, str, str]:
    subject = "تأكيد بريدك الإلكتروني | Confirm your email"
    lines = [
        "مرحبًا، افتح الرابط ثم اضغط «تفعيل الحساب» لتفعيل حسابك (صالح 24 ساعة). تجاهل الرسالة إن لم تنشئ حسابًا.",
        "Hello, open the link and press “Activate” to activate your account (valid for 24 hours). "
        "Ignore this if you did not sign up.",
    ]
    return subject, "\n\n".join([*lines, link]), _html(lines, link, "تفعيل الحساب / Activate")


def password_reset(link: str) -> tuple[str, str, str]:
    subject = "إعادة تعيين كلمة المرور | Reset your password"
    lines = [
        "مرحبًا، اضغط الرابط لاختيار كلمة مرور جديدة (صالح ساعة واحدة). تجاهل الرسالة إن لم تطلب ذلك.",
        "Hello, open the link to choose a new password (valid for one hour). Ignore this if you did not ask.",
    ]
    return subject, "\n\n".join([*lines, link]), _html(lines, link, "كلمة مرور جديدة / New password")
