"""Application-wide promises: health, OpenAPI docs, every route declares its permission."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import AsyncTestClient

from serving.app import create_app
from serving.permissions import PUBLIC


async def test_health_reports_each_backend(sqlite_client: AsyncTestClient) -> None:
    res = await sqlite_client.get("/api/v1/health")
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["status"] == "ok" and body["deployment"] == "local"
    backends = body["backends"]
    assert set(backends) == {"database", "event_bus", "object_store", "warehouse", "cache"}
    assert backends["database"]["backend"] == "sqlite"
    assert backends["object_store"]["backend"] == "local"
    assert backends["warehouse"]["backend"] == "chdb"
    assert all(b["status"] == "ok" for b in backends.values())


async def test_openapi_docs_are_served(sqlite_client: AsyncTestClient) -> None:
    spec = await sqlite_client.get("/api/docs/openapi.json")
    assert spec.status_code == 200
    paths = spec.json()["paths"]
    assert "/api/v1/content/{item_id}/publish" in paths
    assert paths["/api/v1/content"]["post"]["operationId"] == "createContent"
    page = await sqlite_client.get("/api/docs")
    assert page.status_code == 200 and "<html" in page.text.lower()


def test_every_route_declares_a_permission(local_settings) -> None:
    app: Litestar = create_app(local_settings)
    undeclared = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if (
                handler.http_methods != {"OPTIONS"}
                and handler.opt.get("permission") is None
                and not _is_docs(route.path)
            ):
                undeclared.append(f"{route.path} {getattr(handler, 'http_methods', '')}")
    assert undeclared == []
    declared = {
        h.opt["permission"]
        for r in app.routes
        for h in getattr(r, "route_handlers", [])
        if "permission" in h.opt
    }
    assert PUBLIC in declared and "content:publish" in declared


def _is_docs(path: str) -> bool:
    return path.startswith("/api/docs")
