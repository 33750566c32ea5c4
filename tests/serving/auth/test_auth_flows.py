"""Login, tokens, sessions, MFA, registration, reset, RBAC and SSO through HTTP, on SQLite and
PostgreSQL; each attack from the issue is a test here or in test_route_permissions.py."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import bcrypt
import jwt
import pyotp
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from litestar.testing import AsyncTestClient

from domain.auth.keys import ACCESS_TOKEN
from domain.db import sync_engine
from domain.schema import OutboxEvent, User, UserActivity, UserSession
from domain.settings import Settings
from serving.app import create_app
from serving.auth.throttle import account_key
from tests.conftest import free_port, prod_settings
from tests.serving.auth.conftest import smtp_settings
from tests.serving.conftest import PASSWORD, bearer, db_exec, db_scalar, link_token, login, mails

API = "/api/v1"


def actions(url: str) -> list[str]:
    engine = sync_engine(url)
    with engine.connect() as conn:
        rows = list(conn.scalars(sa.select(UserActivity.action).order_by(UserActivity.id)))
    engine.dispose()
    return rows


async def test_login_refresh_rotation_grace_and_reuse(
    anonymous, new_user, password_hash, migrated_url
) -> None:
    new_user("reporter", ["author"], password_hash=password_hash)
    tokens = await login(anonymous, "reporter", device_id="phone-1", client_type="mobile")
    assert tokens["token_type"] == "Bearer" and tokens["user"]["roles"] == ["author"]
    me = (await anonymous.get(f"{API}/auth/me", headers=bearer(tokens["access_token"]))).json()
    assert me["username"] == "reporter" and "content:create" in me["permissions"]
    session_row = uuid.UUID(tokens["session_id"])
    expires = db_scalar(
        migrated_url, sa.select(UserSession.expires_at).where(UserSession.session_id == session_row)
    )
    assert timedelta(days=6) < expires - datetime.now(UTC) <= timedelta(days=7)  # mobile: 7 days
    assert (
        db_scalar(
            migrated_url, sa.select(UserSession.refresh_token).where(UserSession.session_id == session_row)
        )
        != tokens["refresh_token"]
    )  # stored hashed

    first = await anonymous.post(
        f"{API}/auth/refresh", json={"refresh_token": tokens["refresh_token"], "device_id": "phone-1"}
    )
    assert first.status_code == 200, first.text
    rotated = first.json()
    assert rotated["refresh_token"] and rotated["refresh_token"] != tokens["refresh_token"]

    # A concurrent refresh with the same old token, inside the grace window: access only, no rotation.
    late = await anonymous.post(
        f"{API}/auth/refresh", json={"refresh_token": tokens["refresh_token"], "device_id": "phone-1"}
    )
    assert late.status_code == 200 and late.json()["refresh_token"] is None

    # Another device cannot use the session's refresh token.
    other = await anonymous.post(
        f"{API}/auth/refresh", json={"refresh_token": rotated["refresh_token"], "device_id": "laptop"}
    )
    assert other.status_code == 401

    # Past the grace window, the old token again is reuse: the whole family is revoked.
    db_exec(
        migrated_url,
        sa.update(UserSession)
        .where(UserSession.session_id == session_row)
        .values(rotated_at=datetime.now(UTC) - timedelta(minutes=5)),
    )
    reuse = await anonymous.post(
        f"{API}/auth/refresh", json={"refresh_token": tokens["refresh_token"], "device_id": "phone-1"}
    )
    assert reuse.status_code == 401 and "already used" in reuse.json()["detail"]
    assert (
        await anonymous.post(
            f"{API}/auth/refresh", json={"refresh_token": rotated["refresh_token"], "device_id": "phone-1"}
        )
    ).status_code == 401
    assert (await anonymous.get(f"{API}/auth/me", headers=bearer(rotated["access_token"]))).status_code == 401
    assert "token.reuse_detected" in actions(migrated_url)


async def test_web_sessions_last_a_day_and_logout_ends_them(
    anonymous, new_user, password_hash, migrated_url
) -> None:
    new_user("desk", ["viewer"], password_hash=password_hash)
    tokens = await login(anonymous, "desk")
    sid = uuid.UUID(tokens["session_id"])
    expires = db_scalar(migrated_url, sa.select(UserSession.expires_at).where(UserSession.session_id == sid))
    assert timedelta(hours=23) < expires - datetime.now(UTC) <= timedelta(hours=24)
    headers = bearer(tokens["access_token"])
    listed = (await anonymous.get(f"{API}/auth/sessions", headers=headers)).json()
    assert [s["session_id"] for s in listed if s["current"]] == [tokens["session_id"]]
    assert (await anonymous.post(f"{API}/auth/logout", headers=headers)).status_code == 204
    assert (await anonymous.get(f"{API}/auth/me", headers=headers)).status_code == 401
    refresh = await anonymous.post(f"{API}/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refresh.status_code == 401


async def test_revoking_another_session(anonymous, new_user, password_hash) -> None:
    new_user("two-devices", ["viewer"], password_hash=password_hash)
    phone, laptop = await login(anonymous, "two-devices"), await login(anonymous, "two-devices")
    res = await anonymous.delete(
        f"{API}/auth/sessions/{phone['session_id']}", headers=bearer(laptop["access_token"])
    )
    assert res.status_code == 204
    assert (await anonymous.get(f"{API}/auth/me", headers=bearer(phone["access_token"]))).status_code == 401
    assert (await anonymous.get(f"{API}/auth/me", headers=bearer(laptop["access_token"]))).status_code == 200
    stranger = await anonymous.delete(
        f"{API}/auth/sessions/{uuid.uuid4()}", headers=bearer(laptop["access_token"])
    )
    assert stranger.status_code == 404


def _forge(payload: dict, key: str | bytes, alg: str = "HS256", kid: str | None = None) -> str:
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid} if kid else None)


async def test_forged_and_broken_tokens_are_refused(anonymous, new_user, migrated_url) -> None:
    user_id, token = new_user("target", ["admin"])
    auth = anonymous.app.state.auth
    assert (await anonymous.get(f"{API}/auth/me", headers=bearer(token))).status_code == 200
    claims = jwt.decode(token, options={"verify_signature": False})
    head, body, sig = token.split(".")
    tampered_claims = {**claims, "sub": str(uuid.uuid4())}
    tampered = ".".join(
        [head, base64.urlsafe_b64encode(json.dumps(tampered_claims).encode()).decode().rstrip("="), sig]
    )
    alg_none = ".".join(
        [
            base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').decode().rstrip("="),
            body,
            "",
        ]
    )
    now = int(time.time())
    key = auth.keys.current(ACCESS_TOKEN)  # the real key and its id: only the claims are wrong below
    resigned = _forge(claims, key.material, kid=key.kid)
    assert (await anonymous.get(f"{API}/auth/me", headers=bearer(resigned))).status_code == 200
    cases = {
        "tampered": tampered,
        "alg none": alg_none,
        "wrong key": _forge(claims, "not-the-platform-secret-but-long-enough-xx", kid=key.kid),
        "expired": _forge({**claims, "exp": now - 60, "iat": now - 1000}, key.material, kid=key.kid),
        "wrong audience": _forge({**claims, "aud": "someone-else"}, key.material, kid=key.kid),
        "wrong issuer": _forge({**claims, "iss": "evil"}, key.material, kid=key.kid),
        "not an access token": _forge(
            {**claims, "typ": "mfa_challenge"} | {"extras": {}}, key.material, kid=key.kid
        ),
        "garbage": "a.b.c",
    }
    for name, forged in cases.items():
        res = await anonymous.get(f"{API}/auth/me", headers=bearer(forged))
        assert res.status_code == 401, f"{name}: {res.status_code}"
        assert res.headers["content-type"].startswith("application/problem+json")


async def test_brute_force_from_one_ip_is_throttled(anonymous, new_user, password_hash, migrated_url) -> None:
    new_user("victim", ["viewer"], password_hash=password_hash)
    codes = []
    for i in range(5):
        res = await anonymous.post(
            f"{API}/auth/login", json={"login": f"guess-{i}", "password": "wrong-password"}
        )
        codes.append(res.status_code)
    assert codes == [401] * 5
    blocked = await anonymous.post(f"{API}/auth/login", json={"login": "victim", "password": PASSWORD})
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
    assert "login.throttled" in actions(migrated_url)


async def test_failures_against_one_account_delay_it(anonymous, new_user, password_hash) -> None:
    """Credential stuffing spreads over IPs; the per-account delay does not depend on the IP."""
    user_id, _ = new_user("popular", ["viewer"], password_hash=password_hash)
    throttle = anonymous.app.state.auth.throttle
    for i in range(3):  # three failures from three different addresses (the account's bucket: its id)
        await throttle.record_failure(f"203.0.113.{i}", account_key(user_id))
    res = await anonymous.post(f"{API}/auth/login", json={"login": "popular", "password": PASSWORD})
    assert res.status_code == 429 and int(res.headers["retry-after"]) >= 1


async def test_unknown_account_and_wrong_password_answer_alike(anonymous, new_user, password_hash) -> None:
    new_user("known", ["viewer"], password_hash=password_hash)
    unknown = await anonymous.post(f"{API}/auth/login", json={"login": "nobody", "password": PASSWORD})
    wrong = await anonymous.post(f"{API}/auth/login", json={"login": "known", "password": "wrong-password-1"})
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json()["detail"] == wrong.json()["detail"]


async def test_imported_bcrypt_hash_is_upgraded_on_login(anonymous, new_user, migrated_url) -> None:
    legacy = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    user_id, _ = new_user("imported", ["viewer"], password_hash=legacy)
    await login(anonymous, "imported")
    stored = db_scalar(migrated_url, sa.select(User.password_hash).where(User.id == user_id))
    assert stored.startswith("$argon2id$")
    await login(anonymous, "imported")  # and the new hash works


async def test_registration_verification_and_reset(anonymous, migrated_url, data_dir) -> None:
    body = {
        "username": "newcomer",
        "email": "newcomer@example.test",
        "password": PASSWORD,
        "first_name": "Nour",
    }
    res = await anonymous.post(f"{API}/auth/register", json=body)
    assert res.status_code == 202
    again = await anonymous.post(f"{API}/auth/register", json=body)
    assert again.status_code == 202 and again.json() == res.json()  # no account enumeration
    assert db_scalar(migrated_url, sa.select(sa.func.count()).select_from(User)) == 1
    assert db_scalar(
        migrated_url, sa.select(OutboxEvent.event_type).where(OutboxEvent.event_type == "user.registered")
    )

    unverified = await anonymous.post(f"{API}/auth/login", json={"login": "newcomer", "password": PASSWORD})
    assert unverified.status_code == 403

    [verification] = mails(data_dir / "mail")
    assert verification["To"] == "newcomer@example.test" and "Confirm your email" in verification["Subject"]
    token = link_token(verification)
    assert (await anonymous.post(f"{API}/auth/verify-email", json={"token": token + "x"})).status_code == 422
    # Opening the link shows a confirm button and changes nothing (mail scanners fetch links).
    assert (await anonymous.get(f"{API}/auth/verify-email", params={"token": token})).status_code == 200
    verified = await anonymous.post(f"{API}/auth/verify-email", json={"token": token})
    assert verified.status_code == 200, verified.text
    assert (
        await anonymous.post(f"{API}/auth/verify-email", json={"token": token})
    ).status_code == 422  # single use
    assert len(mails(data_dir / "mail")) == 1  # the welcome goes through the notifications (user.verified)
    session = await login(anonymous, "newcomer")

    # Password reset: the same answer for unknown addresses; the link works once and ends sessions.
    unknown = await anonymous.post(f"{API}/auth/password-reset", json={"email": "ghost@example.test"})
    res = await anonymous.post(f"{API}/auth/password-reset", json={"email": "newcomer@example.test"})
    assert unknown.status_code == res.status_code == 202 and unknown.json() == res.json()
    reset_token = link_token(mails(data_dir / "mail")[-1])
    weak = await anonymous.post(
        f"{API}/auth/password-reset/confirm", json={"token": reset_token, "new_password": "password1"}
    )
    assert weak.status_code == 422 and weak.json()["errors"][0]["field"] == "password"
    new_password = "quiet-lantern-river-77"
    done = await anonymous.post(
        f"{API}/auth/password-reset/confirm", json={"token": reset_token, "new_password": new_password}
    )
    assert done.status_code == 200, done.text
    assert (await anonymous.get(f"{API}/auth/me", headers=bearer(session["access_token"]))).status_code == 401
    assert (
        await anonymous.post(
            f"{API}/auth/password-reset/confirm",
            json={"token": reset_token, "new_password": "another-fine-phrase-9"},
        )
    ).status_code == 422
    await login(anonymous, "newcomer", new_password)
    assert {"user.registered", "email.verified", "password.changed"} <= set(actions(migrated_url))


async def test_mfa_enable_challenge_replay_and_recovery(
    anonymous, new_user, password_hash, migrated_url
) -> None:
    user_id, token = new_user("guarded", ["editor"], password_hash=password_hash)
    headers = bearer(token)
    wrong = await anonymous.post(
        f"{API}/users/{user_id}/mfa/enable", json={"password": "not-my-password"}, headers=headers
    )
    assert wrong.status_code == 422
    setup = (
        await anonymous.post(
            f"{API}/users/{user_id}/mfa/enable", json={"password": PASSWORD}, headers=headers
        )
    ).json()
    assert setup["provisioning_uri"].startswith("otpauth://totp/")
    totp = pyotp.TOTP(setup["secret"])
    setup_code = totp.now()
    confirm = await anonymous.post(
        f"{API}/users/{user_id}/mfa/confirm", json={"code": setup_code}, headers=headers
    )
    assert confirm.status_code == 200, confirm.text
    recovery = confirm.json()["recovery_codes"]
    assert len(recovery) >= 8

    challenge = await login(anonymous, "guarded")
    assert challenge["mfa_required"] is True and "access_token" not in challenge
    # The code used to confirm setup is spent: the next login needs a code of a later step.
    replay = await anonymous.post(
        f"{API}/auth/login/mfa",
        json={"challenge_token": challenge["challenge_token"], "mfa_code": setup_code},
    )
    assert replay.status_code == 401
    later = totp.at(datetime.now(UTC) + timedelta(seconds=30))
    ok = await anonymous.post(
        f"{API}/auth/login/mfa", json={"challenge_token": challenge["challenge_token"], "mfa_code": later}
    )
    assert ok.status_code == 200, ok.text
    again = await anonymous.post(
        f"{API}/auth/login/mfa", json={"challenge_token": challenge["challenge_token"], "mfa_code": later}
    )
    assert again.status_code == 401  # a code is never accepted twice

    first = await anonymous.post(
        f"{API}/auth/login", json={"login": "guarded", "password": PASSWORD, "recovery_code": recovery[0]}
    )
    assert first.status_code == 200 and first.json()["access_token"]
    second = await anonymous.post(
        f"{API}/auth/login", json={"login": "guarded", "password": PASSWORD, "recovery_code": recovery[0]}
    )
    assert second.status_code == 401
    assert {"mfa.enabled", "mfa.challenged", "mfa.failed", "mfa.succeeded", "mfa.recovery_code_used"} <= set(
        actions(migrated_url)
    )


async def test_role_change_applies_at_once_and_expired_roles_stop_working(
    anonymous, new_user, migrated_url, monkeypatch
) -> None:
    _, admin = new_user("boss", ["admin"])
    user_id, token = new_user("junior", ["viewer"])
    article = {"type": "article", "title": {"en": "Role test"}}
    assert (await anonymous.post(f"{API}/content", json=article, headers=bearer(token))).status_code == 403
    expires = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    res = await anonymous.put(
        f"{API}/users/{user_id}/roles",
        headers=bearer(admin),
        json={"roles": [{"role": "viewer"}, {"role": "author", "expires_at": expires.isoformat()}]},
    )
    assert res.status_code == 200, res.text
    assert {g["role"] for g in res.json()["roles"]} == {"viewer", "author"}
    created = await anonymous.post(f"{API}/content", json=article, headers=bearer(token))
    assert created.status_code == 201  # the cache was invalidated by the change

    # The hour passes on the clock that role expiry is read against (tokens keep the real one).
    principals = anonymous.app.state.auth.principals
    monkeypatch.setattr(principals, "clock", lambda: expires - timedelta(seconds=1))
    still = await anonymous.post(f"{API}/content", json={**article, "slug": "second"}, headers=bearer(token))
    assert still.status_code == 201, still.text  # a second before the expiry
    monkeypatch.setattr(principals, "clock", lambda: expires)
    expired = await anonymous.post(f"{API}/content", json={**article, "slug": "third"}, headers=bearer(token))
    assert expired.status_code == 403  # the grant expired; nothing had to remove it
    me = (await anonymous.get(f"{API}/auth/me", headers=bearer(token))).json()
    assert me["roles"] == ["viewer"] and "content:create" not in me["permissions"]
    assert "roles.changed" in actions(migrated_url) and "permission.denied" in actions(migrated_url)


async def test_profile_fields_follow_permissions_and_refuse_mass_assignment(
    anonymous, new_user, migrated_url
) -> None:
    from domain.schema import Role

    engine = sync_engine(migrated_url)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(Role).values(
                id=uuid.uuid4(),
                name="directory",
                description="reads the staff list",
                is_system_role=False,
                permissions=["users:read"],
                created_at=datetime.now(UTC),
                updated_at=datetime.now(UTC),
            )
        )
    engine.dispose()
    user_id, token = new_user("owner", ["viewer"])
    _, reader = new_user("hr-reader", ["directory"])
    _, admin = new_user("root", ["admin"])
    own = (await anonymous.get(f"{API}/users/{user_id}/profile", headers=bearer(token))).json()
    seen = (await anonymous.get(f"{API}/users/{user_id}/profile", headers=bearer(reader))).json()
    full = (await anonymous.get(f"{API}/users/{user_id}/profile", headers=bearer(admin))).json()
    assert own["email"] == full["email"] == "owner@example.test" and own["roles"] == ["viewer"]
    assert "email" not in seen and "roles" not in seen and seen["username"] == "owner"

    for field, value in (
        ("is_active", False),
        ("roles", ["admin"]),
        ("is_verified", True),
        ("email", "x@y.z"),
    ):
        res = await anonymous.patch(
            f"{API}/users/{user_id}/profile", json={field: value}, headers=bearer(token)
        )
        assert res.status_code == 400, (field, res.text)
    ok = await anonymous.patch(
        f"{API}/users/{user_id}/profile", json={"first_name": "Layla"}, headers=bearer(token)
    )
    assert ok.status_code == 200 and ok.json()["first_name"] == "Layla" and ok.json()["roles"] == ["viewer"]
    assert db_scalar(migrated_url, sa.select(User.is_active).where(User.id == user_id)) is True


async def test_admin_creates_users_and_reads_the_audit_trail(anonymous, new_user, password_hash) -> None:
    _, admin = new_user("chief", ["admin"])
    created = await anonymous.post(
        f"{API}/users",
        headers=bearer(admin),
        json={
            "username": "Staffer",
            "email": "Staffer@Example.test",
            "password": PASSWORD,
            "roles": ["editor"],
        },
    )
    assert created.status_code == 201, created.text
    assert created.json()["username"] == "staffer" and created.json()["roles"] == ["editor"]
    weak = await anonymous.post(
        f"{API}/users",
        headers=bearer(admin),
        json={"username": "weakling", "email": "weak@example.test", "password": "qwertyuiop"},
    )
    assert weak.status_code == 422
    await anonymous.post(
        f"{API}/auth/login",
        json={"login": "staffer", "password": "wrong-password"},
        headers={"user-agent": "attack-bot/1.0"},
    )
    trail = await anonymous.get(
        f"{API}/audit/activities", params={"action": "login.failed"}, headers=bearer(admin)
    )
    assert trail.status_code == 200
    [failure] = trail.json()["items"]
    assert failure["user_agent"] == "attack-bot/1.0" and failure["ip_address"]
    roles = (await anonymous.get(f"{API}/roles/permissions", headers=bearer(admin))).json()
    assert {r["name"] for r in roles} >= {"admin", "editor", "author", "analyst", "viewer"}


class _Jwks:
    def __init__(self, jwks: dict) -> None:
        body = json.dumps(jwks).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                return None  # keep test output quiet

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/certs"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


async def test_sso_tokens_from_the_provider_map_roles(migrated_url: str, data_dir: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    server = _Jwks({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]})
    issuer = "http://keycloak.test/realms/media"
    settings = Settings(
        deployment="local",
        data_dir=data_dir,
        database_url=migrated_url,
        oidc_jwks_url=server.url,
        oidc_issuer=issuer,
        oidc_audience="thmnayah-api",
        oidc_role_map="kc-editors=editor",
    )
    now = int(time.time())
    claims = {
        "iss": issuer,
        "aud": "thmnayah-api",
        "sub": "kc-123",
        "iat": now,
        "exp": now + 300,
        "preferred_username": "sso.editor",
        "email": "sso@example.test",
        "realm_access": {"roles": ["kc-editors", "offline_access"]},
    }
    token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})
    try:
        async with AsyncTestClient(app=create_app(settings)) as client:
            me = await client.get(f"{API}/auth/me", headers=bearer(token))
            assert me.status_code == 200, me.text
            assert me.json()["via"] == "sso" and me.json()["roles"] == ["editor"]
            created = await client.post(
                f"{API}/content", json={"type": "article", "title": {"en": "SSO"}}, headers=bearer(token)
            )
            assert created.status_code == 201
            viewer_only = jwt.encode(
                {**claims, "realm_access": {"roles": []}}, key, algorithm="RS256", headers={"kid": "k1"}
            )
            denied = await client.post(
                f"{API}/content", json={"type": "article", "title": {"en": "x"}}, headers=bearer(viewer_only)
            )
            assert denied.status_code == 403
            other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            forged = jwt.encode(claims, other_key, algorithm="RS256", headers={"kid": "k1"})
            assert (await client.get(f"{API}/auth/me", headers=bearer(forged))).status_code == 401
    finally:
        server.httpd.shutdown()
    assert (
        db_scalar(
            migrated_url, sa.select(sa.func.count()).select_from(User).where(User.external_id.is_not(None))
        )
        == 1
    )


async def test_prod_processes_share_revocations_and_role_changes_through_redis(
    postgres_url, redis_url, nats_url, s3_endpoint, aws_credentials, data_dir, password_hash
) -> None:
    """Two API processes on the production backends: what one revokes or changes, the other sees
    through Redis within the local cache's lifetime."""
    from domain.migrate import upgrade
    from serving.auth.principal import LOCAL_TTL

    upgrade(postgres_url)
    settings = prod_settings(
        postgres_url, data_dir, s3_endpoint_url=s3_endpoint, nats_url=nats_url, redis_url=redis_url
    )
    user_id = _account(postgres_url, ["viewer"], password_hash)
    admin_id = _account(postgres_url, ["admin"], password_hash)
    async with (
        AsyncTestClient(app=create_app(settings)) as one,
        AsyncTestClient(app=create_app(settings)) as two,
    ):
        username = db_scalar(postgres_url, sa.select(User.username).where(User.id == user_id))
        admin_name = db_scalar(postgres_url, sa.select(User.username).where(User.id == admin_id))
        tokens = await login(one, username)
        admin = (await login(one, admin_name))["access_token"]
        headers = bearer(tokens["access_token"])
        assert (await two.get(f"{API}/auth/me", headers=headers)).json()["roles"] == ["viewer"]

        grant = await one.put(
            f"{API}/users/{user_id}/roles", headers=bearer(admin), json={"roles": [{"role": "editor"}]}
        )
        assert grant.status_code == 200
        time.sleep(LOCAL_TTL + 0.2)
        assert (await two.get(f"{API}/auth/me", headers=headers)).json()["roles"] == ["editor"]

        assert (await one.post(f"{API}/auth/logout", headers=headers)).status_code == 204
        time.sleep(LOCAL_TTL + 0.2)
        assert (await two.get(f"{API}/auth/me", headers=headers)).status_code == 401


def _account(url: str, roles: list[str], password_hash: str) -> uuid.UUID:
    from sqlalchemy.orm import Session

    from domain.auth import audit, rbac, users

    engine = sync_engine(url)
    with Session(engine) as session, session.begin():
        rbac.seed_system_roles(session)
        name = f"acct-{uuid.uuid4().hex[:8]}"
        user = users.create_user(
            session,
            users.NewUser(name, f"{name}@example.test", password_hash, roles=roles),
            created_by=None,
            origin=audit.Origin(),
        )
        user_id = user.id
    engine.dispose()
    return user_id


async def test_registration_mail_goes_out_over_smtp(migrated_url: str, data_dir: Path) -> None:
    """With THMNAYAH_SMTP_HOST set, the verification link reaches a real SMTP server."""

    from aiosmtpd.controller import Controller

    received: list = []

    class Recorder:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            received.append((envelope.rcpt_tos, message_from_bytes(envelope.content, policy=policy.default)))
            return "250 OK"

    port = free_port()
    controller = Controller(Recorder(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings = smtp_settings(data_dir, migrated_url, port)
        async with AsyncTestClient(app=create_app(settings)) as client:
            res = await client.post(
                f"{API}/auth/register",
                json={"username": "by-mail", "email": "by-mail@example.test", "password": PASSWORD},
            )
            assert res.status_code == 202
            [(recipients, message)] = received
            assert recipients == ["by-mail@example.test"]
            token = link_token(message)
            assert (
                "https://media.example/api/v1/auth/verify-email?token="
                in message.get_body(("plain",)).get_content()
            )
            verified = await client.post(f"{API}/auth/verify-email", json={"token": token})
            assert verified.status_code == 200
            assert len(received) == 1  # the welcome goes through the notifications (user.verified)
    finally:
        controller.stop()
    assert not (data_dir / "mail").exists()
