"""`/api/v1/users`, `/api/v1/roles` and `/api/v1/audit`: accounts, role grants, MFA setup, audit."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec
import sqlalchemy as sa
from litestar import Controller, Request, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from msgspec import UNSET
from sqlalchemy.orm import Session

from domain.auth import audit, mfa, passwords, rbac, sessions, users
from domain.errors import InvalidValue
from domain.schema import Role, User, UserRole
from serving.auth import services
from serving.auth.principal import Principal
from serving.auth.schemas import (
    ActivityOut,
    ActivityPage,
    CreateUserRequest,
    MfaConfirmRequest,
    MfaEnableRequest,
    MfaSetup,
    PasswordChange,
    ProfileOut,
    ProfileUpdate,
    RecoveryCodes,
    RoleGrantOut,
    RolePermissions,
    RolesOut,
    RolesUpdate,
)
from serving.auth.security import AuthContext
from serving.pagination import decode_cursor, encode_cursor
from serving.permissions import (
    AUDIT_READ,
    AUTHENTICATED,
    ROLES_MANAGE,
    SELF,
    USERS_MANAGE,
    USERS_READ,
    requires,
)

PERMISSIONS_CACHE_KEY = "roles:permissions"


def _full_view(principal: Principal, user_id: uuid.UUID) -> bool:
    return principal.user_id == user_id or principal.can(USERS_MANAGE)


class UsersController(Controller):
    path = "/api/v1/users"
    tags = ["users"]

    @post("/", opt=requires(USERS_MANAGE), operation_id="createUser", summary="Create an account (admins)")
    async def create(
        self,
        request: Request[Principal, object, object],
        data: JSONBody[CreateUserRequest],
        auth: NamedDependency[AuthContext],
    ) -> ProfileOut:
        passwords.check_password_policy(data.password, username=data.username, email=data.email)
        password_hash = await auth.hashing.hash(data.password)
        origin, actor = auth.origin(request), request.user.user_id

        def create(session: Session) -> tuple[User, list[str]]:
            user = users.create_user(
                session,
                users.NewUser(
                    username=data.username,
                    email=data.email,
                    password_hash=password_hash,
                    first_name=data.first_name,
                    last_name=data.last_name,
                    roles=data.roles,
                ),
                created_by=actor,
                origin=origin,
            )
            return user, rbac.effective_permissions(session, user.id)[0]

        user, roles = await auth.db.write(create)
        return services.profile_out(user, roles, full=True)

    @get(
        "/{user_id:uuid}/profile",
        opt={**requires(USERS_READ), "allow_self": True},
        operation_id="getProfile",
        summary="A profile: every field for yourself and user managers, public fields for other readers",
    )
    async def profile(
        self,
        request: Request[Principal, object, object],
        user_id: FromPath[uuid.UUID],
        auth: NamedDependency[AuthContext],
    ) -> ProfileOut:
        def load(session: Session) -> tuple[User, list[str]]:
            return users.get_user(session, user_id), rbac.effective_permissions(session, user_id)[0]

        user, roles = await auth.db.read(load)
        return services.profile_out(user, roles, full=_full_view(request.user, user_id))

    @patch(
        "/{user_id:uuid}/profile",
        opt={**requires(USERS_MANAGE), "allow_self": True},
        operation_id="updateProfile",
        summary="Change name or preferences (nothing else)",
    )
    async def update_profile(
        self,
        request: Request[Principal, object, object],
        user_id: FromPath[uuid.UUID],
        data: JSONBody[ProfileUpdate],
        auth: NamedDependency[AuthContext],
    ) -> ProfileOut:
        changes = {k: getattr(data, k) for k in data.__struct_fields__ if getattr(data, k) is not UNSET}

        def apply(session: Session) -> tuple[User, list[str]]:
            user = users.update_profile(session, users.get_user(session, user_id), changes)
            return user, rbac.effective_permissions(session, user_id)[0]

        user, roles = await auth.db.write(apply)
        return services.profile_out(user, roles, full=True)

    @put(
        "/{user_id:uuid}/roles",
        opt=requires(ROLES_MANAGE),
        operation_id="setRoles",
        summary="Replace a user's role grants (each may expire)",
    )
    async def set_roles(
        self,
        request: Request[Principal, object, object],
        user_id: FromPath[uuid.UUID],
        data: JSONBody[RolesUpdate],
        auth: NamedDependency[AuthContext],
    ) -> RolesOut:
        origin, actor = auth.origin(request), request.user.user_id
        grants = [(g.role, g.expires_at) for g in data.roles]
        for _, expires_at in grants:
            if expires_at is not None and expires_at.tzinfo is None:
                raise InvalidValue("expires_at must carry a timezone", field="roles.expires_at")

        def apply(session: Session) -> RolesOut:
            users.get_user(session, user_id)
            added, removed = rbac.set_roles(session, user_id, grants, assigned_by=actor)
            audit.record(
                session,
                audit.ROLES_CHANGED,
                user_id=actor,
                origin=origin,
                resource="user",
                resource_id=str(user_id),
                metadata={
                    "added": added,
                    "removed": removed,
                    "grants": [{"role": r, "expires_at": e.isoformat() if e else None} for r, e in grants],
                },
            )
            return _roles_out(session, user_id)

        result = await auth.db.write(apply)
        await auth.principals.invalidate(user_id)
        return result

    @get(
        "/{user_id:uuid}/roles",
        opt={**requires(USERS_READ), "allow_self": True},
        operation_id="getRoles",
        summary="A user's role grants, with expiry",
    )
    async def get_roles(self, user_id: FromPath[uuid.UUID], auth: NamedDependency[AuthContext]) -> RolesOut:
        def load(session: Session) -> RolesOut:
            users.get_user(session, user_id)  # an unknown user is a 404, as for the profile and PUT
            return _roles_out(session, user_id)

        return await auth.db.read(load)

    @post(
        "/{user_id:uuid}/mfa/enable",
        opt=requires(SELF),
        operation_id="enableMfa",
        status_code=200,
        summary="Start TOTP setup (needs your current password); confirm with a code to turn it on",
    )
    async def enable_mfa(
        self,
        request: Request[Principal, object, object],
        user_id: FromPath[uuid.UUID],
        data: JSONBody[MfaEnableRequest],
        auth: NamedDependency[AuthContext],
    ) -> MfaSetup:
        await services.check_current_password(auth, user_id, data.password, auth.origin(request))
        secret, uri = await auth.db.write(lambda s: mfa.begin_setup(s, users.get_user(s, user_id), auth.keys))
        return MfaSetup(
            secret=secret,
            provisioning_uri=uri,
            detail="add it to your authenticator, then POST a code to .../mfa/confirm",
        )

    @post(
        "/{user_id:uuid}/mfa/confirm",
        opt=requires(SELF),
        operation_id="confirmMfa",
        status_code=200,
        summary="Turn MFA on with a first code; returns single-use recovery codes (shown once)",
    )
    async def confirm_mfa(
        self,
        request: Request[Principal, object, object],
        user_id: FromPath[uuid.UUID],
        data: JSONBody[MfaConfirmRequest],
        auth: NamedDependency[AuthContext],
    ) -> RecoveryCodes:
        origin = auth.origin(request)
        codes = await auth.db.write(
            lambda s: mfa.confirm_setup(s, users.get_user(s, user_id), data.code, auth.keys, origin=origin)
        )
        return RecoveryCodes(recovery_codes=codes, detail="store these somewhere safe; each works once")

    @post(
        "/{user_id:uuid}/password",
        opt=requires(SELF),
        operation_id="changePassword",
        status_code=200,
        summary="Change your password (needs the current one); ends your other sessions",
    )
    async def change_password(
        self,
        request: Request[Principal, object, object],
        user_id: FromPath[uuid.UUID],
        data: JSONBody[PasswordChange],
        auth: NamedDependency[AuthContext],
    ) -> dict:
        origin, current = auth.origin(request), request.user.session_id
        user = await services.check_current_password(auth, user_id, data.current_password, origin)
        passwords.check_password_policy(data.new_password, username=user.username, email=user.email)
        password_hash = await auth.hashing.hash(data.new_password)

        def apply(session: Session) -> list[uuid.UUID]:
            users.set_password(
                session, users.get_user(session, user_id), password_hash, origin=origin, reason="changed"
            )
            return sessions.revoke_all(session, user_id, "password_changed", except_id=current)

        revoked = await auth.db.write(apply)
        await auth.principals.mark_revoked(revoked)
        return {"detail": "password changed", "sessions_ended": len(revoked)}


def _roles_out(session: Session, user_id: uuid.UUID) -> RolesOut:
    rows = session.execute(
        sa.select(Role.name, UserRole)
        .join(UserRole, UserRole.role_id == Role.id)
        .where(UserRole.user_id == user_id, UserRole.is_active.is_(True))
        .order_by(Role.name)
    )
    return RolesOut(
        user_id=user_id,
        roles=[
            RoleGrantOut(
                role=name, expires_at=g.expires_at, assigned_at=g.assigned_at, assigned_by=g.assigned_by
            )
            for name, g in rows
        ],
    )


class RolesController(Controller):
    path = "/api/v1/roles"
    tags = ["users"]

    @get(
        "/permissions",
        opt=requires(AUTHENTICATED),
        operation_id="rolePermissions",
        summary="Every role and its permissions (cached; the cache is cleared when roles change)",
    )
    async def permissions(self, auth: NamedDependency[AuthContext]) -> list[RolePermissions]:
        store = auth.principals.store
        cached = await store.get(PERMISSIONS_CACHE_KEY)
        if cached is not None:
            return msgspec.json.decode(cached, type=list[RolePermissions])
        rows = await auth.db.read(
            lambda s: [
                RolePermissions(
                    name=r.name,
                    description=r.description,
                    is_system_role=r.is_system_role,
                    permissions=sorted(r.permissions),
                )
                for r in s.scalars(sa.select(Role).order_by(Role.name))
            ]
        )
        await store.set(PERMISSIONS_CACHE_KEY, msgspec.json.encode(rows), expires_in=300)
        return rows


class AuditController(Controller):
    path = "/api/v1/audit"
    tags = ["users"]

    @get(
        "/activities",
        opt=requires(AUDIT_READ),
        operation_id="listActivities",
        summary="The audit trail, newest first, with filters",
    )
    async def activities(
        self,
        auth: NamedDependency[AuthContext],
        user_id: Annotated[uuid.UUID | None, QueryParameter()] = None,
        action: Annotated[str | None, QueryParameter(max_length=64)] = None,
        ip: Annotated[str | None, QueryParameter(max_length=64)] = None,
        since: Annotated[datetime | None, QueryParameter()] = None,
        until: Annotated[datetime | None, QueryParameter()] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, QueryParameter(max_length=64)] = None,
    ) -> ActivityPage:
        before = decode_cursor(cursor) if cursor else None
        rows = await auth.db.read(
            lambda s: audit.query(
                s,
                user_id=user_id,
                action=action,
                ip=ip,
                since=since,
                until=until,
                before_id=before,
                limit=limit + 1,
            )
        )
        items = [
            ActivityOut(
                id=r.id,
                user_id=r.user_id,
                action=r.action,
                resource=r.resource,
                resource_id=r.resource_id,
                ip_address=r.ip_address,
                user_agent=r.user_agent,
                timestamp=r.timestamp,
                metadata=r.meta,
            )
            for r in rows[:limit]
        ]
        return ActivityPage(
            items=items, next_cursor=encode_cursor(items[-1].id) if len(rows) > limit else None
        )
