"""`/api/v1/auth`: login (with the MFA challenge step), refresh, logout, registration, email
verification, password reset, and your own sessions."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.enums import MediaType, RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.params import Body, FromPath, JSONBody, QueryParameter
from sqlalchemy.orm import Session

from domain.auth import audit, passwords, sessions, users
from domain.auth.keys import Keyring
from domain.errors import InvalidValue
from domain.notifications import account
from domain.notifications.service import user_locale
from domain.schema import User, UserSession
from serving.auth import pages, services
from serving.auth.principal import Principal
from serving.auth.schemas import (
    Accepted,
    LoginRequest,
    MfaChallenge,
    MfaLoginRequest,
    PasswordResetConfirm,
    PasswordResetRequest,
    ProfileOut,
    RefreshRequest,
    RegisterRequest,
    SessionOut,
    TokenResponse,
    VerifyEmailRequest,
)
from serving.auth.security import AuthContext
from serving.permissions import AUTHENTICATED, PUBLIC, requires

VERIFY_FORM_MAX_BYTES = 4096


class AuthController(Controller):
    path = "/api/v1/auth"
    tags = ["auth"]

    @post(
        "/login",
        opt=requires(PUBLIC),
        operation_id="login",
        status_code=200,
        summary="Log in with username or email and password (and an MFA code when enabled)",
    )
    async def login(
        self, request: Request, data: JSONBody[LoginRequest], auth: NamedDependency[AuthContext]
    ) -> TokenResponse | MfaChallenge:
        return await services.login(auth, data, auth.origin(request))

    @post(
        "/login/mfa",
        opt=requires(PUBLIC),
        operation_id="loginMfa",
        status_code=200,
        summary="Second step of an MFA login: the challenge token and a TOTP or recovery code",
    )
    async def login_mfa(
        self, request: Request, data: JSONBody[MfaLoginRequest], auth: NamedDependency[AuthContext]
    ) -> TokenResponse:
        return await services.login_mfa(
            auth, data.challenge_token, data.mfa_code, data.recovery_code, auth.origin(request)
        )

    @post(
        "/refresh",
        opt=requires(PUBLIC),
        operation_id="refresh",
        status_code=200,
        summary="Exchange a refresh token for a new access token (the refresh token rotates)",
    )
    async def refresh(
        self, request: Request, data: JSONBody[RefreshRequest], auth: NamedDependency[AuthContext]
    ) -> TokenResponse:
        return await services.refresh(auth, data.refresh_token, data.device_id, auth.origin(request))

    @post(
        "/logout",
        opt=requires(AUTHENTICATED),
        operation_id="logout",
        status_code=204,
        summary="End the current session",
    )
    async def logout(
        self, request: Request[Principal, object, object], auth: NamedDependency[AuthContext]
    ) -> None:
        principal, origin = request.user, auth.origin(request)
        if principal.session_id is None:
            return

        def end(session: Session) -> None:
            row = session.get(UserSession, principal.session_id)
            if row is not None:
                sessions.revoke(session, row, "logout")
            audit.record(
                session,
                audit.LOGOUT,
                user_id=principal.user_id,
                origin=origin,
                resource="session",
                resource_id=str(principal.session_id),
            )

        await auth.db.write(end)
        await auth.principals.mark_revoked([principal.session_id])

    @get(
        "/sessions", opt=requires(AUTHENTICATED), operation_id="listSessions", summary="Your active sessions"
    )
    async def list_sessions(
        self, request: Request[Principal, object, object], auth: NamedDependency[AuthContext]
    ) -> list[SessionOut]:
        principal = request.user
        rows = await auth.db.read(lambda s: sessions.list_active(s, principal.user_id))
        return [
            SessionOut(
                session_id=r.session_id,
                client_type=r.client_type,
                device_id=r.device_id,
                ip_address=r.ip_address,
                user_agent=r.user_agent,
                created_at=r.created_at,
                last_used_at=r.last_used_at,
                expires_at=r.expires_at,
                current=r.session_id == principal.session_id,
            )
            for r in rows
        ]

    @delete(
        "/sessions/{session_id:uuid}",
        opt=requires(AUTHENTICATED),
        operation_id="revokeSession",
        summary="Revoke one of your sessions",
    )
    async def revoke_session(
        self,
        request: Request[Principal, object, object],
        session_id: FromPath[uuid.UUID],
        auth: NamedDependency[AuthContext],
    ) -> None:
        principal, origin = request.user, auth.origin(request)

        def revoke(session: Session) -> bool:
            row = session.get(UserSession, session_id)
            if row is None or row.user_id != principal.user_id or not row.is_active:
                return False
            sessions.revoke(session, row, "revoked_by_user")
            audit.record(
                session,
                audit.SESSION_REVOKED,
                user_id=principal.user_id,
                origin=origin,
                resource="session",
                resource_id=str(session_id),
            )
            return True

        if not await auth.db.write(revoke):
            raise NotFoundException(f"you have no active session {session_id}")
        await auth.principals.mark_revoked([session_id])

    @get("/me", opt=requires(AUTHENTICATED), operation_id="me", summary="Who you are and what you may do")
    async def me(
        self, request: Request[Principal, object, object], auth: NamedDependency[AuthContext]
    ) -> dict:
        principal = request.user
        return {
            "user_id": str(principal.user_id),
            "username": principal.username,
            "roles": list(principal.roles),
            "permissions": sorted(principal.permissions),
            "via": principal.via,
            "session_id": str(principal.session_id) if principal.session_id else None,
        }

    @post(
        "/register",
        opt=requires(PUBLIC),
        operation_id="register",
        status_code=202,
        summary="Create an account; it stays inactive until the emailed link is followed and confirmed",
    )
    async def register(
        self, request: Request, data: JSONBody[RegisterRequest], auth: NamedDependency[AuthContext]
    ) -> Accepted:
        email = users.normalize_email(data.email)
        users.normalize_username(data.username)
        passwords.check_password_policy(data.password, username=data.username, email=data.email)
        origin = auth.origin(request)
        # Per client IP and per address, before the password is hashed (the login's hashing queue)
        # and before any mail goes out.
        await services.limited(auth, origin, "signup", email)
        password_hash = await auth.hashing.hash(data.password)
        locale = data.locale or services.accept_language(request.headers.get("accept-language"))

        def create(session: Session) -> tuple[str, str] | None:
            user = users.register(
                session,
                users.NewUser(
                    username=data.username,
                    email=data.email,
                    password_hash=password_hash,
                    first_name=data.first_name,
                    last_name=data.last_name,
                    preferences={"locale": locale} if locale else {},
                ),
                origin=origin,
            )
            if user is None:
                return None
            return user.email, users.issue_link_token(session, user, "verify_email", auth.keys)

        created = await auth.db.write(create)
        if created is not None:
            email, token = created
            link = services.link(auth, "/api/v1/auth/verify-email", token)
            await services.send_account_mail(auth, account.VERIFY_EMAIL, email, link=link, locale=locale)
        return Accepted("check your inbox: follow the link we sent to activate the account")

    @get(
        "/verify-email",
        opt=requires(PUBLIC),
        operation_id="verifyEmailPage",
        media_type=MediaType.HTML,
        summary="The page the emailed link opens: a button that confirms (opening it changes nothing)",
    )
    async def verify_email_page(
        self, token: Annotated[str, QueryParameter(max_length=256)], auth: NamedDependency[AuthContext]
    ) -> Response[str]:
        try:
            await auth.db.read(lambda s: users.check_link_token(s, token, "verify_email", auth.keys))
        except InvalidValue as exc:
            return pages.verify_email_page("invalid", detail=exc.detail, status_code=422)
        return pages.verify_email_page("confirm", token=token)

    @post(
        "/verify-email",
        opt=requires(PUBLIC),
        operation_id="verifyEmail",
        status_code=200,
        summary="Verify the address with the emailed token: activates the account (single use, 24 h)",
    )
    async def verify_email(
        self, request: Request, data: JSONBody[VerifyEmailRequest], auth: NamedDependency[AuthContext]
    ) -> ProfileOut:
        user = await _verify(auth, data.token, auth.origin(request))
        return services.profile_out(user, None, full=False)

    @post(
        "/verify-email/form",
        opt=requires(PUBLIC),
        operation_id="verifyEmailForm",
        status_code=200,
        media_type=MediaType.HTML,
        request_max_body_size=VERIFY_FORM_MAX_BYTES,
        summary="The verification page's button (an HTML form post; answers an HTML page)",
    )
    async def verify_email_form(
        self,
        request: Request,
        data: Annotated[VerifyForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
        auth: NamedDependency[AuthContext],
    ) -> Response[str]:
        try:
            await _verify(auth, data.token[:256], auth.origin(request))
        except InvalidValue as exc:
            return pages.verify_email_page("invalid", detail=exc.detail, status_code=422)
        return pages.verify_email_page("done")

    @post(
        "/password-reset",
        opt=requires(PUBLIC),
        operation_id="requestPasswordReset",
        status_code=202,
        summary="Email a password-reset link (the answer is the same whether the address exists)",
    )
    async def request_reset(
        self, request: Request, data: JSONBody[PasswordResetRequest], auth: NamedDependency[AuthContext]
    ) -> Accepted:
        origin = auth.origin(request)
        # Counted per client IP and per address, known or not (the limit reveals no account).
        await services.limited(auth, origin, "reset", data.email.strip().lower())

        def issue(session: Session) -> tuple[str, str, str] | None:
            user = users.find_by_login(session, data.email) if "@" in data.email else None
            if user is None or not user.is_active or user.password_hash is None:
                return None
            audit.record(session, audit.PASSWORD_RESET_REQUESTED, user_id=user.id, origin=origin)
            token = users.issue_link_token(session, user, "reset_password", auth.keys)
            return user.email, token, user_locale(user, auth.settings.notification_default_language)

        issued = await auth.db.write(issue)
        if issued is not None:
            email, token, locale = issued
            link = services.link(auth, "/api/v1/auth/password-reset/confirm", token)
            await services.send_account_mail(auth, account.PASSWORD_RESET, email, link=link, locale=locale)
        return Accepted("if the address has an account, a reset link is on its way")

    @post(
        "/password-reset/confirm",
        opt=requires(PUBLIC),
        operation_id="confirmPasswordReset",
        status_code=200,
        summary="Set a new password with the emailed token; ends every session of the account",
    )
    async def confirm_reset(
        self, request: Request, data: JSONBody[PasswordResetConfirm], auth: NamedDependency[AuthContext]
    ) -> Accepted:
        origin = auth.origin(request)
        user = await auth.db.read(lambda s: services.UserView.of(_token_owner(s, data.token, auth.keys)))
        passwords.check_password_policy(data.new_password, username=user.username, email=user.email)
        password_hash = await auth.hashing.hash(data.new_password)

        def apply(session: Session) -> list[uuid.UUID]:
            owner = users.consume_link_token(session, data.token, "reset_password", auth.keys)
            # Also voids the account's other reset links.
            users.set_password(session, owner, password_hash, origin=origin, reason="reset")
            return sessions.revoke_all(session, owner.id, "password_reset")

        await auth.principals.mark_revoked(await auth.db.write(apply))
        return Accepted("password changed; every session was signed out")


@dataclass
class VerifyForm:
    """The verification page's form: the token from the link, in a hidden field."""

    token: str = ""


async def _verify(auth: AuthContext, token: str, origin: audit.Origin) -> User:
    # The welcome goes out through the notifications (the `user.verified` event), in the user's language.
    return await auth.db.write(lambda s: users.verify_email(s, token, auth.keys, origin=origin))


def _token_owner(session: Session, token: str, keys: Keyring) -> User:
    """Check the reset token without consuming it (it is consumed with the change)."""
    return users.check_link_token(session, token, "reset_password", keys)


__all__ = ["AuthController"]
