"""The request metrics record the status each client was actually sent: refusals by the auth
middleware or a guard, validation errors, missing routes and redirects are not server errors;
a handler that crashes is."""

from __future__ import annotations

import asyncio
import time
import uuid

from litestar import get
from litestar.testing import AsyncTestClient

from serving.analytics.live import UNMATCHED, LiveMetrics
from serving.permissions import AUTHENTICATED, requires

BROWSER = {"Accept": "text/html"}  # the dashboard sends browsers to its sign-in page


def _figures(metrics: LiveMetrics) -> dict[str, tuple[int, int, int]]:
    """route -> (requests, client errors, server errors), over every minute recorded."""
    out: dict[str, tuple[int, int, int]] = {}
    for (_minute, route), f in metrics.routes.items():
        n, c, s = out.get(route, (0, 0, 0))
        out[route] = (n + f.requests, c + f.client_errors, s + f.server_errors)
    return out


@get("/api/v1/test-crash", opt=requires(AUTHENTICATED), sync_to_thread=False)
def crash() -> None:
    raise RuntimeError("a bug in a handler")


async def test_each_status_lands_in_its_own_class(anonymous: AsyncTestClient, token_for) -> None:
    app = anonymous.app
    app.register(crash)
    metrics: LiveMetrics = app.dependencies["live_metrics"].dependency()
    metrics.routes.clear()  # start from nothing recorded (the flusher writes them out every 2 s)
    viewer = {"Authorization": f"Bearer {token_for('viewer')}"}

    sent = {
        "GET /api/v1/content": (await anonymous.get("/api/v1/content")).status_code,  # no token
        "POST /api/v1/content": (
            await anonymous.post("/api/v1/content", json={}, headers=viewer)
        ).status_code,
        f"GET {UNMATCHED}": (await anonymous.get("/api/v1/no-such-route", headers=viewer)).status_code,
        "GET /api/v1/content/{item_id}": (
            await anonymous.get(f"/api/v1/content/{uuid.uuid4()}", headers=viewer)
        ).status_code,
        "GET /dashboard": (
            await anonymous.get("/dashboard", headers=BROWSER, follow_redirects=False)
        ).status_code,
        "GET /api/v1/test-crash": (await anonymous.get("/api/v1/test-crash", headers=viewer)).status_code,
    }
    assert list(sent.values()) == [401, 403, 404, 404, 303, 500]

    figures = _figures(metrics)
    for route in list(sent)[:4]:
        assert figures[route] == (1, 1, 0), (
            f"{route} answered {sent[route]}: a client error, {figures[route]}"
        )
    assert figures["GET /dashboard"] == (1, 0, 0)  # a redirect is neither
    assert figures["GET /api/v1/test-crash"] == (1, 0, 1)


async def test_a_validation_error_is_a_client_error(client: AsyncTestClient) -> None:
    metrics: LiveMetrics = client.app.dependencies["live_metrics"].dependency()
    metrics.routes.clear()
    res = await client.post("/api/v1/content", json={"type": "article", "title": {"ar": " "}})
    assert res.status_code == 422, res.text
    assert _figures(metrics)["POST /api/v1/content"] == (1, 1, 0)


async def test_system_health_shows_no_server_errors_after_refusals(
    anonymous: AsyncTestClient, token_for
) -> None:
    for path in ("/api/v1/content", "/dashboard", "/api/v1/analytics/overview-typo"):
        await anonymous.get(path, headers=BROWSER, follow_redirects=False)
    analyst = {"Authorization": f"Bearer {token_for('analyst')}"}
    deadline = time.monotonic() + 30
    while True:  # the API process flushes its figures every 2 s
        res = await anonymous.get("/api/v1/analytics/system/health?minutes=5", headers=analyst)
        assert res.status_code == 200, res.text
        routes = {r["route"]: r for r in res.json()["routes"]}
        if "GET /dashboard" in routes and "GET /api/v1/content" in routes:
            break
        assert time.monotonic() < deadline, f"the refusals never reached the health figures: {routes}"
        await asyncio.sleep(0.5)
    assert routes["GET /api/v1/content"]["client_error_rate"] == 1.0
    assert routes["GET /dashboard"]["client_error_rate"] == 0
    assert all(r["server_error_rate"] == 0 for r in routes.values()), routes
