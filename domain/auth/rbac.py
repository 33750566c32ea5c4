"""Role-based access control: permissions are strings, roles are named sets of them, and a user's
permissions are the union over the roles they hold that are active and not expired."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from domain.errors import InvalidValue, NotFound
from domain.schema import Role, User, UserRole, utcnow

# Every permission the platform checks. Routes declare one of these (or PUBLIC / AUTHENTICATED).
CONTENT_READ = "content:read"  # published items and their public media
CONTENT_READ_UNPUBLISHED = "content:read_unpublished"  # drafts, items in review, embargoed (scheduled)
CONTENT_CREATE = "content:create"
CONTENT_UPDATE = "content:update"
CONTENT_DELETE = "content:delete"
CONTENT_PUBLISH = "content:publish"
MEDIA_UPLOAD = "media:upload"
IMPORT_MANAGE = "import:manage"
USERS_READ = "users:read"
USERS_MANAGE = "users:manage"
ROLES_MANAGE = "roles:manage"
AUDIT_READ = "audit:read"
ANALYTICS_READ = "analytics:read"
ANALYTICS_MANAGE = "analytics:manage"  # report definitions and alert rules
HEALTH_READ = "health:read"  # the detailed health of every backend
NOTIFICATIONS_BROADCAST = "notifications:broadcast"
NOTIFICATIONS_SEND = "notifications:send"
NOTIFICATIONS_MANAGE = "notifications:manage"  # templates, other users' deliveries

ALL_PERMISSIONS: tuple[str, ...] = (
    CONTENT_READ,
    CONTENT_READ_UNPUBLISHED,
    CONTENT_CREATE,
    CONTENT_UPDATE,
    CONTENT_DELETE,
    CONTENT_PUBLISH,
    MEDIA_UPLOAD,
    IMPORT_MANAGE,
    USERS_READ,
    USERS_MANAGE,
    ROLES_MANAGE,
    AUDIT_READ,
    ANALYTICS_READ,
    ANALYTICS_MANAGE,
    HEALTH_READ,
    NOTIFICATIONS_BROADCAST,
    NOTIFICATIONS_SEND,
    NOTIFICATIONS_MANAGE,
)

SYSTEM_ROLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "admin": ("Everything, including users, roles and the audit trail.", ALL_PERMISSIONS),
    "editor": (
        "Edits, publishes and deletes any content; uploads media; runs imports; sends notifications and broadcasts; edits notification templates.",
        (
            CONTENT_READ,
            CONTENT_READ_UNPUBLISHED,
            CONTENT_CREATE,
            CONTENT_UPDATE,
            CONTENT_DELETE,
            CONTENT_PUBLISH,
            MEDIA_UPLOAD,
            IMPORT_MANAGE,
            NOTIFICATIONS_BROADCAST,
            NOTIFICATIONS_SEND,
            NOTIFICATIONS_MANAGE,
            ANALYTICS_READ,
            ANALYTICS_MANAGE,
        ),
    ),
    "author": (
        "Writes and updates content (drafts and items in review) and uploads media; cannot publish.",
        (CONTENT_READ, CONTENT_READ_UNPUBLISHED, CONTENT_CREATE, CONTENT_UPDATE, MEDIA_UPLOAD),
    ),
    "analyst": (
        "Reads published content, analytics and the platform's health.",
        (CONTENT_READ, ANALYTICS_READ, HEALTH_READ),
    ),
    "viewer": ("Reads published content.", (CONTENT_READ,)),
}
DEFAULT_ROLE = "viewer"


def seed_system_roles(session: Session) -> None:
    """Create or refresh the system roles (idempotent; run at migration/start time)."""
    existing = {r.name: r for r in session.scalars(sa.select(Role).where(Role.name.in_(SYSTEM_ROLES)))}
    now = utcnow()
    for name, (description, permissions) in SYSTEM_ROLES.items():
        role = existing.get(name)
        if role is None:
            session.add(
                Role(name=name, description=description, permissions=list(permissions), is_system_role=True)
            )
        elif sorted(role.permissions) != sorted(permissions) or role.description != description:
            role.permissions = list(permissions)
            role.description = description
            role.updated_at = now
    session.flush()


def active_grants(
    session: Session, user_id: uuid.UUID, now: datetime | None = None
) -> list[tuple[Role, UserRole]]:
    now = now or utcnow()
    query = (
        sa.select(Role, UserRole)
        .join(UserRole, UserRole.role_id == Role.id)
        .where(UserRole.user_id == user_id, _in_force(now))
        .order_by(Role.name)
    )
    return [(role, grant) for role, grant in session.execute(query)]


def _in_force(now: datetime) -> sa.ColumnElement[bool]:
    """A grant that is active and not expired at `now`."""
    return sa.and_(
        UserRole.is_active.is_(True), sa.or_(UserRole.expires_at.is_(None), UserRole.expires_at > now)
    )


def users_with_roles(session: Session, names: Sequence[str], now: datetime) -> list[uuid.UUID]:
    """Active users holding one of `names` through a grant in force at `now`, ordered by id (the
    recipients of role-addressed notifications and alerts)."""
    if not names:
        return []
    query = (
        sa.select(UserRole.user_id)
        .join(Role, Role.id == UserRole.role_id)
        .join(User, User.id == UserRole.user_id)
        .where(Role.name.in_(list(names)), _in_force(now), User.is_active.is_(True))
        .distinct()
        .order_by(UserRole.user_id)
    )
    return list(session.scalars(query))


def effective_permissions(
    session: Session, user_id: uuid.UUID, now: datetime | None = None
) -> tuple[list[str], list[str], datetime | None]:
    """(role names, permissions, the earliest expiry among the grants or None): callers cache the
    result no longer than that expiry, so an expired role stops working on time."""
    grants = active_grants(session, user_id, now)
    roles = [role.name for role, _ in grants]
    permissions = sorted({p for role, _ in grants for p in role.permissions})
    expiries = [grant.expires_at for _, grant in grants if grant.expires_at is not None]
    return roles, permissions, min(expiries) if expiries else None


def roles_by_name(session: Session, names: list[str]) -> dict[str, Role]:
    found = {r.name: r for r in session.scalars(sa.select(Role).where(Role.name.in_(names)))}
    unknown = sorted(set(names) - set(found))
    if unknown:
        raise InvalidValue(f"unknown role(s): {', '.join(unknown)}", field="roles")
    return found


def set_roles(
    session: Session,
    user_id: uuid.UUID,
    grants: list[tuple[str, datetime | None]],
    *,
    assigned_by: uuid.UUID | None,
    now: datetime | None = None,
) -> tuple[list[str], list[str]]:
    """Replace the user's role grants with `grants` ((role name, expires_at)); returns (added, removed)."""
    now = now or utcnow()
    for _, expires_at in grants:
        if expires_at is not None and expires_at <= now:
            raise InvalidValue("expires_at must be in the future", field="roles.expires_at")
    wanted = roles_by_name(session, [name for name, _ in grants])
    current = {
        grant.role_id: grant
        for grant in session.scalars(sa.select(UserRole).where(UserRole.user_id == user_id))
    }
    names_by_id = {r.id: r.name for r in session.scalars(sa.select(Role).where(Role.id.in_(list(current))))}
    added, removed = [], []
    keep = set()
    for name, expires_at in grants:
        role = wanted[name]
        keep.add(role.id)
        grant = current.get(role.id)
        if grant is None:
            session.add(
                UserRole(
                    user_id=user_id,
                    role_id=role.id,
                    assigned_by=assigned_by,
                    assigned_at=now,
                    expires_at=expires_at,
                    is_active=True,
                )
            )
            added.append(name)
        else:
            if not grant.is_active:
                added.append(name)
            grant.is_active = True
            grant.expires_at = expires_at
            grant.assigned_by = assigned_by
            grant.assigned_at = now
    for role_id, grant in current.items():
        if role_id not in keep:
            session.delete(grant)
            removed.append(names_by_id.get(role_id, str(role_id)))
    session.flush()
    return added, removed


def grant_role(
    session: Session,
    user_id: uuid.UUID,
    role_name: str,
    *,
    assigned_by: uuid.UUID | None = None,
    expires_at: datetime | None = None,
) -> None:
    role = session.scalar(sa.select(Role).where(Role.name == role_name))
    if role is None:
        raise NotFound(f"role {role_name!r} does not exist")
    grant = session.get(UserRole, (user_id, role.id))
    if grant is None:
        session.add(
            UserRole(user_id=user_id, role_id=role.id, assigned_by=assigned_by, expires_at=expires_at)
        )
    else:
        grant.is_active, grant.expires_at = True, expires_at
    session.flush()


def permissions_by_role(session: Session) -> dict[str, list[str]]:
    return {r.name: sorted(r.permissions) for r in session.scalars(sa.select(Role).order_by(Role.name))}
