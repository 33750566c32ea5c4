"""`/dashboard`: sign-in through the form and its cookie, what the cookie may and may not open, the
browser redirects and 403 page, and the figures the page shows from the serving tables (SQLite only:
the queries themselves are tested on both backends in the domain and API tests)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from html import escape
from pathlib import Path

import pyotp
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy.orm import Session

from domain.analytics.health import BUCKET_COUNT, bucket_index
from domain.analytics.live import add_live
from domain.auth.passwords import hash_password
from domain.db import sync_engine
from domain.migrate import upgrade
from domain.schema import (
    ContentItem,
    ContentMetricsDaily,
    RouteMinute,
    SearchAnalyticsDaily,
    UserEngagementDaily,
)
from domain.settings import Settings
from serving.app import create_app
from serving.auth.security import DASHBOARD_COOKIE
from tests.serving.conftest import bearer, make_user, mint_token

PASSWORD = "copper-lantern-meadow-17"
HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}  # what a browser sends on navigation


def cookie(value: str) -> dict[str, str]:
    """The dashboard cookie as this one request's header (the client's own jar is left as it is)."""
    return {"Cookie": f"{DASHBOARD_COOKIE}={value}"}


CALLIGRAPHY = {"en": 'Calligraphy <basics> & "ink"', "ar": 'أساسيات الخط <العربي> & "الحبر"'}
POETRY = {"ar": "أمسية شعرية"}  # no English title: the English page falls back to Arabic


@pytest.fixture(scope="module")
def password_hash() -> str:
    return hash_password(PASSWORD)


def seed_serving_rows(url: str, today: date | None = None) -> dict[str, str]:
    """Serving rows of the last days as the analytics job publishes them, the current live minute and
    an API route's last minute. Returns the KPI texts the page must show for them."""
    today = today or datetime.now(UTC).date()
    day1, day2 = today - timedelta(days=2), today - timedelta(days=1)
    a, b = uuid.uuid4(), uuid.uuid4()
    users = [uuid.uuid4() for _ in range(3)]
    now = datetime.now(UTC)
    minute = now.replace(second=0, microsecond=0)
    buckets = [0] * BUCKET_COUNT
    buckets[bucket_index(40.0)] = 95
    buckets[bucket_index(900.0)] = 5
    engine = sync_engine(url)
    with Session(engine) as session, session.begin():
        session.add_all(
            [
                ContentItem(id=a, type="article", title=CALLIGRAPHY, slug=f"calligraphy-{a.hex[:6]}"),
                ContentItem(id=b, type="video", title=POETRY, slug=f"poetry-{b.hex[:6]}"),
            ]
        )
        session.add_all(
            [
                ContentMetricsDaily(
                    content_id=a,
                    date=day1,
                    view_count=1200,
                    unique_viewers=400,
                    average_watch_time=90,
                    completion_rate=0.5,
                    engagement_score=1300.0,
                ),
                ContentMetricsDaily(
                    content_id=a,
                    date=day2,
                    view_count=34,
                    unique_viewers=100,
                    average_watch_time=90,
                    completion_rate=0.5,
                    engagement_score=40.0,
                ),
                ContentMetricsDaily(
                    content_id=b,
                    date=day2,
                    view_count=321,
                    unique_viewers=21,
                    average_watch_time=90,
                    completion_rate=0.5,
                    engagement_score=330.0,
                ),
            ]
        )
        session.add_all(
            [
                UserEngagementDaily(user_id=users[0], date=day1, session_count=2, total_session_time=300),
                UserEngagementDaily(user_id=users[1], date=day1, session_count=1, total_session_time=60),
                UserEngagementDaily(user_id=users[2], date=day2, session_count=3, total_session_time=600),
            ]
        )
        session.add_all(
            [
                SearchAnalyticsDaily(
                    query_text="قرآن",
                    date=day1,
                    language="ar",
                    user_type="registered",
                    search_count=40,
                    click_count=10,
                    zero_result_count=4,
                ),
                SearchAnalyticsDaily(
                    query_text="<news>",
                    date=day2,
                    language="en",
                    user_type="anonymous",
                    search_count=10,
                    click_count=5,
                    zero_result_count=6,
                ),
            ]
        )
        session.add(
            RouteMinute(
                minute=minute,
                route="GET /api/v1/content",
                requests=100,
                client_errors=5,
                server_errors=1,
                latency_sum_ms=8300.0,
                latency_max_ms=900.0,
                latency_buckets=buckets,
            )
        )
        add_live(session, {(minute, "events.view"): 7, (minute, "events.search"): 2})
    engine.dispose()
    return {
        "views": "1,555",
        "unique_viewers": "521",
        "active_users": "3",
        "sessions": "6",
        "average_session_time": "2:40",  # 960 s over 6 sessions
        "average_watch_time": "1:30",
        "completion_rate": "50.0%",
        "searches": "50",
        "zero_result_rate": "20.0%",
        "click_through_rate": "30.0%",
    }


@pytest.fixture
async def web(sqlite_url: str, data_dir: Path) -> AsyncIterator[AsyncTestClient]:
    """The app on a migrated SQLite DB, as a browser sees it (no Bearer header, no auto-redirects)."""
    upgrade(sqlite_url)
    app = create_app(Settings(deployment="local", data_dir=data_dir, database_url=sqlite_url))
    async with AsyncTestClient(app=app) as client:
        client.follow_redirects = False
        yield client


@pytest.fixture
def member(sqlite_url: str, password_hash: str) -> Callable[[str, list[str]], uuid.UUID]:
    return lambda username, roles: make_user(sqlite_url, username, roles, password_hash=password_hash)


def csrf_field(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "the sign-in form carries no CSRF token"
    return found.group(1)


async def sign_in(client: AsyncTestClient, login: str, password: str = PASSWORD, **fields: str):
    """Open the sign-in page (its cookie and token), then post the form as the browser would."""
    csrf = csrf_field((await client.get("/dashboard/login")).text)
    return await client.post(
        "/dashboard/login", data={"login": login, "password": password, "csrf": csrf, **fields}
    )


def kpi(page: str, key: str) -> str:
    found = re.search(rf'data-kpi="{key}">.*?class="value">([^<]*)<', page, re.S)
    assert found, f"no KPI card {key}"
    return found.group(1)


async def test_sign_in_sets_a_strict_httponly_cookie_and_goes_to_the_dashboard(web, member) -> None:
    member("manager", ["analyst"])
    res = await sign_in(web, "manager@example.test", lang="ar")
    assert res.status_code == 303, res.text
    assert res.headers["location"] == "/dashboard?lang=ar"
    cookie = res.headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")}
    assert cookie.startswith(f"{DASHBOARD_COOKIE}=ey")
    assert {"httponly", "path", "samesite", "max-age"} <= attributes.keys()
    assert attributes["path"] == "Path=/dashboard"
    assert attributes["samesite"].lower() == "samesite=strict"
    assert attributes["max-age"] == "Max-Age=900"  # the access token's lifetime
    assert "secure" not in attributes  # plain http: a Secure cookie would never come back

    page = await web.get("/dashboard?lang=ar", headers=HTML)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<html lang="ar" dir="rtl">' in page.text


async def test_the_cookie_is_secure_over_https(sqlite_url: str, data_dir: Path, member) -> None:
    upgrade(sqlite_url)
    app = create_app(Settings(deployment="local", data_dir=data_dir, database_url=sqlite_url))
    member("tls-manager", ["analyst"])
    async with AsyncTestClient(app=app, base_url="https://testserver.local") as client:
        client.follow_redirects = False
        res = await sign_in(client, "tls-manager")
    assert res.status_code == 303
    assert "secure" in res.headers["set-cookie"].lower().replace(" ", "").split(";")


async def test_a_wrong_password_re_renders_the_form_without_it(web, member) -> None:
    member("forgetful", ["analyst"])
    wrong = "hunter2-<script>-not-it"
    res = await sign_in(web, "forgetful", wrong)
    assert res.status_code == 401
    assert res.headers["content-type"].startswith("text/html")
    assert "invalid login or password" in res.text
    assert 'value="forgetful"' in res.text  # the login is kept
    assert wrong not in res.text and escape(wrong) not in res.text
    assert "set-cookie" not in res.headers

    arabic = await sign_in(web, "forgetful", wrong, lang="ar")
    assert arabic.status_code == 401 and 'dir="rtl"' in arabic.text
    assert "غير صحيحة" in arabic.text

    empty = await web.post("/dashboard/login", data={"login": "forgetful"})
    assert empty.status_code == 400 and "<form" in empty.text


async def test_an_mfa_account_signs_in_with_its_code(web, member, sqlite_url: str) -> None:
    user_id = member("guarded-manager", ["analyst"])
    token = mint_token(web.app, sqlite_url, user_id)
    setup = await web.post(
        f"/api/v1/users/{user_id}/mfa/enable", json={"password": PASSWORD}, headers=bearer(token)
    )
    totp = pyotp.TOTP(setup.json()["secret"])
    confirmed = await web.post(
        f"/api/v1/users/{user_id}/mfa/confirm", json={"code": totp.now()}, headers=bearer(token)
    )
    assert confirmed.status_code == 200, confirmed.text

    step = await sign_in(web, "guarded-manager")
    assert step.status_code == 200 and 'name="mfa_code"' in step.text
    assert "set-cookie" not in step.headers and PASSWORD not in step.text
    challenge = re.search(r'name="challenge" value="([^"]+)"', step.text).group(1)
    later = totp.at(datetime.now(UTC) + timedelta(seconds=30))
    csrf = csrf_field(step.text)
    wrong = await web.post(
        "/dashboard/login", data={"challenge": challenge, "mfa_code": "000000", "csrf": csrf}
    )
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
    done = await web.post("/dashboard/login", data={"challenge": challenge, "mfa_code": later, "csrf": csrf})
    assert done.status_code == 303 and done.headers["set-cookie"].startswith(DASHBOARD_COOKIE)


async def test_a_browser_without_a_cookie_is_sent_to_sign_in(web) -> None:
    res = await web.get("/dashboard?lang=ar", headers=HTML)
    assert res.status_code == 303 and res.headers["location"] == "/dashboard/login?lang=ar"
    stale = await web.get("/dashboard", headers={**HTML, **cookie("not-a-jwt")})
    assert stale.status_code == 303 and stale.headers["location"] == "/dashboard/login"
    assert (
        stale.headers["set-cookie"].startswith(f'{DASHBOARD_COOKIE}=""')
        or "Max-Age=0" in stale.headers["set-cookie"]
    )
    # An API client (or the page's fetch) gets the API's problem, not a redirect.
    api = await web.get("/dashboard/live")
    assert api.status_code == 401 and api.headers["content-type"].startswith("application/problem+json")
    form = await web.get("/dashboard/login?lang=ar")
    assert form.status_code == 200 and '<html lang="ar" dir="rtl">' in form.text
    assert 'type="password"' in form.text and "كلمة المرور" in form.text


async def test_a_viewer_gets_the_403_page(web, member) -> None:
    member("reader", ["viewer"])
    assert (await sign_in(web, "reader")).status_code == 303  # signing in works; the page does not
    page = await web.get("/dashboard", headers=HTML)
    assert page.status_code == 403 and page.headers["content-type"].startswith("text/html")
    assert "analytics:read" in page.text and "Content-Security-Policy" in page.headers
    api = await web.get("/dashboard")
    assert api.status_code == 403 and api.headers["content-type"].startswith("application/problem+json")


async def test_the_cookie_opens_only_get_pages_under_dashboard(web, member, sqlite_url: str) -> None:
    user_id = member("cookie-manager", ["analyst"])
    token = mint_token(web.app, sqlite_url, user_id)
    assert (await web.get("/dashboard/live", headers=cookie(token))).status_code == 200
    api = await web.get("/api/v1/analytics/dashboard/overview", headers=cookie(token))
    assert api.status_code == 401  # the JSON API takes only the Bearer header (no CSRF surface)
    assert (await web.get("/api/v1/analytics/dashboard/overview", headers=bearer(token))).status_code == 200
    assert (await web.get("/dashboardx", headers=cookie(token))).status_code in (401, 404)


async def test_sign_out_ends_the_session_and_drops_the_cookie(web, member) -> None:
    member("leaving", ["analyst"])
    token = (await sign_in(web, "leaving")).cookies[DASHBOARD_COOKIE]
    res = await web.post("/dashboard/logout?lang=ar")
    assert res.status_code == 303 and res.headers["location"] == "/dashboard/login?lang=ar"
    assert "Path=/dashboard" in res.headers["set-cookie"] and DASHBOARD_COOKIE in res.headers["set-cookie"]
    assert (await web.get("/dashboard/live", headers=cookie(token))).status_code == 401
    assert (await web.get("/api/v1/auth/me", headers=bearer(token))).status_code == 401


async def test_the_page_shows_the_serving_figures(web, member, sqlite_url: str) -> None:
    expected = seed_serving_rows(sqlite_url)
    member("boss", ["analyst"])
    await sign_in(web, "boss")
    res = await web.get("/dashboard", headers=HTML)
    assert res.status_code == 200, res.text
    page = res.text
    assert {key: kpi(page, key) for key in expected} == expected
    # Titles in the page's language, escaped; a title missing in English falls back to Arabic.
    assert escape(CALLIGRAPHY["en"]) in page and CALLIGRAPHY["en"] not in page
    assert POETRY["ar"] in page
    assert "&lt;news&gt;" in page and "قرآن" in page
    assert "GET /api/v1/content" in page and "5.0%" in page and "1.0%" in page
    assert re.search(r'data-live="views">7<', page) and re.search(r'data-live="total_events">9<', page)
    assert page.count("<svg") == 3 and page.count('role="img"') == 3
    csp = res.headers["content-security-policy"]
    nonce = re.search(r"'nonce-([^']+)'", csp).group(1)
    assert f'<script nonce="{nonce}">' in page and "default-src 'none'" in csp
    assert "unsafe-inline" not in csp and "http" not in csp  # no CDN, no external origin
    assert not re.search(r'<(script|link|img)[^>]+(src|href)="https?:', page)
    assert " style=" not in page  # inline style attributes would be blocked by the CSP

    arabic = (await web.get("/dashboard?lang=ar", headers=HTML)).text
    assert '<html lang="ar" dir="rtl">' in arabic and "المشاهدات" in arabic
    assert escape(CALLIGRAPHY["ar"]) in arabic and CALLIGRAPHY["ar"] not in arabic
    assert 'direction="rtl"' in arabic  # Arabic chart labels are laid out right-to-left


async def test_the_period_and_the_live_endpoint(web, member, sqlite_url: str) -> None:
    seed_serving_rows(sqlite_url)
    member("period-boss", ["editor"])
    await sign_in(web, "period-boss")
    today = datetime.now(UTC).date()
    only_today = await web.get(f"/dashboard?start_date={today}&end_date={today}", headers=HTML)
    assert kpi(only_today.text, "views") == "0" and kpi(only_today.text, "completion_rate") == "–"
    backwards = await web.get(
        f"/dashboard?start_date={today}&end_date={today - timedelta(days=3)}", headers=HTML
    )
    assert backwards.status_code == 200 and 'class="error"' in backwards.text

    live = (await web.get("/dashboard/live?lang=ar")).json()
    assert live["views"] == 7 and live["total_events"] == 9 and live["events"] == {"search": 2, "view": 7}
    assert len(live["views_per_minute"]) == 30 and live["views_per_minute"][-1]["views"] == 7
    assert live["chart"].startswith("<svg") and "المشاهدات" in live["chart"]


# --- login CSRF (security issue, finding 15) ------------------------------------------------------


async def test_a_cross_site_form_cannot_sign_the_browser_in(web, member, sqlite_url: str, data_dir) -> None:
    """A page elsewhere auto-submits the sign-in form with the attacker's credentials, so the
    victim's browser would use the dashboard as the attacker (login CSRF). Refused: the form needs
    the token of this browser's own sign-in page."""
    member("attacker", ["analyst"])
    forged = {"login": "attacker", "password": PASSWORD}
    cross_site = {**HTML, "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}

    refused = await web.post("/dashboard/login", data=forged, headers=cross_site)
    assert refused.status_code == 403, refused.text
    assert DASHBOARD_COOKIE not in refused.cookies
    # An older browser without Fetch Metadata headers: no token, no sign-in.
    assert (await web.post("/dashboard/login", data=forged)).status_code == 403
    # The token the attacker got from their own visit does not go with this browser's cookie.
    app = create_app(Settings(deployment="local", data_dir=data_dir, database_url=sqlite_url))
    async with AsyncTestClient(app=app) as attacker:
        theirs = csrf_field((await attacker.get("/dashboard/login")).text)
    await web.get("/dashboard/login")  # the victim has a sign-in cookie of their own
    mixed = await web.post("/dashboard/login", data={**forged, "csrf": theirs})
    assert mixed.status_code == 403 and DASHBOARD_COOKIE not in mixed.cookies
    # Even with this browser's own token, a post another site made is refused.
    mine = csrf_field((await web.get("/dashboard/login")).text)
    assert (
        await web.post("/dashboard/login", data={**forged, "csrf": mine}, headers=cross_site)
    ).status_code == 403
    assert (await web.get("/dashboard/live")).status_code == 401  # the browser is not signed in
    # The browser's own form still works.
    assert (await web.post("/dashboard/login", data={**forged, "csrf": mine})).status_code == 303
