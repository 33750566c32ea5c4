"""Attack: the public health endpoint as a reconnaissance and load tool.

`GET /api/v1/health` used to answer anyone with the deployment, every backend's name, path and
latency, and the raw text of a backend's error (paths, hosts, driver messages), querying five
backends on every anonymous call. Now it is a liveness answer with nothing in it, and the detail is
`GET /api/v1/health/backends`, for holders of `health:read` (analyst, admin), computed at most once
every few seconds whoever floods it."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa
from litestar.testing import AsyncTestClient

from serving.health import controllers as health_controllers

HEALTH = "/api/v1/health"


async def test_the_public_health_answer_says_nothing_but_ok(anonymous: AsyncTestClient) -> None:
    res = await anonymous.get(HEALTH)
    assert res.status_code == 200, res.text
    assert res.json() == {"status": "ok"}
    assert res.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("role", ["viewer", "author", "editor"])
async def test_backend_detail_needs_health_read(anonymous: AsyncTestClient, token_for, role: str) -> None:
    nobody = await anonymous.get(f"{HEALTH}/backends")
    refused = await anonymous.get(
        f"{HEALTH}/backends", headers={"Authorization": f"Bearer {token_for(role)}"}
    )
    assert nobody.status_code == 401
    assert refused.status_code == 403 and "latency_ms" not in refused.text


@pytest.mark.parametrize("role", ["analyst", "admin"])
async def test_backend_detail_for_holders_of_health_read_is_cached(
    anonymous: AsyncTestClient, token_for, role: str
) -> None:
    headers = {"Authorization": f"Bearer {token_for(role)}"}
    started = time.monotonic()
    first = await anonymous.get(f"{HEALTH}/backends", headers=headers)
    second = await anonymous.get(f"{HEALTH}/backends", headers=headers)
    elapsed = time.monotonic() - started
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["status"] == "ok" and body["deployment"] == "local"
    assert set(body["backends"]) == {"database", "event_bus", "object_store", "warehouse", "cache"}
    assert all(b["status"] == "ok" for b in body["backends"].values())
    # (a machine stalled for longer than the cache lasts may legitimately see a fresh answer)
    if elapsed < getattr(health_controllers, "DETAIL_CACHE_SECONDS", 0):
        assert second.json()["checked_at"] == body["checked_at"], "the backends were queried again"


async def test_a_dead_database_is_a_503_without_its_error_text(
    postgres_url: str, data_dir, anonymous_factory
) -> None:
    """The database goes away under a running API: the public answer turns 503 and still says
    nothing about why (no driver message, host or database name)."""
    async with anonymous_factory(postgres_url) as client:
        assert (await client.get(HEALTH)).status_code == 200
        database = sa.engine.make_url(postgres_url).database
        admin = sa.create_engine(
            postgres_url.replace("postgresql://", "postgresql+psycopg://", 1).replace(
                f"/{database}", "/postgres"
            ),
            isolation_level="AUTOCOMMIT",
        )
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE "{database}" WITH (FORCE)'))
        admin.dispose()
        deadline = time.monotonic() + 10
        while True:  # the previous answer may be remembered for a moment
            res = await client.get(HEALTH)
            if res.status_code != 200 or time.monotonic() > deadline:
                break
    assert res.status_code == 503
    assert res.json() == {"status": "unavailable"}
    assert database not in res.text and "127.0.0.1" not in res.text


@pytest.fixture
def anonymous_factory(data_dir):
    from contextlib import asynccontextmanager

    from domain.migrate import upgrade
    from domain.settings import Settings
    from serving.app import create_app

    @asynccontextmanager
    async def make(url: str):
        upgrade(url)
        app = create_app(Settings(deployment="local", data_dir=data_dir, database_url=url))
        async with AsyncTestClient(app=app) as client:
            yield client

    return make
