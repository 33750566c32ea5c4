"""Per-purpose keys and a staged rotation of the platform secret, through the HTTP API.

Attack 1 (purpose confusion): with one secret serving every purpose, a value signed for one use
could be presented for another; each purpose now has its own derived key, so a token signed with the
link key, a media URL signed with the link key, a link signed with the media key and a dashboard CSRF
token signed with the link key are all refused.

Rotation: sign in, get links and signed media URLs, enrol TOTP and store a webhook secret under
secret A; restart with `THMNAYAH_SECRET_KEY=B` and `THMNAYAH_SECRET_KEY_PREVIOUS=A`: everything made
under A still works and new values carry B's key id; `thmnayah rotate-keys` re-encrypts what is stored;
restart with B alone: what A signed is refused, what B signed and everything stored still works.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import jwt
import pyotp
import sqlalchemy as sa
from litestar.testing import AsyncTestClient
from sqlalchemy.orm import Session

from domain.auth.keys import (
    ACCESS_TOKEN,
    DASHBOARD_CSRF,
    KID_LENGTH,
    LINK_TOKEN,
    MEDIA_URL,
    MFA_CHALLENGE,
    Keyring,
    sha256_hex,
)
from domain.db import sync_engine
from domain.media import urls
from domain.notifications import contacts
from domain.schema import MediaAsset, MediaVariant, NotificationContact, OneTimeToken, utcnow
from domain.settings import Settings
from resources.object_store import LocalObjectStore
from serving.app import create_app
from tests.serving.conftest import PASSWORD, bearer, link_token, login, mails, make_user

API = "/api/v1"
ROOT = Path(__file__).resolve().parents[3]
A = "rotation-secret-a-" + "a" * 32
B = "rotation-secret-b-" + "b" * 32
RUNG = "renditions/360p/stream.mp4"
DATA = b"\x00\x00\x00\x18ftypmp42 a small rendition" * 64
HOOK_SECRET = "whsec-rotation-0123456789"


@asynccontextmanager
async def serving(
    migrated_url: str, data_dir: Path, secret: str, previous: str = ""
) -> AsyncIterator[AsyncTestClient]:
    """The API as a (re)started process with these secrets."""
    settings = Settings(
        deployment="local",
        data_dir=data_dir,
        database_url=migrated_url,
        secret_key=secret,
        secret_key_previous=previous,
    )
    async with AsyncTestClient(app=create_app(settings)) as client:
        yield client


def kid_of_jwt(token: str) -> str:
    return jwt.get_unverified_header(token)["kid"]


def add_media(url: str, data_dir: Path) -> uuid.UUID:
    """A private media asset with one published rendition in the local object store."""
    media_id = uuid.uuid4()
    LocalObjectStore(root=str((data_dir / "objects").resolve())).put_bytes(f"media/{media_id}/{RUNG}", DATA)
    engine = sync_engine(url)
    with Session(engine) as session, session.begin():
        session.add(
            MediaAsset(
                id=media_id,
                content_type="video",
                file_size=len(DATA),
                is_private=True,
                s3_key=f"media/{media_id}/original",
                upload_status="completed",
            )
        )
        session.flush()
        session.add(
            MediaVariant(
                media_asset_id=media_id,
                variant_type="mp4",
                format="mp4",
                quality="360p",
                s3_key=f"media/{media_id}/{RUNG}",
                file_size=len(DATA),
            )
        )
    engine.dispose()
    return media_id


async def media_url(client: AsyncTestClient, token: str, media_id: uuid.UUID) -> str:
    listed = await client.get(f"{API}/media/{media_id}/variants", headers=bearer(token))
    assert listed.status_code == 200, listed.text
    [variant] = listed.json()["variants"]
    return variant["url"]


def url_kid(url: str) -> str:
    return url.split("/")[7][:KID_LENGTH]  # /api/v1/media/files/<media>/<expires>/<kid><hmac>/...


async def register(client: AsyncTestClient, data_dir: Path, username: str) -> str:
    """Register through the API; the token of the verification link mailed."""
    email = f"{username}@example.test"
    body = {"username": username, "email": email, "password": PASSWORD}
    assert (await client.post(f"{API}/auth/register", json=body)).status_code == 202
    [mail] = [m for m in mails(data_dir / "mail") if m["To"] == email]
    return link_token(mail)


async def verify(client: AsyncTestClient, token: str) -> int:
    return (await client.post(f"{API}/auth/verify-email", json={"token": token})).status_code


def totp_code(secret: str, after: int | None = None) -> tuple[str, int]:
    """A code the server accepts now for the earliest step after `after` (its window is one step
    either side): the previous step while the current one has 5 s left, so three codes in a row need
    no wait; else waits for the step to begin (less than a step)."""
    deadline = time.monotonic() + 75
    while True:
        now = time.time()
        current = int(now // 30)
        earliest = current - 1 if now % 30 < 25 else current
        step = earliest if after is None else max(after + 1, earliest)
        if step <= current + 1:
            return pyotp.TOTP(secret).at(step * 30), step
        assert time.monotonic() < deadline, "the clock did not reach the next TOTP step"
        time.sleep(30 - now % 30 + 0.1)


async def enrol_totp(client: AsyncTestClient, user_id: uuid.UUID, token: str) -> tuple[str, int]:
    headers = bearer(token)
    setup = await client.post(
        f"{API}/users/{user_id}/mfa/enable", json={"password": PASSWORD}, headers=headers
    )
    assert setup.status_code == 200, setup.text
    secret = setup.json()["secret"]
    code, step = totp_code(secret)
    confirmed = await client.post(f"{API}/users/{user_id}/mfa/confirm", json={"code": code}, headers=headers)
    assert confirmed.status_code == 200, confirmed.text
    return secret, step


def rotate_keys(migrated_url: str, data_dir: Path, secret: str, previous: str) -> subprocess.CompletedProcess:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("THMNAYAH_")},
        "THMNAYAH_DATA_DIR": str(data_dir),
        "THMNAYAH_DATABASE_URL": migrated_url,
        "THMNAYAH_SECRET_KEY": secret,
        "THMNAYAH_SECRET_KEY_PREVIOUS": previous,
    }
    return subprocess.run(
        [sys.executable, "-m", "orchestration.cli", "rotate-keys"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_a_staged_rotation_keeps_old_values_working_until_the_old_secret_is_dropped(
    migrated_url: str, data_dir: Path, password_hash: str
) -> None:
    rotor = make_user(migrated_url, "rotor", ["editor"], password_hash=password_hash)
    second = make_user(migrated_url, "second", ["viewer"], password_hash=password_hash)
    media_id = add_media(migrated_url, data_dir)
    a, b = Keyring(A), Keyring(B)

    # --- secret A: a session, links, a signed media URL, TOTP and a webhook secret --------------------
    async with serving(migrated_url, data_dir, A) as client:
        jwt_a = (await login(client, "rotor"))["access_token"]
        assert kid_of_jwt(jwt_a) == a.current(ACCESS_TOKEN).kid
        link_a1, link_a2 = (
            await register(client, data_dir, "fresh-one"),
            await register(client, data_dir, "fresh-two"),
        )
        assert link_a1.split(".")[1] == a.current(LINK_TOKEN).kid
        url_a = await media_url(client, jwt_a, media_id)
        assert url_kid(url_a) == a.current(MEDIA_URL).kid
        assert (await client.get(url_a)).content == DATA
        rotor_totp, rotor_step = await enrol_totp(client, rotor, jwt_a)
        second_jwt = (await login(client, "second"))["access_token"]
        second_totp, second_step = await enrol_totp(client, second, second_jwt)
        hook = await client.put(
            f"{API}/notifications/contacts",
            headers=bearer(jwt_a),
            json={"channel": "webhook", "address": "https://hooks.example.test/in", "secret": HOOK_SECRET},
        )
        assert hook.status_code == 200, hook.text

    # --- B current, A previous: what A made still works, new values carry B's key id ---------------
    async with serving(migrated_url, data_dir, B, previous=A) as client:
        assert (await client.get(f"{API}/auth/me", headers=bearer(jwt_a))).status_code == 200
        assert await verify(client, link_a1) == 200
        assert (await client.get(url_a)).content == DATA
        code, rotor_step = totp_code(rotor_totp, rotor_step)
        jwt_b = (await login(client, "rotor", mfa_code=code))["access_token"]  # TOTP secret stored under A
        assert kid_of_jwt(jwt_b) == b.current(ACCESS_TOKEN).kid != a.current(ACCESS_TOKEN).kid
        url_b = await media_url(client, jwt_b, media_id)
        assert url_kid(url_b) == b.current(MEDIA_URL).kid
        link_b = await register(client, data_dir, "fresh-three")
        assert link_b.split(".")[1] == b.current(LINK_TOKEN).kid

    # The operator re-encrypts what is stored: the TOTP secret of `second` and the webhook secret;
    # rotor's TOTP secret was re-encrypted when it was used above.
    rotated = rotate_keys(migrated_url, data_dir, B, A)
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    assert "users.totp_secret_encrypted: 1 re-encrypted, 1 already current, 0 unreadable" in rotated.stdout
    assert "notification_contacts.secret_encrypted: 1 re-encrypted" in rotated.stdout
    assert A not in rotated.stdout + rotated.stderr and B not in rotated.stdout + rotated.stderr

    # --- B alone: A's signatures are refused; B's values and everything stored still work ------------
    async with serving(migrated_url, data_dir, B) as client:
        old_session = await client.get(f"{API}/auth/me", headers=bearer(jwt_a))
        assert old_session.status_code == 401
        assert old_session.headers["content-type"].startswith("application/problem+json")
        assert (await client.get(f"{API}/auth/me", headers=bearer(jwt_b))).status_code == 200
        assert await verify(client, link_a2) == 422
        assert (await client.get(f"{API}/auth/verify-email", params={"token": link_a2})).status_code == 422
        assert await verify(client, link_b) == 200
        assert (await client.get(url_a)).status_code == 403
        assert (await client.get(url_b)).content == DATA
        code, _ = totp_code(second_totp, second_step)
        assert (await login(client, "second", mfa_code=code))["access_token"]
        code, _ = totp_code(rotor_totp, rotor_step)
        assert (await login(client, "rotor", mfa_code=code))["access_token"]
        engine = sync_engine(migrated_url)
        with Session(engine) as session:
            stored = session.scalar(sa.select(NotificationContact.secret_encrypted))
        engine.dispose()
        assert contacts.decrypt(stored, client.app.state.auth.keys) == HOOK_SECRET


async def test_a_value_signed_for_one_purpose_is_refused_for_another(
    migrated_url: str, data_dir: Path, password_hash: str
) -> None:
    user_id = make_user(migrated_url, "crossed", ["analyst", "editor"], password_hash=password_hash)
    media_id = add_media(migrated_url, data_dir)
    async with serving(migrated_url, data_dir, A) as client:
        keys: Keyring = client.app.state.auth.keys
        token = (await login(client, "crossed"))["access_token"]
        claims = jwt.decode(token, options={"verify_signature": False})

        # An access token signed with another purpose's key (and that key's id): 401.
        def signed_with(purpose: str) -> str:
            key = keys.current(purpose)
            return jwt.encode(claims, key.material, algorithm="HS256", headers={"kid": key.kid})

        me = {
            p: (await client.get(f"{API}/auth/me", headers=bearer(signed_with(p)))).status_code
            for p in (ACCESS_TOKEN, LINK_TOKEN, MEDIA_URL, MFA_CHALLENGE, DASHBOARD_CSRF)
        }
        assert me == {
            ACCESS_TOKEN: 200,
            LINK_TOKEN: 401,
            MEDIA_URL: 401,
            MFA_CHALLENGE: 401,
            DASHBOARD_CSRF: 401,
        }

        # A media folder URL whose signature is the link key's MAC of the media message: 403.
        expires = int(time.time()) + 600
        message = f"media-files-private:{media_id}:{expires}"

        def media_path(purpose: str) -> str:
            key = keys.current(purpose)
            return f"{urls.FILES_PREFIX}/{media_id}/{expires}/{key.kid}{key.mac(message, urls.MAC_LENGTH)}/{RUNG}"

        assert (await client.get(media_path(MEDIA_URL))).status_code == 200
        assert (await client.get(media_path(LINK_TOKEN))).status_code == 403

        # A reset link signed with the media key: refused even with its row stored (422).
        def stored_link(purpose: str) -> str:
            raw, key = secrets.token_urlsafe(32), keys.current(purpose)
            link = f"{raw}.{key.kid}.{key.mac(f'reset_password:{raw}')}"
            engine = sync_engine(migrated_url)
            with Session(engine) as session, session.begin():
                now = utcnow()
                session.add(
                    OneTimeToken(
                        token_hash=sha256_hex(link),
                        user_id=user_id,
                        purpose="reset_password",
                        created_at=now,
                        expires_at=now + timedelta(hours=1),
                    )
                )
            engine.dispose()
            return link

        for purpose, status in ((MEDIA_URL, 422), (LINK_TOKEN, 200)):
            body = {"token": stored_link(purpose), "new_password": "another-long-passphrase-43"}
            reset = await client.post(f"{API}/auth/password-reset/confirm", json=body)
            assert reset.status_code == status, (purpose, reset.text)

        # The dashboard's CSRF token made with the link key: 403; with its own key: signed in (303).
        await client.get("/dashboard/login")
        nonce = client.cookies.get("thmnayah_login_csrf")
        form = {"login": "crossed", "password": "another-long-passphrase-43"}
        for purpose, status in ((LINK_TOKEN, 403), (DASHBOARD_CSRF, 303)):
            key = keys.current(purpose)
            csrf = key.kid + key.mac(f"dashboard-login-csrf:{nonce}")
            signed_in = await client.post(
                "/dashboard/login", data={**form, "csrf": csrf}, follow_redirects=False
            )
            assert signed_in.status_code == status, purpose
