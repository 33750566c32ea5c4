"""Every route declares the permission it needs in its `opt`; the app-wide guard enforces it.

`PUBLIC` routes are open to anyone and skip authentication (health, docs, login). `AUTHENTICATED`
routes need a valid token but no particular permission (your own sessions, logout). Everything
else names a permission string from `domain.auth.rbac`. A test walks every route for every role.
"""

from __future__ import annotations

from typing import Any

from domain.auth.rbac import (  # noqa: F401  (re-exported for controllers)
    ANALYTICS_MANAGE,
    ANALYTICS_READ,
    AUDIT_READ,
    CONTENT_CREATE,
    CONTENT_DELETE,
    CONTENT_PUBLISH,
    CONTENT_READ,
    CONTENT_READ_UNPUBLISHED,
    CONTENT_UPDATE,
    HEALTH_READ,
    MEDIA_UPLOAD,
    NOTIFICATIONS_BROADCAST,
    NOTIFICATIONS_MANAGE,
    NOTIFICATIONS_SEND,
    ROLES_MANAGE,
    USERS_MANAGE,
    USERS_READ,
)

PUBLIC = "public"
AUTHENTICATED = "authenticated"
SELF = "self"  # only the user named by the {user_id} path parameter


def requires(permission: str) -> dict[str, object]:
    """Route options declaring a permission: `@get(..., opt=requires(CONTENT_READ))`."""
    if permission == PUBLIC:
        return {"permission": PUBLIC, "exclude_from_auth": True}
    return {"permission": permission}


def holds(request: Any, permission: str) -> bool:
    """Whether the caller holds `permission`; False for an anonymous caller (a route declared
    PUBLIC runs without a principal)."""
    user = request.scope.get("user")
    return user is not None and user.can(permission)
