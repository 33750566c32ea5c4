"""`GET /api/v1/users/{id}/roles` on SQLite and PostgreSQL: a user's role grants with their expiry,
who granted them and when; readable by the user themself and by holders of `users:read`, refused
to everyone else."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from litestar.testing import AsyncTestClient
from sqlalchemy.orm import Session, sessionmaker

from domain.schema import Role, UserActivity
from tests.serving.conftest import bearer

API = "/api/v1/users"


def add_role(db_sessions: sessionmaker[Session], name: str, permissions: list[str]) -> None:
    with db_sessions.begin() as session:
        session.add(Role(name=name, description=name, is_system_role=False, permissions=permissions))


async def test_the_grants_are_listed_with_expiry_and_grantor(
    anonymous: AsyncTestClient, new_user, db_sessions
) -> None:
    admin_id, admin = new_user("granter", ["admin"])
    user_id, own = new_user("temp-staff", ["viewer"])
    until = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    put = await anonymous.put(
        f"{API}/{user_id}/roles",
        headers=bearer(admin),
        json={"roles": [{"role": "viewer"}, {"role": "author", "expires_at": until.isoformat()}]},
    )
    assert put.status_code == 200, put.text
    add_role(db_sessions, "directory", ["users:read"])
    _, reader = new_user("hr-reader", ["directory"])

    by_admin = await anonymous.get(f"{API}/{user_id}/roles", headers=bearer(admin))
    by_self = await anonymous.get(f"{API}/{user_id}/roles", headers=bearer(own))
    by_reader = await anonymous.get(f"{API}/{user_id}/roles", headers=bearer(reader))

    assert (by_admin.status_code, by_self.status_code, by_reader.status_code) == (200, 200, 200)
    body = by_admin.json()
    assert body["user_id"] == str(user_id)
    assert [g["role"] for g in body["roles"]] == ["author", "viewer"]  # ordered by role name
    author, viewer = body["roles"]
    assert datetime.fromisoformat(author["expires_at"]) == until
    assert viewer["expires_at"] is None
    assert author["assigned_by"] == viewer["assigned_by"] == str(admin_id)
    assigned = datetime.fromisoformat(author["assigned_at"])
    assert abs(assigned - datetime.now(UTC)) < timedelta(minutes=5)
    assert by_self.json() == body and by_reader.json() == body


async def test_reading_someone_elses_roles_needs_users_read(
    anonymous: AsyncTestClient, new_user, db_sessions
) -> None:
    user_id, _ = new_user("subject", ["editor"])
    other_id, other = new_user("nosy", ["editor"])  # edits content, but may not read users

    denied = await anonymous.get(f"{API}/{user_id}/roles", headers=bearer(other))
    anonymous_read = await anonymous.get(f"{API}/{user_id}/roles")

    assert denied.status_code == 403, denied.text
    assert "users:read" in denied.json()["detail"]
    assert anonymous_read.status_code == 401
    with db_sessions() as session:
        denials = session.scalars(
            sa.select(UserActivity).where(
                UserActivity.user_id == other_id, UserActivity.action == "permission.denied"
            )
        ).all()
    assert [d.meta["needed"] for d in denials] == ["users:read"]


async def test_the_roles_of_an_unknown_user_are_a_404(anonymous: AsyncTestClient, new_user) -> None:
    _, admin = new_user("looker", ["admin"])

    res = await anonymous.get(f"{API}/{uuid.uuid4()}/roles", headers=bearer(admin))

    assert res.status_code == 404, res.text
    assert res.headers["content-type"].startswith("application/problem+json")
