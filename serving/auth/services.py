"""The login, refresh, registration and reset flows (orchestrating domain rules, hashing under its
concurrency cap, the throttle and the account emails)."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt as pyjwt
from litestar.exceptions import (
    NotAuthorizedException,
    PermissionDeniedException,
    ServiceUnavailableException,
    TooManyRequestsException,
)
from sqlalchemy.orm import Session

from domain.auth import audit, mfa, rbac, sessions, users
from domain.auth.keys import MFA_CHALLENGE
from domain.errors import InvalidValue
from domain.ids import new_id
from domain.notifications import account
from domain.notifications.outgoing import DeliveryFailed, Outgoing
from domain.schema import User, UserSession
from serving.auth.schemas import LoginRequest, MfaChallenge, ProfileOut, TokenResponse
from serving.auth.security import AuthContext, signing_key
from serving.auth.throttle import account_key

MFA_CHALLENGE_TTL = 300
INVALID_CREDENTIALS = "invalid login or password"


@dataclass(frozen=True)
class UserView:
    """A detached copy of the columns the flows need (no lazy loads across threads)."""

    id: uuid.UUID
    username: str
    email: str
    first_name: str
    password_hash: str | None
    is_active: bool
    is_verified: bool
    mfa_enabled: bool

    @classmethod
    def of(cls, user: User | None) -> UserView | None:
        if user is None:
            return None
        return cls(
            user.id,
            user.username,
            user.email,
            user.first_name,
            user.password_hash,
            user.is_active,
            user.is_verified,
            user.mfa_enabled,
        )


def profile_out(user: User, roles: list[str] | None, *, full: bool) -> ProfileOut:
    out = ProfileOut(
        id=user.id,
        username=user.username,
        first_name=user.first_name,
        last_name=user.last_name,
        created_at=user.created_at,
    )
    if full:
        out.email, out.is_active, out.is_verified = user.email, user.is_active, user.is_verified
        out.mfa_enabled, out.last_login, out.roles, out.preferences = (
            user.mfa_enabled,
            user.last_login,
            roles,
            user.preferences,
        )
    return out


async def _too_many(ctx: AuthContext, origin: audit.Origin, wait: float, what: str, flow: str) -> None:
    seconds = math.ceil(wait)
    await ctx.db.write(
        lambda s: audit.record(
            s, audit.LOGIN_THROTTLED, origin=origin, metadata={"retry_after": seconds, "flow": flow}
        )
    )
    raise TooManyRequestsException(
        detail=f"too many {what}; try again in {seconds} s", headers={"Retry-After": str(seconds)}
    )


async def _throttled(
    ctx: AuthContext, origin: audit.Origin, account: str, what: str = "failed logins", flow: str = "login"
) -> None:
    wait = await ctx.throttle.check(origin.ip, account)
    if wait:
        await _too_many(ctx, origin, wait, what, flow)


async def limited(ctx: AuthContext, origin: audit.Origin, flow: str, target: str) -> None:
    """Count one registration (`flow="signup"`) or reset request (`"reset"`) against the client IP
    and the target address; 429 with Retry-After when either is at its limit. Call it before
    hashing or mailing anything."""
    wait = await getattr(ctx.throttle, flow).hit(origin.ip, target)
    if wait:
        what = "registrations" if flow == "signup" else "password-reset requests"
        await _too_many(ctx, origin, wait, what, flow)


async def _failed(
    ctx: AuthContext,
    origin: audit.Origin,
    account: str,
    user_id: uuid.UUID | None,
    reason: str,
    action: str = audit.LOGIN_FAILED,
) -> None:
    await ctx.throttle.record_failure(origin.ip, account)
    await ctx.db.write(
        lambda s: audit.record(s, action, user_id=user_id, origin=origin, metadata={"reason": reason})
    )


async def check_current_password(
    ctx: AuthContext, user_id: uuid.UUID, password: str, origin: audit.Origin
) -> UserView:
    """A signed-in user's current password (password change, MFA setup), throttled in the account's
    login bucket: guesses through a stolen session cost the same as guesses at the login."""
    account = account_key(user_id)
    await _throttled(ctx, origin, account, "wrong passwords", "current_password")
    user = await ctx.db.read(lambda s: UserView.of(users.get_user(s, user_id)))
    ok, _ = await ctx.hashing.verify(user.password_hash, password)
    if not ok:
        await _failed(ctx, origin, account, user_id, "current_password", audit.PASSWORD_CHECK_FAILED)
        raise InvalidValue("the current password is wrong", field="password")
    await ctx.throttle.record_success(account)
    return user


async def login(ctx: AuthContext, data: LoginRequest, origin: audit.Origin) -> TokenResponse | MfaChallenge:
    user = await ctx.db.read(lambda s: UserView.of(users.find_by_login(s, data.login)))
    # One bucket per account, whichever of its login names was typed; unknown names count by name.
    account = account_key(user.id) if user else data.login.strip().lower()
    await _throttled(ctx, origin, account)
    ok, new_hash = await ctx.hashing.verify(user.password_hash if user else None, data.password)
    if not ok or user is None:
        await _failed(ctx, origin, account, user.id if user else None, "password")
        raise NotAuthorizedException(INVALID_CREDENTIALS)
    if not user.is_verified:
        await _failed(ctx, origin, account, user.id, "unverified")
        raise PermissionDeniedException("verify your email address first: follow the link we sent")
    if not user.is_active:
        await _failed(ctx, origin, account, user.id, "inactive")
        raise PermissionDeniedException("this account is disabled")
    if user.mfa_enabled:
        if not (data.mfa_code or data.recovery_code):
            await ctx.db.write(
                lambda s: audit.record(s, audit.MFA_CHALLENGED, user_id=user.id, origin=origin)
            )
            return MfaChallenge(
                challenge_token=_challenge_token(ctx, user.id, data), expires_in=MFA_CHALLENGE_TTL
            )
        await _second_factor(ctx, user.id, account, data.mfa_code, data.recovery_code, origin)
    await ctx.throttle.record_success(account)
    return await _complete(ctx, user.id, data.client_type, data.device_id, origin, new_hash)


async def login_mfa(
    ctx: AuthContext, challenge: str, code: str | None, recovery: str | None, origin: audit.Origin
) -> TokenResponse:
    try:
        claims = pyjwt.decode(
            challenge,
            signing_key(ctx.keys, MFA_CHALLENGE, challenge),
            algorithms=["HS256"],
            audience=ctx.settings.jwt_audience,
            issuer=ctx.settings.jwt_issuer,
            options={"require": ["exp", "sub", "typ"]},
        )
    except (pyjwt.PyJWTError, NotAuthorizedException) as exc:
        raise NotAuthorizedException("the MFA challenge is invalid or expired; log in again") from exc
    if claims.get("typ") != "mfa_challenge":
        raise NotAuthorizedException("not an MFA challenge token")
    user_id = uuid.UUID(claims["sub"])
    account = account_key(user_id)
    await _throttled(ctx, origin, account)
    await _second_factor(ctx, user_id, account, code, recovery, origin)
    await ctx.throttle.record_success(account)
    return await _complete(ctx, user_id, claims.get("ct", "web"), claims.get("dev", ""), origin, None)


def _challenge_token(ctx: AuthContext, user_id: uuid.UUID, data: LoginRequest) -> str:
    now = datetime.now(UTC)
    key = ctx.keys.current(MFA_CHALLENGE)
    return pyjwt.encode(
        {
            "sub": str(user_id),
            "typ": "mfa_challenge",
            "iss": ctx.settings.jwt_issuer,
            "aud": ctx.settings.jwt_audience,
            "iat": now,
            "exp": now + timedelta(seconds=MFA_CHALLENGE_TTL),
            "ct": data.client_type,
            "dev": data.device_id,
        },
        key.material,
        algorithm="HS256",
        headers={"kid": key.kid},
    )


async def _second_factor(
    ctx: AuthContext,
    user_id: uuid.UUID,
    account: str,
    code: str | None,
    recovery: str | None,
    origin: audit.Origin,
) -> None:
    def check(session: Session) -> bool:
        # The row lock makes "newer than the last accepted step" atomic: a code is never accepted twice.
        user = session.get(User, user_id, with_for_update=True)
        if user is None:
            return False
        return mfa.check_second_factor(
            session, user, ctx.keys, code=code, recovery_code=recovery, origin=origin
        )

    if not await ctx.db.write(check):
        await ctx.throttle.record_failure(origin.ip, account)
        raise NotAuthorizedException("the MFA code is wrong or was already used")


async def _complete(
    ctx: AuthContext,
    user_id: uuid.UUID,
    client_type: str,
    device_id: str,
    origin: audit.Origin,
    new_hash: str | None,
) -> TokenResponse:
    jti_holder: dict[str, str] = {}

    def open_session(session: Session) -> tuple[UserSession, str, User, list[str]]:
        user = users.get_user(session, user_id)
        if new_hash:
            user.password_hash = new_hash  # bcrypt import or outdated argon2 parameters: upgrade now
        row, refresh = sessions.open_session(
            session, user, client_type=client_type, device_id=device_id, origin=origin
        )
        token, jti = ctx.issue_access_token(user.id, row.session_id)
        jti_holder["token"] = token
        sessions.note_access_token(row, jti)
        audit.record(
            session,
            audit.LOGIN_SUCCEEDED,
            user_id=user.id,
            origin=origin,
            resource="session",
            resource_id=str(row.session_id),
            metadata={"client_type": client_type},
        )
        roles, _, _ = rbac.effective_permissions(session, user.id)
        return row, refresh, user, roles

    row, refresh, user, roles = await ctx.db.write(open_session)
    return TokenResponse(
        access_token=jti_holder["token"],
        expires_in=ctx.settings.access_token_ttl_seconds,
        session_id=row.session_id,
        user=profile_out(user, roles, full=True),
        refresh_token=refresh,
    )


async def refresh(ctx: AuthContext, token: str, device_id: str, origin: audit.Origin) -> TokenResponse:
    issued: dict[str, str] = {}

    def rotate(session: Session) -> tuple[sessions.Refreshed | sessions.Rejected, list[str]]:
        result = sessions.refresh(session, token, device_id=device_id, origin=origin)
        if isinstance(result, sessions.Rejected):
            return result, []  # committed: a reused family stays revoked, the audit record stays
        access, jti = ctx.issue_access_token(result.user.id, result.session.session_id)
        issued["token"] = access
        sessions.note_access_token(result.session, jti)
        audit.record(
            session,
            audit.TOKEN_REFRESHED,
            user_id=result.user.id,
            origin=origin,
            resource="session",
            resource_id=str(result.session.session_id),
            metadata={"rotated": result.refresh_token is not None},
        )
        roles, _, _ = rbac.effective_permissions(session, result.user.id)
        return result, roles

    result, roles = await ctx.db.write(rotate)
    if isinstance(result, sessions.Rejected):
        if result.revoked_session is not None:
            await ctx.principals.mark_revoked([result.revoked_session])
        raise NotAuthorizedException(result.reason)
    return TokenResponse(
        access_token=issued["token"],
        expires_in=ctx.settings.access_token_ttl_seconds,
        session_id=result.session.session_id,
        user=profile_out(result.user, roles, full=True),
        refresh_token=result.refresh_token,
    )


async def send_account_mail(ctx: AuthContext, name: str, to: str, *, link: str, locale: str | None) -> None:
    """Render the account email `name` (`domain.notifications.account`) in `locale` and hand it to
    the configured email transport now: the person is waiting for the link. It is not queued as a
    delivery row, so the link (a secret) is stored nowhere but in the message. Raises 503 when the
    transport could not take it."""
    default = ctx.settings.notification_default_language
    rendered = await ctx.db.read(
        lambda s: account.compose(s, name, link=link, locale=locale or default, default_language=default)
    )
    message_id = new_id()  # time-ordered: `.eml` files sort in sending order
    item = Outgoing(
        delivery_id=message_id,
        notification_id=message_id,
        channel=account.CHANNEL,
        to=to,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        language=rendered.language,
    )
    [outcome] = await ctx.email.send_batch([item])
    if isinstance(outcome, DeliveryFailed):
        raise ServiceUnavailableException("the email could not be sent; try again later")


LANGUAGES = ("ar", "en")


def accept_language(header: str | None) -> str | None:
    """The language of the highest-weighted `Accept-Language` entry we write in (ar or en)."""
    best: tuple[float, str] | None = None
    for entry in (header or "").split(",")[:20]:
        tag, _, params = entry.strip().partition(";")
        language = tag.strip().split("-")[0].lower()
        if language not in LANGUAGES:
            continue
        try:
            weight = float(params.strip()[2:]) if params.strip().startswith("q=") else 1.0
        except ValueError:
            continue
        if weight > 0 and (best is None or weight > best[0]):
            best = (weight, language)
    return best[1] if best else None


def link(ctx: AuthContext, path: str, token: str) -> str:
    return f"{ctx.settings.public_base_url.rstrip('/')}{path}?token={token}"


__all__ = [
    "check_current_password",
    "limited",
    "link",
    "login",
    "login_mfa",
    "profile_out",
    "refresh",
    "send_account_mail",
]
