"""The managers' dashboard in a real headless Chromium against the real app under uvicorn: redirected to
sign-in, signed in through the form, KPIs and SVG charts on screen without console errors (a CSP
violation is one), and the live numbers following the database within a refresh, without a reload."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy.orm import Session

from domain.analytics.live import add_live
from domain.auth.passwords import hash_password
from domain.db import sync_engine
from domain.migrate import upgrade
from domain.settings import Settings
from serving.app import create_app
from tests.conftest import served
from tests.serving.analytics.test_dashboard_page import PASSWORD, seed_serving_rows
from tests.serving.conftest import make_user

pytestmark = pytest.mark.slow
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture
def chromium() -> str:
    if CHROMIUM.exists():
        return str(CHROMIUM)
    message = f"Chromium is not installed at {CHROMIUM} (`./dev test` installs Debian's `chromium`)"
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message} and REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(message)


@pytest.fixture
def api(data_dir: Path, sqlite_url: str) -> Iterator[tuple[str, dict[str, str]]]:
    """The app under uvicorn on a free port, on a SQLite DB holding serving rows and a manager."""
    upgrade(sqlite_url)
    expected = seed_serving_rows(sqlite_url)
    make_user(sqlite_url, "manager", ["analyst"], password_hash=hash_password(PASSWORD))
    app = create_app(Settings(deployment="local", data_dir=data_dir, database_url=sqlite_url))
    with served(app) as address:
        yield f"http://{address}", expected


def add_views(url: str, views: int) -> None:
    engine = sync_engine(url)
    minute = datetime.now(UTC).replace(second=0, microsecond=0)
    with Session(engine) as session, session.begin():
        add_live(session, {(minute, "events.view"): views})
    engine.dispose()


def test_a_manager_signs_in_and_watches_the_live_numbers(chromium: str, api, sqlite_url: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, expected = api
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)

        page.goto(f"{base}/dashboard")
        assert page.url == f"{base}/dashboard/login"
        page.fill('input[name="login"]', "manager")
        page.fill('input[name="password"]', PASSWORD)
        page.click('button[type="submit"]')
        page.wait_for_url(f"{base}/dashboard")

        for key, text in expected.items():
            expect(page.locator(f'[data-kpi="{key}"] .value')).to_have_text(text)
        charts = page.locator("svg.chart")
        expect(charts).to_have_count(3)
        for i in range(3):
            box = charts.nth(i).bounding_box()
            assert box is not None and box["width"] > 200 and box["height"] > 100, box
        live_views = page.locator('#live [data-live="views"]')
        expect(live_views).to_have_text("7")
        assert page.context.cookies()[0]["httpOnly"] is True
        assert page.evaluate("document.cookie") == ""  # the token is out of the page's reach

        live_fetches: list[str] = []
        page.on("response", lambda r: live_fetches.append(r.url) if "/dashboard/live" in r.url else None)
        navigations: list[str] = []
        page.on("framenavigated", lambda frame: navigations.append(frame.url))
        page.evaluate("window.beforeTheChange = true")  # a reload would drop it
        add_views(sqlite_url, 5)
        # The page's fetch loop (every 5 s) brings the new figures; the timeout is a bound, not a measure.
        expect(live_views).to_have_text("12", timeout=30_000)
        expect(page.locator('#live [data-live="total_events"]')).to_have_text("14")
        assert live_fetches and page.evaluate("window.beforeTheChange") is True and navigations == []
        # The live chart was redrawn by the same fetch: its points add up to the 12 views (in one or two
        # minutes, whichever side of a minute boundary the views were added).
        titles = page.locator("#live svg.chart circle title")
        deadline = time.monotonic() + 7
        while sum(int(t.rsplit(" ", 1)[-1]) for t in titles.all_text_contents()) != 12:
            assert time.monotonic() < deadline, titles.all_text_contents()
            time.sleep(0.2)

        image = Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("RGB")
        browser.close()
    colors = image.getcolors(maxcolors=1 << 20)
    assert colors is not None and len(colors) > 50, "the screenshot looks blank"
    assert max(count for count, _ in colors) < 0.95 * image.width * image.height
    assert problems == []
