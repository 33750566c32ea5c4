"""`/dashboard`: the managers' analytics dashboard, a server-rendered HTML page.

The page shows what `GET /api/v1/analytics/dashboard/overview` and `/system/health` return (one
implementation: `domain.analytics.dashboard`), with charts drawn as inline SVG on the server
(`serving.analytics.svg`): no JavaScript library, CSS file or CDN, so it works offline. A small inline
script polls `/dashboard/live` every few seconds and swaps the live numbers and chart in place.

Sign-in: a browser cannot send the API's Bearer header on a page load, so `POST /dashboard/login`
signs in through the same service as the JSON login (password check, throttling, MFA) and keeps the
access token in an HttpOnly, SameSite=Strict cookie scoped to `/dashboard`. The auth middleware reads
that cookie only for GET requests under `/dashboard` (`serving.auth.security`), never for the JSON
API, so the cookie cannot be used to change anything. The session lasts as long as the access token.

Login CSRF (another site posting the form with its own credentials, so the victim works in the
attacker's account): the sign-in page sets a random `CSRF_COOKIE` (HttpOnly, SameSite=Strict) and puts
its HMAC under the keyring's `keys.DASHBOARD_CSRF` key, prefixed with the key's id, in a hidden field (a
signed double-submit token); a post needs both to match, and one a browser marks as cross-site or
same-site (`Sec-Fetch-Site`) is refused too. A refused post answers 403 with a fresh form.

Errors: a browser (a request that accepts `text/html`) without a valid cookie is sent to the sign-in
page, and one without `analytics:read` gets an HTML 403 page; any other client gets the API's problem
details (401/403), like every API route.
"""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.enums import MediaType, RequestEncodingType
from litestar.exceptions import HTTPException, NotAuthorizedException, PermissionDeniedException
from litestar.params import Body, QueryParameter
from litestar.response import Redirect
from litestar.security.jwt import Token
from markupsafe import Markup
from sqlalchemy.orm import Session

from domain.analytics import dashboard
from domain.auth import audit, sessions
from domain.auth.keys import ACCESS_TOKEN, DASHBOARD_CSRF
from domain.errors import InvalidValue
from domain.schema import UserSession
from serving.analytics import svg
from serving.analytics.services import period
from serving.auth import services
from serving.auth.schemas import LoginRequest, MfaChallenge
from serving.auth.security import ALGORITHM, DASHBOARD_COOKIE, DASHBOARD_PATH, AuthContext, signing_key
from serving.db import Database
from serving.permissions import ANALYTICS_READ, PUBLIC, requires
from serving.problems import http_handler

Lang = Literal["en", "ar"]
LIVE_REFRESH_SECONDS = 5
HEALTH_MINUTES = 60
HEALTH_ROUTES = 15
LOGIN_PATH = f"{DASHBOARD_PATH}/login"
LIVE_PATH = f"{DASHBOARD_PATH}/live"
FORM_MAX_BYTES = 16_384

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Analytics dashboard",
        "sign_in": "Sign in",
        "sign_in_title": "Sign in to the analytics dashboard",
        "login": "Email or username",
        "password": "Password",
        "mfa_code": "Authentication code",
        "mfa_prompt": "Enter the 6-digit code from your authenticator app.",
        "missing": "Enter your email or username and your password.",
        "missing_code": "Enter the code from your authenticator app.",
        "csrf": "This sign-in form expired or was sent from another site. Sign in again here.",
        "sign_out": "Sign out",
        "forbidden": "You are signed in, but this dashboard needs the analytics:read permission.",
        "forbidden_title": "Not allowed",
        "other_lang": "العربية",
        "period": "Period",
        "from": "From",
        "to": "To",
        "show": "Show",
        "views": "Views",
        "unique_viewers": "Unique viewers",
        "active_users": "Active users",
        "sessions": "Sessions",
        "average_session_time": "Avg. session time",
        "average_watch_time": "Avg. watch time",
        "completion_rate": "Completion rate",
        "searches": "Searches",
        "zero_result_rate": "Zero-result rate",
        "click_through_rate": "Click-through rate",
        "daily_chart": "Daily views and active users",
        "top_content": "Top content by views",
        "live": "Live",
        "live_events": "Events (last {n} min)",
        "live_views": "Views (last {n} min)",
        "live_chart": "Views per minute (last 30 min)",
        "as_of": "As of",
        "content": "Content",
        "top_queries": "Top search queries",
        "query": "Query",
        "language": "Language",
        "zero_results": "Zero results",
        "health": "System health (last {n} min)",
        "route": "Route",
        "requests": "Requests",
        "client_errors": "4xx rate",
        "server_errors": "5xx rate",
        "p95": "p95 (ms)",
        "no_data": "No data",
        "untitled": "(untitled)",
    },
    "ar": {
        "title": "لوحة التحليلات",
        "sign_in": "تسجيل الدخول",
        "sign_in_title": "تسجيل الدخول إلى لوحة التحليلات",
        "login": "البريد الإلكتروني أو اسم المستخدم",
        "password": "كلمة المرور",
        "mfa_code": "رمز التحقق",
        "mfa_prompt": "أدخل الرمز المكوّن من 6 أرقام من تطبيق المصادقة.",
        "missing": "أدخل بريدك الإلكتروني أو اسم المستخدم وكلمة المرور.",
        "missing_code": "أدخل الرمز من تطبيق المصادقة.",
        "csrf": "انتهت صلاحية نموذج الدخول أو أُرسل من موقع آخر. سجّل الدخول من هنا مرة أخرى.",
        "sign_out": "تسجيل الخروج",
        "forbidden": "لقد سجّلت الدخول، لكن هذه اللوحة تتطلب صلاحية analytics:read.",
        "forbidden_title": "غير مسموح",
        "other_lang": "English",
        "period": "الفترة",
        "from": "من",
        "to": "إلى",
        "show": "عرض",
        "views": "المشاهدات",
        "unique_viewers": "المشاهدون الفريدون",
        "active_users": "المستخدمون النشطون",
        "sessions": "الجلسات",
        "average_session_time": "متوسط مدة الجلسة",
        "average_watch_time": "متوسط مدة المشاهدة",
        "completion_rate": "معدل الإكمال",
        "searches": "عمليات البحث",
        "zero_result_rate": "نسبة البحث بلا نتائج",
        "click_through_rate": "نسبة النقر",
        "daily_chart": "المشاهدات والمستخدمون النشطون يوميًا",
        "top_content": "المحتوى الأكثر مشاهدة",
        "live": "مباشر",
        "live_events": "الأحداث (آخر {n} دقائق)",
        "live_views": "المشاهدات (آخر {n} دقائق)",
        "live_chart": "المشاهدات في الدقيقة (آخر 30 دقيقة)",
        "as_of": "حتى",
        "content": "المحتوى",
        "top_queries": "أكثر عبارات البحث",
        "query": "العبارة",
        "language": "اللغة",
        "zero_results": "بلا نتائج",
        "health": "صحة النظام (آخر {n} دقيقة)",
        "route": "المسار",
        "requests": "الطلبات",
        "client_errors": "نسبة 4xx",
        "server_errors": "نسبة 5xx",
        "p95": "p95 (مللي ثانية)",
        "no_data": "لا توجد بيانات",
        "untitled": "(بلا عنوان)",
    },
}
# The sign-in service's English messages, by status, for the Arabic page.
LOGIN_ERRORS_AR = {
    401: "بيانات الدخول أو الرمز غير صحيحة.",
    403: "الحساب غير مفعّل أو معطّل.",
    429: "محاولات فاشلة كثيرة؛ حاول مرة أخرى بعد قليل.",
}

_templates = Environment(
    loader=PackageLoader("serving.analytics", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
_templates.globals.update(dashboard_path=DASHBOARD_PATH, login_path=LOGIN_PATH)


@dataclass
class LoginForm:
    """The sign-in form. `challenge` carries the MFA challenge token between the password step and
    the code step, so the password is never sent back to the browser."""

    login: str = ""
    password: str = ""
    mfa_code: str = ""
    challenge: str = ""
    lang: str = "en"
    csrf: str = ""  # the sign-in page's token (see CSRF_COOKIE)


def _lang(value: str | None) -> Lang:
    return "ar" if value == "ar" else "en"


def _url(path: str, lang: Lang, **params: str) -> str:
    query = {**({"lang": lang} if lang != "en" else {}), **{k: v for k, v in params.items() if v}}
    return f"{path}?{urlencode(query)}" if query else path


def wants_html(request: Request) -> bool:
    """A browser navigating (it asks for text/html), as opposed to an API client or `fetch`."""
    return "text/html" in request.headers.get("accept", "")


def _other(lang: Lang) -> Lang:
    return "en" if lang == "ar" else "ar"


def render(
    template: str, *, lang: Lang, switch_url: str, status_code: int = 200, **context: Any
) -> Response[str]:
    """A page with a fresh CSP nonce: only our own origin and the page's own inline script and style
    may run or load; no framing, no form posts elsewhere, no referrer leaks. `switch_url` is the same
    page in the other language."""
    nonce = secrets.token_urlsafe(16)
    html = _templates.get_template(template).render(
        t=LABELS[lang],
        lang=lang,
        dir="rtl" if lang == "ar" else "ltr",
        nonce=nonce,
        switch_url=switch_url,
        **context,
    )
    csp = (
        f"default-src 'none'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'nonce-{nonce}'; "
        "img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
    headers = {
        "Content-Security-Policy": csp,
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }
    return Response(html, status_code=status_code, media_type=MediaType.HTML, headers=headers)


CSRF_COOKIE = "thmnayah_login_csrf"
CSRF_PURPOSE = "dashboard-login-csrf"
_CSRF_NONCE = re.compile(r"^[A-Za-z0-9_-]{32,64}$")


def _secure(request: Request, auth: AuthContext) -> bool:
    """Cookies carry Secure over https (a Secure cookie sent over plain http would never come back)."""
    return request.url.scheme == "https" or auth.settings.public_base_url.startswith("https://")


def _csrf_nonce(request: Request) -> str | None:
    nonce = request.cookies.get(CSRF_COOKIE, "")
    return nonce if _CSRF_NONCE.match(nonce) else None


def csrf_ok(request: Request, auth: AuthContext, field: str) -> bool:
    """The form came from this browser's own sign-in page: its hidden token is the HMAC of the
    browser's CSRF cookie, and the browser does not say the post came from another site."""
    if request.headers.get("sec-fetch-site", "") in ("cross-site", "same-site"):
        return False
    nonce = _csrf_nonce(request)
    if nonce is None or not field:
        return False
    return auth.keys.verify(DASHBOARD_CSRF, f"{CSRF_PURPOSE}:{nonce}", field)


def login_page(
    request: Request, auth: AuthContext, *, lang: Lang, status_code: int = 200, **context: Any
) -> Response[str]:
    """The sign-in form with this browser's CSRF token (a new cookie when it has none)."""
    nonce = _csrf_nonce(request)
    new = nonce is None
    nonce = nonce or secrets.token_urlsafe(32)
    response = render(
        "login.html",
        lang=lang,
        switch_url=_url(LOGIN_PATH, _other(lang)),
        status_code=status_code,
        csrf=auth.keys.sign(DASHBOARD_CSRF, f"{CSRF_PURPOSE}:{nonce}"),
        **context,
    )
    if new:
        response.set_cookie(
            CSRF_COOKIE,
            nonce,
            path=DASHBOARD_PATH,
            httponly=True,
            samesite="strict",
            secure=_secure(request, auth),
        )
    return response


def _delete_cookie(response: Response) -> Response:
    response.delete_cookie(DASHBOARD_COOKIE, path=DASHBOARD_PATH)
    return response


def unauthorized_handler(request: Request, exc: NotAuthorizedException) -> Response:
    """A browser without a valid cookie goes to the sign-in page (a stale cookie is dropped); other
    clients get the API's 401 problem."""
    if not (wants_html(request) and request.method == "GET"):
        return http_handler(request, exc)
    target = _url(LOGIN_PATH, _lang(request.query_params.get("lang")))
    response = Redirect(target, status_code=303)
    return _delete_cookie(response) if DASHBOARD_COOKIE in request.cookies else response


def forbidden_handler(request: Request, exc: PermissionDeniedException) -> Response:
    if not wants_html(request):
        return http_handler(request, exc)
    lang = _lang(request.query_params.get("lang"))
    return render(
        "forbidden.html",
        lang=lang,
        switch_url=_url(DASHBOARD_PATH, _other(lang)),
        logout_url=_url(f"{DASHBOARD_PATH}/logout", lang),
        status_code=403,
    )


# --- the page's figures -------------------------------------------------------------------------------


def number(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def duration(seconds: float | None) -> str:
    """Seconds as m:ss or h:mm:ss (the same in both languages)."""
    if seconds is None:
        return "–"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def title_in(title: dict[str, str], lang: Lang, fallback: str) -> str:
    """The title in the page's language, else the other one, else any."""
    return (
        title.get(lang) or title.get(_other(lang)) or next((v for v in title.values() if v), "") or fallback
    )


def live_view(live: dict[str, Any], lang: Lang) -> dict[str, Any]:
    """The live block: numbers and the views-per-minute chart, as the page and `/dashboard/live` show
    them."""
    t = LABELS[lang]
    minutes = live["views_per_minute"]
    chart = svg.line_chart(
        [m["minute"][11:16] for m in minutes],
        {t["views"]: [m["views"] for m in minutes]},
        width=640,
        height=220,
        title=t["live_chart"],
        empty_text=t["no_data"],
    )
    return {
        "total_events": live["total_events"],
        "views": live["events"].get("view", 0),
        "events": live["events"],
        "as_of": live["as_of"],
        "chart": chart,
    }


def page_view(overview: dict[str, Any], health: dict[str, Any], lang: Lang) -> dict[str, Any]:
    """Everything the dashboard template shows, formatted, with the charts drawn."""
    t, k = LABELS[lang], overview["kpis"]
    live = live_view(overview["live"], lang)
    live["chart"] = Markup(live["chart"])
    kpis = [
        ("views", number(k["views"])),
        ("unique_viewers", number(k["unique_viewers"])),
        ("active_users", number(k["active_users"])),
        ("sessions", number(k["sessions"])),
        ("average_session_time", duration(k["average_session_time"])),
        ("average_watch_time", duration(k["average_watch_time"])),
        ("completion_rate", percent(k["completion_rate"])),
        ("searches", number(k["searches"])),
        ("zero_result_rate", percent(k["zero_result_rate"])),
        ("click_through_rate", percent(k["click_through_rate"])),
    ]
    daily = overview["daily"]
    top = [
        {**item, "name": title_in(item["title"], lang, t["untitled"]), "views_text": number(item["views"])}
        for item in overview["top_content"]
    ]
    return {
        "kpis": [{"key": key, "label": t[key], "value": value} for key, value in kpis],
        "daily_chart": Markup(
            svg.line_chart(
                [d["date"][5:] for d in daily],
                {
                    t["views"]: [d["views"] for d in daily],
                    t["active_users"]: [d["active_users"] for d in daily],
                },
                title=t["daily_chart"],
                empty_text=t["no_data"],
            )
        ),
        "top_chart": Markup(
            svg.bar_chart(
                [item["name"] for item in top],
                [item["views"] for item in top],
                title=t["top_content"],
                series_name=t["views"],
                empty_text=t["no_data"],
            )
        ),
        "top_content": top,
        "top_queries": [
            {
                **q,
                "searches_text": number(q["searches"]),
                "ctr_text": percent(q["click_through_rate"]),
                "zero_text": percent(q["zero_result_rate"]),
            }
            for q in overview["top_queries"]
        ],
        "health": [
            {
                "route": r["route"],
                "requests": number(r["requests"]),
                "client_errors": percent(r["client_error_rate"]),
                "server_errors": percent(r["server_error_rate"]),
                "p95": number(r["p95_ms"]),
            }
            for r in health["routes"][:HEALTH_ROUTES]
        ],
        "live": live,
    }


# --- routes -------------------------------------------------------------------------------------------


class DashboardPageController(Controller):
    path = DASHBOARD_PATH
    include_in_schema = False  # HTML pages for people; the JSON API documents the same figures
    exception_handlers = {
        NotAuthorizedException: unauthorized_handler,
        PermissionDeniedException: forbidden_handler,
    }

    @get("/login", opt=requires(PUBLIC))
    async def login_form(
        self,
        request: Request,
        auth: NamedDependency[AuthContext],
        lang: Annotated[str | None, QueryParameter()] = None,
    ) -> Response[str]:
        return login_page(request, auth, lang=_lang(lang))

    @post("/login", opt=requires(PUBLIC), request_max_body_size=FORM_MAX_BYTES)
    async def login(
        self,
        request: Request,
        data: Annotated[LoginForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
        auth: NamedDependency[AuthContext],
    ) -> Response:
        """Password (and MFA code) through the JSON login's service; on success the access token goes
        into the dashboard cookie and the browser on to the dashboard (303, so a reload does not post
        again). Errors re-render the form with the login kept and the password never echoed."""
        lang = _lang(data.lang)
        t = LABELS[lang]
        form = {"lang": lang, "login": data.login[:254]}
        origin = auth.origin(request)
        if data.challenge and not data.mfa_code.strip():
            return login_page(
                request, auth, status_code=400, error=t["missing_code"], challenge=data.challenge, **form
            )
        if not data.challenge and (not data.login.strip() or not data.password):
            return login_page(request, auth, status_code=400, error=t["missing"], **form)
        if not csrf_ok(request, auth, data.csrf):  # before any password is checked
            return login_page(request, auth, status_code=403, error=t["csrf"], **form)
        try:
            if data.challenge:
                result = await services.login_mfa(
                    auth, data.challenge[:2048], data.mfa_code.strip()[:12], None, origin
                )
            else:
                request_data = LoginRequest(
                    login=data.login.strip()[:254],
                    password=data.password[:1024],
                    device_id="dashboard",
                    mfa_code=data.mfa_code.strip()[:12] or None,
                )
                result = await services.login(auth, request_data, origin)
        except HTTPException as exc:  # wrong password or code (401), disabled (403), throttled (429)
            if exc.status_code >= 500:
                raise
            message = LOGIN_ERRORS_AR.get(exc.status_code, exc.detail) if lang == "ar" else exc.detail
            response = login_page(request, auth, status_code=exc.status_code, error=message, **form)
            if exc.headers and "Retry-After" in exc.headers:
                response.headers["Retry-After"] = exc.headers["Retry-After"]
            return response
        if isinstance(result, MfaChallenge):
            return login_page(request, auth, info=t["mfa_prompt"], challenge=result.challenge_token, **form)
        secure = _secure(request, auth)
        cookie = Cookie(
            key=DASHBOARD_COOKIE,
            value=result.access_token,
            path=DASHBOARD_PATH,
            max_age=result.expires_in,
            httponly=True,
            samesite="strict",
            secure=secure,
        )
        return Redirect(_url(DASHBOARD_PATH, lang), status_code=303, cookies=[cookie])

    @post("/logout", opt=requires(PUBLIC), request_max_body_size=FORM_MAX_BYTES)
    async def logout(
        self,
        request: Request,
        auth: NamedDependency[AuthContext],
        lang: Annotated[str | None, QueryParameter()] = None,
    ) -> Response:
        """Ends the cookie's session (as `POST /api/v1/auth/logout` would) and drops the cookie. Public:
        a missing or expired cookie still signs the browser out."""
        token = request.cookies.get(DASHBOARD_COOKIE)
        if token:
            await _end_session(auth, token, auth.origin(request))
        return _delete_cookie(Redirect(_url(LOGIN_PATH, _lang(lang)), status_code=303))

    @get("", opt=requires(ANALYTICS_READ))
    async def page(
        self,
        db: NamedDependency[Database],
        start_date: Annotated[date | None, QueryParameter()] = None,
        end_date: Annotated[date | None, QueryParameter()] = None,
        lang: Annotated[str | None, QueryParameter()] = None,
    ) -> Response[str]:
        language = _lang(lang)
        error = None
        try:
            start, end = period(start_date, end_date)
        except InvalidValue as exc:
            error, (start, end) = exc.detail, period(None, None)
        now = datetime.now(UTC)
        overview, health = await db.read(
            lambda s: (
                dashboard.overview(s, start, end, now),
                dashboard.system_health(s, now, HEALTH_MINUTES),
            )
        )
        return render(
            "dashboard.html",
            lang=language,
            switch_url=_url(
                DASHBOARD_PATH,
                _other(language),
                start_date=start_date.isoformat() if start_date else "",
                end_date=end_date.isoformat() if end_date else "",
            ),
            error=error,
            start=start.isoformat(),
            end=date.fromordinal(end.toordinal() - 1).isoformat(),
            window=overview["live"]["window_minutes"],
            health_minutes=HEALTH_MINUTES,
            live_url=_url(LIVE_PATH, language),
            logout_url=_url(f"{DASHBOARD_PATH}/logout", language),
            refresh_ms=LIVE_REFRESH_SECONDS * 1000,
            **page_view(overview, health, language),
        )

    @get("/live", opt=requires(ANALYTICS_READ))
    async def live(
        self, db: NamedDependency[Database], lang: Annotated[str | None, QueryParameter()] = None
    ) -> dict[str, Any]:
        """`dashboard.live(...)` (events by type over the last minutes, views per minute over the last
        half hour) plus `chart`: the live chart as SVG markup, which the page swaps in."""
        now = datetime.now(UTC)
        live = await db.read(lambda s: dashboard.live(s, now))
        return {
            **live,
            "views": live["events"].get("view", 0),
            "chart": live_view(live, _lang(lang))["chart"],
        }


async def _end_session(auth: AuthContext, encoded: str, origin: audit.Origin) -> None:
    """Revoke the session of the cookie's access token, if the token is ours and still valid."""
    try:
        token = Token.decode(
            encoded,
            secret=signing_key(auth.keys, ACCESS_TOKEN, encoded),
            algorithm=ALGORITHM,
            audience=auth.settings.jwt_audience,
            issuer=auth.settings.jwt_issuer,
        )
        if token.extras.get("typ") != "access":
            return
        user_id, session_id = uuid.UUID(token.sub), uuid.UUID(token.extras["sid"])
    except (NotAuthorizedException, KeyError, ValueError, TypeError):
        return

    def end(session: Session) -> None:
        row = session.get(UserSession, session_id)
        if row is None or row.user_id != user_id or not row.is_active:
            return
        sessions.revoke(session, row, "logout")
        audit.record(
            session,
            audit.LOGOUT,
            user_id=user_id,
            origin=origin,
            resource="session",
            resource_id=str(session_id),
        )

    await auth.db.write(end)
    await auth.principals.mark_revoked([session_id])
