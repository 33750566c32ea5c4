"""`POST /api/v1/users/{id}/password` on SQLite and PostgreSQL: the current password is required, the
new one must pass the policy, and the change ends every OTHER session of the account at once (their
access and refresh tokens stop working) while the session that made the change goes on."""

from __future__ import annotations

from litestar.testing import AsyncTestClient

from tests.serving.conftest import PASSWORD, bearer, login

API = "/api/v1"
NEW_PASSWORD = "quiet-lantern-meadow-77"


async def me(client: AsyncTestClient, access_token: str) -> int:
    return (await client.get(f"{API}/auth/me", headers=bearer(access_token))).status_code


async def refresh(client: AsyncTestClient, refresh_token: str, device_id: str = "") -> AsyncTestClient:
    return await client.post(
        f"{API}/auth/refresh", json={"refresh_token": refresh_token, "device_id": device_id}
    )


async def test_changing_the_password_ends_the_other_sessions_and_keeps_this_one(
    anonymous: AsyncTestClient, new_user, password_hash: str
) -> None:
    user_id, minted = new_user("changer", ["author"], password_hash=password_hash)  # a session too
    laptop = await login(anonymous, "changer")
    phone = await login(anonymous, "changer", client_type="mobile", device_id="phone-1")
    tablet = await login(anonymous, "changer", client_type="mobile", device_id="tablet-1")
    # The other sessions are in use (and their state cached) right before the change.
    assert await me(anonymous, phone["access_token"]) == 200
    assert await me(anonymous, tablet["access_token"]) == 200
    assert await me(anonymous, minted) == 200

    res = await anonymous.post(
        f"{API}/users/{user_id}/password",
        headers=bearer(laptop["access_token"]),
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )

    assert res.status_code == 200, res.text
    assert res.json() == {"detail": "password changed", "sessions_ended": 3}
    # The other sessions: their access tokens are refused at once, their refresh tokens too.
    assert await me(anonymous, phone["access_token"]) == 401
    assert await me(anonymous, tablet["access_token"]) == 401
    assert await me(anonymous, minted) == 401
    ended = await refresh(anonymous, phone["refresh_token"], "phone-1")
    assert ended.status_code == 401, ended.text
    assert (await refresh(anonymous, tablet["refresh_token"], "tablet-1")).status_code == 401
    # The session that changed the password goes on: its access token works, its refresh token rotates.
    assert await me(anonymous, laptop["access_token"]) == 200
    rotated = await refresh(anonymous, laptop["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["session_id"] == laptop["session_id"]
    listed = await anonymous.get(f"{API}/auth/sessions", headers=bearer(rotated.json()["access_token"]))
    assert [s["session_id"] for s in listed.json()] == [laptop["session_id"]]
    # The old password is gone; the new one logs in.
    old = await anonymous.post(f"{API}/auth/login", json={"login": "changer", "password": PASSWORD})
    assert old.status_code == 401
    assert (await login(anonymous, "changer", NEW_PASSWORD))["user"]["id"] == str(user_id)


async def test_a_wrong_current_password_or_a_weak_new_one_changes_nothing(
    anonymous: AsyncTestClient, new_user, password_hash: str
) -> None:
    user_id, _ = new_user("careful", ["viewer"], password_hash=password_hash)
    first = await login(anonymous, "careful")
    second = await login(anonymous, "careful", client_type="mobile", device_id="phone-2")

    wrong = await anonymous.post(
        f"{API}/users/{user_id}/password",
        headers=bearer(first["access_token"]),
        json={"current_password": "not-my-password-1", "new_password": NEW_PASSWORD},
    )
    weak = await anonymous.post(
        f"{API}/users/{user_id}/password",
        headers=bearer(first["access_token"]),
        json={"current_password": PASSWORD, "new_password": "password1"},
    )

    assert wrong.status_code == 422, wrong.text
    assert wrong.json()["errors"][0]["field"] == "password"
    assert weak.status_code == 422, weak.text
    assert await me(anonymous, second["access_token"]) == 200  # no session was ended
    assert (await refresh(anonymous, second["refresh_token"], "phone-2")).status_code == 200
    assert (await login(anonymous, "careful"))["user"]["username"] == "careful"  # password unchanged


async def test_only_the_user_themself_may_change_their_password(
    anonymous: AsyncTestClient, new_user, password_hash: str
) -> None:
    victim_id, _ = new_user("victim", ["viewer"], password_hash=password_hash)
    _, admin = new_user("root", ["admin"])
    victim = await login(anonymous, "victim")

    res = await anonymous.post(
        f"{API}/users/{victim_id}/password",
        headers=bearer(admin),
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )

    assert res.status_code == 403, res.text
    assert await me(anonymous, victim["access_token"]) == 200
    assert (await login(anonymous, "victim"))["user"]["id"] == str(victim_id)
