"""Who holds a role (`domain.auth.rbac.users_with_roles`): the recipients of role-addressed
notifications and alerts are the active users whose grant is in force at the moment asked about."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from domain.auth import audit, rbac, users
from domain.schema import Role, UserRole
from resources.database import OperationalDatabase as DB

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def _user(db: DB, name: str, roles: list[str], *, active: bool = True) -> uuid.UUID:
    with db.session() as session:
        user = users.create_user(
            session,
            users.NewUser(name, f"{name}@example.test", None, roles=roles, is_active=active),
            created_by=None,
            origin=audit.Origin(),
        )
        return user.id


def test_members_are_the_active_users_with_a_grant_in_force_ordered_by_id(db: DB) -> None:
    editor = _user(db, "editor1", ["editor"])
    admin = _user(db, "admin1", ["admin", "editor"])  # two matching roles, listed once
    _user(db, "viewer1", ["viewer"])
    _user(db, "gone", ["editor"], active=False)
    expiring = _user(db, "temp", ["viewer"])
    revoked = _user(db, "revoked", ["editor"])
    with db.session() as session:
        rbac.grant_role(session, expiring, "editor", expires_at=NOW + timedelta(hours=1))
        session.execute(
            sa.update(UserRole)
            .where(
                UserRole.user_id == revoked,
                UserRole.role_id == sa.select(Role.id).where(Role.name == "editor").scalar_subquery(),
            )
            .values(is_active=False)
        )
    with db.session() as session:
        assert rbac.users_with_roles(session, ["editor", "admin"], NOW) == sorted([editor, admin, expiring])
        # An hour later the temporary grant has expired.
        later = NOW + timedelta(hours=1)
        assert rbac.users_with_roles(session, ["editor", "admin"], later) == sorted([editor, admin])
        assert rbac.users_with_roles(session, ["admin"], NOW) == [admin]
        assert rbac.users_with_roles(session, ["no-such-role"], NOW) == []
        assert rbac.users_with_roles(session, [], NOW) == []
