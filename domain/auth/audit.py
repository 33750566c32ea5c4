"""The audit trail: every authentication and authorization event, every publication decision
(publish, schedule, archive, delete) and every change to an import source, with who, from where,
and what."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from domain.schema import UserActivity, utcnow

# Actions recorded (the `action` column).
LOGIN_SUCCEEDED = "login.succeeded"
LOGIN_FAILED = "login.failed"
LOGIN_THROTTLED = "login.throttled"
MFA_CHALLENGED = "mfa.challenged"
MFA_SUCCEEDED = "mfa.succeeded"
MFA_FAILED = "mfa.failed"
MFA_ENABLED = "mfa.enabled"
MFA_RECOVERY_USED = "mfa.recovery_code_used"
TOKEN_REFRESHED = "token.refreshed"
TOKEN_REUSE_DETECTED = "token.reuse_detected"
TOKEN_REJECTED = "token.rejected"
SESSION_REVOKED = "session.revoked"
LOGOUT = "logout"
ROLES_CHANGED = "roles.changed"
PASSWORD_CHANGED = "password.changed"
PASSWORD_RESET_REQUESTED = "password.reset_requested"
PASSWORD_CHECK_FAILED = "password.check_failed"  # a wrong current password (change, MFA setup)
PERMISSION_DENIED = "permission.denied"
USER_CREATED = "user.created"
USER_REGISTERED = "user.registered"
EMAIL_VERIFIED = "email.verified"
SSO_LOGIN = "sso.login"
# Decisions about what the public sees (domain.content): who published, scheduled, archived, deleted.
CONTENT_PUBLISHED = "content.published"
CONTENT_SCHEDULED = "content.scheduled"
CONTENT_ARCHIVED = "content.archived"
CONTENT_DELETED = "content.deleted"
# Import sources (domain.imports.sources): who added, paused, resumed or deleted one.
IMPORT_SOURCE_CREATED = "import_source.created"
IMPORT_SOURCE_PAUSED = "import_source.paused"
IMPORT_SOURCE_RESUMED = "import_source.resumed"
IMPORT_SOURCE_DELETED = "import_source.deleted"


@dataclass(frozen=True)
class Origin:
    """Where a request came from (resolved through the trusted-proxy setting)."""

    ip: str = ""
    user_agent: str = ""


def record(
    session: Session,
    action: str,
    *,
    user_id: uuid.UUID | None = None,
    origin: Origin = Origin(),
    resource: str = "",
    resource_id: str = "",
    metadata: dict[str, Any] | None = None,
) -> UserActivity:
    activity = UserActivity(
        user_id=user_id,
        action=action,
        resource=resource,
        resource_id=str(resource_id),
        ip_address=origin.ip[:64],
        user_agent=origin.user_agent[:500],
        timestamp=utcnow(),
        meta=metadata or {},
    )
    session.add(activity)
    return activity


def query(
    session: Session,
    *,
    user_id: uuid.UUID | None = None,
    action: str | None = None,
    ip: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: uuid.UUID | None = None,
    limit: int = 50,
) -> list[UserActivity]:
    """Newest first; `before_id` is the cursor (ids are UUIDv7, so they order by time)."""
    stmt = sa.select(UserActivity)
    if user_id:
        stmt = stmt.where(UserActivity.user_id == user_id)
    if action:
        stmt = stmt.where(UserActivity.action == action)
    if ip:
        stmt = stmt.where(UserActivity.ip_address == ip)
    if since:
        stmt = stmt.where(UserActivity.timestamp >= since)
    if until:
        stmt = stmt.where(UserActivity.timestamp < until)
    if before_id:
        stmt = stmt.where(UserActivity.id < before_id)
    return list(session.scalars(stmt.order_by(UserActivity.id.desc()).limit(limit)))
