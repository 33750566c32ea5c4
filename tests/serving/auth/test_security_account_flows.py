"""Attacks on the account flows (security issue, findings 9, 16 and 17), through the HTTP API on SQLite
and PostgreSQL: registration and reset floods, attacker-chosen text in account mail, mail scanners
that follow the verification link, reset links that outlive a password change, and unthrottled
current-password checks."""

from __future__ import annotations

import re

import sqlalchemy as sa
from litestar.testing import AsyncTestClient

from domain.schema import User
from tests.serving.conftest import PASSWORD, bearer, db_scalar, link_token, login, mails, plain

API = "/api/v1/auth"
NEW_PASSWORD = "quiet-lantern-meadow-77"
SIGNUP_PER_IP = 10  # registrations one address may try per hour (serving.auth.throttle)
RESET_PER_TARGET = 3  # reset mails one address may be sent per hour
SPAM = "URGENT: your account is locked, call +1-555-0100 or visit https://evil.example/claim"


def counting_hashes(client: AsyncTestClient) -> list[str]:
    """Record every password hash the app computes (the real hashing still runs)."""
    hashing = client.app.state.auth.hashing
    calls: list[str] = []
    real = hashing._hash

    def observed(password: str) -> str:
        calls.append(password)
        return real(password)

    hashing._hash = observed
    return calls


def assert_429(res) -> None:
    assert res.status_code == 429, res.text
    assert res.headers["content-type"].startswith("application/problem+json")
    assert int(res.headers["retry-after"]) > 0


# --- 9: registration and reset floods, attacker text in mail -----------------------------------------


async def test_a_registration_flood_from_one_address_is_refused_before_hashing(anonymous) -> None:
    hashes = counting_hashes(anonymous)
    for i in range(SIGNUP_PER_IP):
        body = {"username": f"bot-{i}", "email": f"bot-{i}@example.test", "password": PASSWORD}
        assert (await anonymous.post(f"{API}/register", json=body)).status_code == 202
    assert len(hashes) == SIGNUP_PER_IP

    flood = await anonymous.post(
        f"{API}/register", json={"username": "bot-x", "email": "bot-x@example.test", "password": PASSWORD}
    )
    assert_429(flood)
    assert len(hashes) == SIGNUP_PER_IP  # refused before the argon2 queue that logins share
    assert db_scalar(
        anonymous.app.state.settings.database_url, sa.select(sa.func.count()).select_from(User)
    ) == (SIGNUP_PER_IP)


async def test_reset_mail_to_one_address_is_limited_whether_or_not_it_has_an_account(
    anonymous, new_user, password_hash, data_dir
) -> None:
    new_user("target", ["viewer"], password_hash=password_hash)
    for address in ("target@example.test", "ghost@example.test"):
        for _ in range(RESET_PER_TARGET):
            res = await anonymous.post(f"{API}/password-reset", json={"email": address})
            assert res.status_code == 202
        assert_429(await anonymous.post(f"{API}/password-reset", json={"email": address.upper()}))
    assert len(mails(data_dir / "mail")) == RESET_PER_TARGET  # the victim's inbox is not a mail cannon
    other = await anonymous.post(f"{API}/password-reset", json={"email": "someone-else@example.test"})
    assert other.status_code == 202  # the limit is per address (the IP has room left)


async def test_names_chosen_by_the_registrant_stay_out_of_account_mail(anonymous, data_dir) -> None:
    body = {
        "username": "spammer",
        "email": "victim-inbox@example.test",
        "password": PASSWORD,
        "first_name": SPAM,
        "last_name": SPAM,
    }
    assert (await anonymous.post(f"{API}/register", json=body)).status_code == 202
    [verification] = mails(data_dir / "mail")
    html = verification.get_body(preferencelist=("html",)).get_content()
    assert "evil.example" not in plain(verification) and "evil.example" not in html
    assert "555-0100" not in plain(verification) + html and "spammer" not in plain(verification)

    await anonymous.post(f"{API}/verify-email", json={"token": link_token(verification)})
    assert (await anonymous.post(f"{API}/password-reset", json={"email": body["email"]})).status_code == 202
    reset = mails(data_dir / "mail")[-1]
    text = plain(reset) + reset.get_body(preferencelist=("html",)).get_content()
    assert "Reset your password" in reset["Subject"] and "evil.example" not in text and SPAM not in text


# --- 16: mail scanners and old reset links ------------------------------------------------------------


async def test_a_mail_scanner_following_the_link_does_not_verify_the_account(anonymous, data_dir) -> None:
    body = {"username": "scanned", "email": "scanned@example.test", "password": PASSWORD}
    assert (await anonymous.post(f"{API}/register", json=body)).status_code == 202
    [verification] = mails(data_dir / "mail")
    link = re.search(r"https?://\S+/api/v1/auth/verify-email\?token=\S+", plain(verification)).group(0)
    path = link.split("://", 1)[1].split("/", 1)[1]

    for _ in range(2):  # the scanner fetches the link (and often again)
        page = await anonymous.get(f"/{path}")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert (
            page.headers["referrer-policy"] == "no-referrer" and "no-store" in page.headers["cache-control"]
        )
    unverified = await anonymous.post(f"{API}/login", json={"login": "scanned", "password": PASSWORD})
    assert unverified.status_code == 403  # a GET alone consumed nothing

    # The person presses the page's button: its form POSTs the token.
    form = re.search(r'<form method="post" action="([^"]+)">', page.text).group(1)
    hidden = re.search(r'name="token" value="([^"]+)"', page.text).group(1)
    done = await anonymous.post(form, data={"token": hidden})
    assert done.status_code == 200 and done.headers["content-type"].startswith("text/html"), done.text
    await login(anonymous, "scanned")
    assert (await anonymous.post(form, data={"token": hidden})).status_code == 422  # single use


async def test_a_password_change_voids_the_reset_links_already_sent(
    anonymous, new_user, password_hash, data_dir
) -> None:
    user_id, token = new_user("careful", ["viewer"], password_hash=password_hash)
    # The attacker had the victim ask for a reset (or reads the mailbox later): a link is out there.
    assert (
        await anonymous.post(f"{API}/password-reset", json={"email": "careful@example.test"})
    ).status_code == 202
    stale = link_token(mails(data_dir / "mail")[-1])
    changed = await anonymous.post(
        f"/api/v1/users/{user_id}/password",
        headers=bearer(token),
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert changed.status_code == 200, changed.text

    used = await anonymous.post(
        f"{API}/password-reset/confirm", json={"token": stale, "new_password": "attacker-owns-this-9"}
    )
    assert used.status_code == 422, used.text
    await login(anonymous, "careful", NEW_PASSWORD)


async def test_a_completed_reset_voids_the_other_reset_links(
    anonymous, new_user, password_hash, data_dir
) -> None:
    new_user("twice", ["viewer"], password_hash=password_hash)
    for _ in range(2):
        await anonymous.post(f"{API}/password-reset", json={"email": "twice@example.test"})
    first, second = (link_token(m) for m in mails(data_dir / "mail")[-2:])
    done = await anonymous.post(
        f"{API}/password-reset/confirm", json={"token": second, "new_password": NEW_PASSWORD}
    )
    assert done.status_code == 200, done.text
    late = await anonymous.post(
        f"{API}/password-reset/confirm", json={"token": first, "new_password": "attacker-owns-this-9"}
    )
    assert late.status_code == 422
    await login(anonymous, "twice", NEW_PASSWORD)


# --- 17: current-password checks and the per-account bucket --------------------------------------------


async def test_guessing_the_current_password_with_a_stolen_session_is_throttled(
    anonymous, new_user, password_hash
) -> None:
    user_id, stolen = new_user("robbed", ["viewer"], password_hash=password_hash)
    for route, field in (("password", "current_password"), ("mfa/enable", "password")):
        answers = []
        for i in range(3):
            body = {field: f"guess-{i}-wrong-pw"}
            if field == "current_password":
                body["new_password"] = NEW_PASSWORD
            res = await anonymous.post(f"/api/v1/users/{user_id}/{route}", headers=bearer(stolen), json=body)
            answers.append(res.status_code)
        assert 429 in answers or answers == [422] * 3, answers
        body = {field: PASSWORD}
        if field == "current_password":
            body["new_password"] = NEW_PASSWORD
        right = await anonymous.post(f"/api/v1/users/{user_id}/{route}", headers=bearer(stolen), json=body)
        assert_429(right)  # even the right password waits: the guesses cost the attacker time
    # The same bucket as the login's: guesses through the API also delay password logins.
    assert_429(await anonymous.post(f"{API}/login", json={"login": "robbed", "password": PASSWORD}))


async def test_failures_by_username_and_by_email_count_together(anonymous, new_user, password_hash) -> None:
    new_user("twofaced", ["viewer"], password_hash=password_hash)
    for name in ("twofaced", "TwoFaced@Example.test", "twofaced"):
        res = await anonymous.post(f"{API}/login", json={"login": name, "password": "not-the-password-1"})
        assert res.status_code == 401
    # Three failures on one account (under the IP's limit of five): the account waits.
    assert_429(
        await anonymous.post(f"{API}/login", json={"login": "twofaced@example.test", "password": PASSWORD})
    )
    assert_429(await anonymous.post(f"{API}/login", json={"login": "twofaced", "password": PASSWORD}))
