"""The account emails, in Arabic and English (plain text and HTML)."""

from __future__ import annotations

from html import escape


def _html(paragraphs: list[str], link: str | None = None, label: str = "") -> str:
    body = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    if link:
        body += f'<p><a href="{escape(link, quote=True)}">{escape(label)}</a></p>'
    return f'<html><body><div dir="rtl" lang="ar">{body}</div></body></html>'


def verification(name: str, link: str) -> tuple[str, str, str]:
    subject = "تأكيد بريدك الإلكتروني | Confirm your email"
    lines = [
        f"مرحبًا {name}، اضغط الرابط لتفعيل حسابك (صالح 24 ساعة).",
        f"Hello {name}, open the link to activate your account (valid for 24 hours).",
    ]
    return subject, "\n\n".join([*lines, link]), _html(lines, link, "تفعيل الحساب / Activate")


def password_reset(name: str, link: str) -> tuple[str, str, str]:
    subject = "إعادة تعيين كلمة المرور | Reset your password"
    lines = [
        f"مرحبًا {name}، اضغط الرابط لاختيار كلمة مرور جديدة (صالح ساعة واحدة). تجاهل الرسالة إن لم تطلب ذلك.",
        f"Hello {name}, open the link to choose a new password (valid for one hour). Ignore this if you did not ask.",
    ]
    return subject, "\n\n".join([*lines, link]), _html(lines, link, "كلمة مرور جديدة / New password")
