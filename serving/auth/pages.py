"""The one HTML page of the account flows: the page the emailed verification link opens.

Opening the link (`GET /api/v1/auth/verify-email?token=...`) changes nothing: mail scanners and link
previews fetch links before the person does, so the page only shows a button whose form POSTs the
token (`POST /api/v1/auth/verify-email/form`); that POST verifies the address. API clients POST the
token as JSON to `/api/v1/auth/verify-email`. The page carries a fresh CSP nonce, no referrer (the
token is in its address) and is never cached."""

from __future__ import annotations

import secrets
from typing import Literal

from jinja2 import Environment, PackageLoader, select_autoescape
from litestar import Response
from litestar.enums import MediaType

VERIFY_FORM_PATH = "/api/v1/auth/verify-email/form"

_templates = Environment(
    loader=PackageLoader("serving.auth", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def verify_email_page(
    state: Literal["confirm", "done", "invalid"], *, token: str = "", detail: str = "", status_code: int = 200
) -> Response[str]:
    nonce = secrets.token_urlsafe(16)
    html = _templates.get_template("verify_email.html").render(
        state=state, token=token, detail=detail, action=VERIFY_FORM_PATH, nonce=nonce
    )
    headers = {
        "Content-Security-Policy": f"default-src 'none'; style-src 'nonce-{nonce}'; img-src data:; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "X-Robots-Tag": "noindex",
    }
    return Response(html, status_code=status_code, media_type=MediaType.HTML, headers=headers)
