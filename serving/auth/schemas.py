"""Request and response bodies of the auth, users, roles and audit APIs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

Password = Annotated[str, Meta(min_length=1, max_length=1024)]
Login = Annotated[str, Meta(min_length=1, max_length=254)]
ClientType = Literal["web", "mobile"]
DeviceId = Annotated[str, Meta(max_length=128)]


class LoginRequest(Struct, forbid_unknown_fields=True):
    login: Login  # username or email
    password: Password
    client_type: ClientType = "web"
    device_id: DeviceId = ""
    mfa_code: Annotated[str, Meta(max_length=12)] | None = None
    recovery_code: Annotated[str, Meta(max_length=32)] | None = None


class MfaLoginRequest(Struct, forbid_unknown_fields=True):
    challenge_token: Annotated[str, Meta(max_length=2048)]
    mfa_code: Annotated[str, Meta(max_length=12)] | None = None
    recovery_code: Annotated[str, Meta(max_length=32)] | None = None


class RefreshRequest(Struct, forbid_unknown_fields=True):
    refresh_token: Annotated[str, Meta(min_length=1, max_length=256)]
    device_id: DeviceId = ""


Locale = Annotated[
    str,
    Meta(
        pattern=r"^(ar|en)(-[A-Z]{2})?$",
        description="ar or en, optionally with a region (ar-SA); the language of the account's messages",
    ),
]


class RegisterRequest(Struct, forbid_unknown_fields=True):
    username: Annotated[str, Meta(max_length=64)]
    email: Annotated[str, Meta(max_length=254)]
    password: Password
    first_name: Annotated[str, Meta(max_length=100)] = ""
    last_name: Annotated[str, Meta(max_length=100)] = ""
    locale: Locale | None = None  # else the first of ar/en in the request's Accept-Language


class VerifyEmailRequest(Struct, forbid_unknown_fields=True):
    token: Annotated[str, Meta(min_length=1, max_length=256)]  # from the emailed link's `token=`


class PasswordResetRequest(Struct, forbid_unknown_fields=True):
    email: Annotated[str, Meta(max_length=254)]


class PasswordResetConfirm(Struct, forbid_unknown_fields=True):
    token: Annotated[str, Meta(max_length=256)]
    new_password: Password


class PasswordChange(Struct, forbid_unknown_fields=True):
    current_password: Password
    new_password: Password


class CreateUserRequest(Struct, forbid_unknown_fields=True):
    username: Annotated[str, Meta(max_length=64)]
    email: Annotated[str, Meta(max_length=254)]
    password: Password
    first_name: Annotated[str, Meta(max_length=100)] = ""
    last_name: Annotated[str, Meta(max_length=100)] = ""
    roles: Annotated[list[str], Meta(max_length=20)] = msgspec.field(default_factory=lambda: ["viewer"])


class ProfileUpdate(Struct, forbid_unknown_fields=True):
    """Only these fields; `is_active`, `is_verified`, `roles` and the like are refused by name."""

    first_name: Annotated[str, Meta(max_length=100)] | UnsetType = UNSET
    last_name: Annotated[str, Meta(max_length=100)] | UnsetType = UNSET
    preferences: dict[str, Any] | UnsetType = UNSET


class RoleGrant(Struct, forbid_unknown_fields=True):
    role: Annotated[str, Meta(max_length=64)]
    expires_at: datetime | None = None


class RolesUpdate(Struct, forbid_unknown_fields=True):
    roles: Annotated[list[RoleGrant], Meta(max_length=20)]


class MfaEnableRequest(Struct, forbid_unknown_fields=True):
    password: Password


class MfaConfirmRequest(Struct, forbid_unknown_fields=True):
    code: Annotated[str, Meta(max_length=12)]


class ProfileOut(Struct, omit_defaults=True):
    id: uuid.UUID
    username: str
    first_name: str
    last_name: str
    created_at: datetime
    email: str | None = None
    is_active: bool | None = None
    is_verified: bool | None = None
    mfa_enabled: bool | None = None
    last_login: datetime | None = None
    roles: list[str] | None = None
    preferences: dict[str, Any] | None = None


class TokenResponse(Struct):
    access_token: str
    expires_in: int
    session_id: uuid.UUID
    user: ProfileOut
    token_type: str = "Bearer"
    refresh_token: str | None = None


class MfaChallenge(Struct):
    challenge_token: str
    expires_in: int
    mfa_required: bool = True


class Accepted(Struct):
    detail: str


class MfaSetup(Struct):
    secret: str
    provisioning_uri: str
    detail: str


class RecoveryCodes(Struct):
    recovery_codes: list[str]
    detail: str


class SessionOut(Struct):
    session_id: uuid.UUID
    client_type: str
    device_id: str
    ip_address: str
    user_agent: str
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    current: bool


class RoleGrantOut(Struct):
    role: str
    expires_at: datetime | None
    assigned_at: datetime
    assigned_by: uuid.UUID | None


class RolesOut(Struct):
    user_id: uuid.UUID
    roles: list[RoleGrantOut]


class RolePermissions(Struct):
    name: str
    description: str
    is_system_role: bool
    permissions: list[str]


class ActivityOut(Struct):
    id: uuid.UUID
    user_id: uuid.UUID | None
    action: str
    resource: str
    resource_id: str
    ip_address: str
    user_agent: str
    timestamp: datetime
    metadata: dict[str, Any]


class ActivityPage(Struct):
    items: list[ActivityOut]
    next_cursor: str | None = None
