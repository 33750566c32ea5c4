"""Attacks on notification templates through the API, on each operational DB: a template that would
render for hours (nested loops over `range`), or build gigabytes of text, is stopped within the time
limit or at the size limit with a 422 naming the problem, and the API keeps answering other requests
while such a preview renders (rendering runs off the event loop)."""

from __future__ import annotations

import asyncio
import uuid

import anyio
import httpx
import pytest
import sqlalchemy as sa
from litestar.testing import AsyncTestClient
from sqlalchemy.orm import Session, sessionmaker

from domain.notifications import templates
from domain.schema import NotificationTemplate
from domain.settings import Settings
from serving.app import create_app
from tests.conftest import served
from tests.serving.conftest import bearer, make_user, mint_token

API = "/api/v1/notifications"
# 10^10 iterations that print nothing: only a time limit stops it.
FOREVER = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}done"


def _preview(source: str, **fields: object) -> dict:
    return {"template_type": "in_app", "language": "en", "content_template": source, **fields}


@pytest.fixture
def editor(new_user) -> dict[str, str]:
    return bearer(new_user(f"editor-{uuid.uuid4().hex[:6]}", ["editor"])[1])


async def test_a_runaway_preview_is_stopped_while_the_api_keeps_answering(
    settings: Settings, migrated_url: str
) -> None:
    """Over a real server: the preview is sent first, then other requests one after another until it
    is answered; they are served meanwhile (before the fix the render held the event loop for hours,
    so the first of them was never answered), and the preview ends with a 422 naming the time limit."""
    app = create_app(settings)
    editor = bearer(mint_token(app, migrated_url, make_user(migrated_url, "runaway-editor", ["editor"])))
    with served(app) as host:
        async with httpx.AsyncClient(base_url=f"http://{host}", timeout=60, headers=editor) as http:
            preview = asyncio.ensure_future(http.post(f"{API}/templates/preview", json=_preview(FOREVER)))
            answered = 0
            with anyio.fail_after(30):
                while not preview.done():
                    res = await http.get(f"{API}/templates")
                    assert res.status_code == 200, res.text
                    if not preview.done():
                        answered += 1  # served while the preview was still rendering
                res = await preview
    assert answered >= 1
    assert res.status_code == 422, res.text
    body = res.json()
    assert f"longer than {templates.RENDER_SECONDS:g} s" in body["detail"]
    assert body["errors"][0]["part"] == "text" and body["errors"][0]["field"] == "content_template"


LIMITS = [
    # The example: `range` is capped by the sandbox.
    ("{% for a in range(10**6) %}{% for b in range(10**6) %}x{% endfor %}{% endfor %}", "range"),
    # Printing in the loop: the output cap stops it long before the time limit.
    ("{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}", "characters"),
    # One operation asking for gigabytes is refused before it allocates them.
    ('{{ "x" | center(10**9) }}', "1,000,000,000"),
    ('{{ "x".ljust(10**9) }}', "1,000,000,000"),
    ('{{ "%0*d" % (10**9, 1) }}', "1,000,000,000"),
    ('{{ "{:>1000000000}".format("x") }}', "1,000,000,000"),
    ('{% set s = "x" * 100000 %}{{ s | replace("", s) }}', "characters"),
    ('{% set s = "x" * 100000 %}{{ ([s] * 100000) | join }}', "characters"),
    # Text captured by a block, or doubled step by step, counts too.
    (
        '{% set s = "y" * 100000 %}{% set b %}{% for i in range(100000) %}{{ s }}{% endfor %}{% endset %}.',
        "characters",
    ),
    (
        '{% set a = "z" * 100000 %}{% set b = a ~ a ~ a ~ a %}{% set c = b ~ b ~ b ~ b %}{% set d = c ~ c %}.',
        "characters",
    ),
    # Recursion doubling the work on every level: each call counts against the time limit.
    (
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}",
        "longer than",
    ),
]


async def test_templates_that_would_exhaust_the_api_are_422s_naming_the_limit(
    anonymous: AsyncTestClient, editor: dict[str, str], db_sessions: sessionmaker[Session], monkeypatch
) -> None:
    wrong = []
    for source, says in LIMITS:
        # Only the limit under test may stop it (on a busy machine the time limit could end a size case).
        monkeypatch.setattr(templates, "RENDER_SECONDS", 2.0 if "longer than" in says else 60.0)
        with anyio.fail_after(60):
            res = await anonymous.post(f"{API}/templates/preview", json=_preview(source), headers=editor)
        if res.status_code != 422 or says not in res.json()["detail"]:
            wrong.append(f"{source}: {res.status_code} {res.text[:300]}")
    assert wrong == []

    # Saving such a template is refused the same way, and nothing is stored.
    monkeypatch.setattr(templates, "RENDER_SECONDS", 2.0)
    with db_sessions() as session:
        before = session.scalar(sa.select(sa.func.count()).select_from(NotificationTemplate))
    with anyio.fail_after(60):
        res = await anonymous.post(
            f"{API}/templates",
            json={
                "name": "runaway",
                "template_type": "in_app",
                "language": "en",
                "content_template": FOREVER,
            },
            headers=editor,
        )
    assert res.status_code == 422, res.text
    assert "longer than" in res.json()["detail"]
    with db_sessions() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(NotificationTemplate)) == before
        assert (
            session.scalar(sa.select(NotificationTemplate).where(NotificationTemplate.name == "runaway"))
            is None
        )


async def test_a_send_to_many_recipients_shares_one_render_time_limit(
    anonymous: AsyncTestClient, editor: dict[str, str], migrated_url: str
) -> None:
    """`POST /send` renders each recipient's message in the request, on the event loop: a message
    that is slow but within one render's limit, sent to many recipients, would hold the loop for the
    sum. All the renders of one send share `SEND_RENDER_SECONDS`, then the send is a 422 and nothing
    is stored."""
    from domain.schema import Notification
    from serving.notifications.controllers import SEND_RENDER_SECONDS

    # About 0.1 s a render here: far within one render's limit, while 150 of them are five times the
    # shared limit, so the send runs into it however fast or loaded the machine is.
    slow = "{% for a in range(10) %}{% for b in range(100000) %}{% endfor %}{% endfor %}done"
    saved = await anonymous.post(
        f"{API}/templates",
        json={
            "name": "slow-note",
            "template_type": "in_app",
            "language": "en",
            "subject_template": "Hi",
            "content_template": slow,
        },
        headers=editor,
    )
    assert saved.status_code == 201, saved.text
    recipients = [
        str(make_user(migrated_url, f"many-{i}-{uuid.uuid4().hex[:4]}", ["viewer"])) for i in range(150)
    ]
    body = {
        "recipient_ids": recipients,
        "channels": ["in_app"],
        "category": "general",
        "template": "slow-note",
    }
    with anyio.fail_after(120):
        res = await anonymous.post(f"{API}/send", json=body, headers=editor)
    assert res.status_code == 422, res.text[:300]
    assert f"longer than {SEND_RENDER_SECONDS:g} s" in res.json()["detail"]
    engine = sa.create_engine(migrated_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with Session(engine) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Notification)) == 0
    engine.dispose()
