"""Application-wide promises: health, OpenAPI docs, every route declares its permission."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from domain.migrate import NotMigrated, upgrade
from serving.app import create_app
from serving.permissions import PUBLIC


async def test_health_reports_each_backend(sqlite_client: AsyncTestClient) -> None:
    live = await sqlite_client.get("/api/v1/health", headers={"Authorization": ""})
    assert live.status_code == 200 and live.json() == {"status": "ok"}  # public, and nothing more
    res = await sqlite_client.get("/api/v1/health/backends")  # the client is an admin's (health:read)
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
    upgrade(local_settings.database_url)
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


def test_the_api_on_an_unmigrated_database_says_what_to_run(data_dir: Path) -> None:
    """Started by uvicorn on a database without the schema, the API stops with one line naming
    `thmnayah migrate` and a non-zero status (not a traceback from the first query)."""
    env = {"PATH": "/usr/bin:/bin", "THMNAYAH_DATA_DIR": str(data_dir), "HOME": str(data_dir)}
    done = subprocess.run(
        [sys.executable, "-m", "uvicorn", "serving.app:create_app", "--factory", "--port", "0"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        f"the database sqlite:///{data_dir / 'thmnayah.db'} has no schema yet: run `thmnayah migrate` first"
    ]


def test_a_database_behind_the_code_is_refused(local_settings) -> None:
    upgrade(local_settings.database_url, "0005")
    with pytest.raises(
        NotMigrated, match=r"is at migration 0005, this code needs \d+: run `thmnayah migrate`"
    ):
        create_app(local_settings)
    upgrade(local_settings.database_url)
    assert isinstance(create_app(local_settings), Litestar)
