"""Every route declares the permission it needs in its `opt`; the auth guards enforce it.

`PUBLIC` marks routes open to anyone (health, docs). A test walks every route and fails if one
declares nothing.
"""

from __future__ import annotations

PUBLIC = "public"
CONTENT_READ = "content:read"
CONTENT_CREATE = "content:create"
CONTENT_UPDATE = "content:update"
CONTENT_DELETE = "content:delete"
CONTENT_PUBLISH = "content:publish"


def requires(permission: str) -> dict[str, str]:
    """Route options declaring a permission: `@get(..., opt=requires(CONTENT_READ))`."""
    return {"permission": permission}
