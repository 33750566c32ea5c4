"""Account emails through the API: in the account's language, editable through the templates API like
every other template, and an answer that says so when the mail could not be handed over."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from serving.app import create_app
from tests.conftest import free_port
from tests.serving.auth.conftest import smtp_settings
from tests.serving.conftest import bearer, link_token, mails, plain

API = "/api/v1"
PASSWORD = "amber-orchard-falcon-42"


async def test_an_arabic_registrant_gets_arabic_mail_right_to_left(
    anonymous: AsyncTestClient, data_dir
) -> None:
    body = {"username": "layla", "email": "layla@example.test", "password": PASSWORD, "locale": "ar-SA"}
    assert (await anonymous.post(f"{API}/auth/register", json=body)).status_code == 202
    [verification] = mails(data_dir / "mail")
    assert verification["Subject"] == "تأكيد بريدك الإلكتروني"
    html = verification.get_body(preferencelist=("html",)).get_content()
    assert 'dir="rtl"' in html and 'lang="ar"' in html and "/api/v1/auth/verify-email?token=" in html

    token = link_token(verification)
    assert (await anonymous.post(f"{API}/auth/verify-email", json={"token": token})).status_code == 200
    assert (
        await anonymous.post(f"{API}/auth/password-reset", json={"email": body["email"]})
    ).status_code == 202
    reset = mails(data_dir / "mail")[-1]
    assert reset["Subject"] == "إعادة تعيين كلمة المرور"  # the account's language, from its profile
    assert "/api/v1/auth/password-reset/confirm?token=" in plain(reset)


async def test_an_edited_account_template_is_what_registrants_receive(
    anonymous: AsyncTestClient, new_user, data_dir
) -> None:
    _, token = new_user("template-editor", ["editor"])
    saved = await anonymous.post(
        f"{API}/notifications/templates",
        headers=bearer(token),
        json={
            "name": "account.verify_email",
            "template_type": "email",
            "language": "en",
            "subject_template": "Welcome aboard: one step left",
            "content_template": "Press the button on this page to activate your account:\n\n{{ link }}",
            "template_data": {"sample": {"link": "https://example.test/?token=x"}},
        },
    )
    assert saved.status_code == 201, saved.text

    body = {"username": "edited", "email": "edited@example.test", "password": PASSWORD}
    assert (await anonymous.post(f"{API}/auth/register", json=body)).status_code == 202
    [verification] = mails(data_dir / "mail")
    assert verification["Subject"] == "Welcome aboard: one step left"
    token = link_token(verification)
    assert (await anonymous.post(f"{API}/auth/verify-email", json={"token": token})).status_code == 200


async def test_mail_that_cannot_be_handed_over_is_a_503_and_the_link_is_not_logged(
    migrated_url: str, data_dir: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    port = free_port()  # nothing listens there
    settings = smtp_settings(data_dir, migrated_url, port)
    caplog.set_level(logging.DEBUG)
    async with AsyncTestClient(app=create_app(settings)) as client:
        res = await client.post(
            f"{API}/auth/register",
            json={"username": "no-mail", "email": "no-mail@example.test", "password": PASSWORD},
        )
    assert res.status_code == 503, res.text
    logged = caplog.text + capfd.readouterr().err  # the app's logging config writes to stderr
    assert "unreachable" in logged  # the operator reads why
    assert "token=" not in logged
