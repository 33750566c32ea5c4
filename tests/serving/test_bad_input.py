"""Bad input gets a 4xx problem-details body naming the field, and changes nothing."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from litestar.testing import AsyncTestClient

from domain.db import sync_engine

API = "/api/v1/content"


def counts(url: str) -> tuple[int, int]:
    engine = sync_engine(url)
    with engine.connect() as conn:
        result = (
            conn.scalar(sa.text("SELECT count(*) FROM content_items")),
            conn.scalar(sa.text("SELECT count(*) FROM outbox_events")),
        )
    engine.dispose()
    return result


def assert_problem(response, status: int, field: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    if field is not None:
        fields = [e.get("field") for e in body.get("errors", [])]
        assert field in fields or field in body["detail"], body
    return body


@pytest.fixture
async def existing(client: AsyncTestClient) -> dict:
    res = await client.post(API, json={"type": "article", "title": {"en": "Kept"}, "slug": "kept"})
    return res.json()


@pytest.mark.parametrize(
    ("payload", "status", "field"),
    [
        ({"type": "article", "title": {"en": "x"}, "colour": "red"}, 400, "colour"),
        ({"type": "podcast", "title": {"en": "x"}}, 400, "type"),
        ({"type": "article", "title": {"en": 5}}, 400, "title.en"),
        ({"type": "article", "title": {"en": "x" * 301}}, 400, "title.en"),
        ({"type": "article", "title": {"fr": "bonjour"}}, 400, "title.fr"),
        ({"type": "article", "title": {}}, 422, "title"),
        ({"type": "article", "title": {"en": "x"}, "slug": "Bad Slug!"}, 422, "slug"),
        ({"type": "article", "title": {"en": "x"}, "tags": "news"}, 400, "tags"),
        ({"title": {"en": "x"}}, 400, "type"),
    ],
)
async def test_invalid_create_is_refused(
    client: AsyncTestClient, migrated_url: str, existing: dict, payload: dict, status: int, field: str
) -> None:
    before = counts(migrated_url)
    assert_problem(await client.post(API, json=payload), status, field)
    assert counts(migrated_url) == before


async def test_invalid_json(client: AsyncTestClient, migrated_url: str, existing: dict) -> None:
    before = counts(migrated_url)
    res = await client.post(
        API, content=b'{"type": "article", ', headers={"content-type": "application/json"}
    )
    assert_problem(res, 400)
    assert counts(migrated_url) == before


async def test_duplicate_slug(client: AsyncTestClient, migrated_url: str, existing: dict) -> None:
    before = counts(migrated_url)
    res = await client.post(API, json={"type": "video", "title": {"en": "Other"}, "slug": "kept"})
    assert_problem(res, 409, "slug")
    assert counts(migrated_url) == before


async def test_illegal_transition(client: AsyncTestClient, migrated_url: str, existing: dict) -> None:
    url = f"{API}/{existing['id']}"
    before = counts(migrated_url)
    assert_problem(await client.post(f"{url}/publish"), 409, "status")  # draft cannot be published directly
    assert_problem(
        await client.patch(url, json={"status": "published"}, headers={"If-Match": '"v1"'}), 400, "status"
    )
    assert counts(migrated_url) == before
    assert (await client.get(url)).json()["status"] == "draft"


async def test_stale_or_missing_etag(client: AsyncTestClient, migrated_url: str, existing: dict) -> None:
    url = f"{API}/{existing['id']}"
    assert (
        await client.patch(url, json={"title": {"en": "v2"}}, headers={"If-Match": '"v1"'})
    ).status_code == 200
    before = counts(migrated_url)
    assert_problem(
        await client.patch(url, json={"title": {"en": "lost"}}, headers={"If-Match": '"v1"'}), 412, "If-Match"
    )
    assert_problem(await client.patch(url, json={"title": {"en": "lost"}}), 428)
    assert_problem(
        await client.patch(url, json={"title": {"en": "lost"}}, headers={"If-Match": "garbage"}),
        422,
        "If-Match",
    )
    assert counts(migrated_url) == before
    assert (await client.get(url)).json()["title"] == {"en": "v2"}


async def test_schedule_in_the_past_and_unknown_ids(client: AsyncTestClient, existing: dict) -> None:
    url = f"{API}/{existing['id']}"
    assert_problem(
        await client.post(f"{url}/schedule", json={"publish_at": "2000-01-01T00:00:00Z"}), 422, "publish_at"
    )
    assert_problem(await client.get(f"{API}/0193a000-0000-7000-8000-000000000000"), 404)
    assert_problem(await client.get(f"{API}/not-a-uuid"), 404)
    assert_problem(await client.get(API, params={"cursor": "@@@"}), 422, "cursor")
    assert_problem(await client.get(API, params={"limit": 1000}), 400, "limit")


async def test_every_refusal_has_its_own_title(anonymous: AsyncTestClient, token_for) -> None:
    viewer = {"Authorization": f"Bearer {token_for('viewer')}"}
    answers = {
        401: await anonymous.get(API),
        403: await anonymous.post(API, json={}, headers=viewer),
        404: await anonymous.get("/api/v1/no-such-route", headers=viewer),
        405: await anonymous.put(API, json={}, headers=viewer),
    }
    titles = {status: res.json()["title"] for status, res in answers.items()}
    assert [res.status_code for res in answers.values()] == list(answers)
    assert titles == {401: "Unauthorized", 403: "Forbidden", 404: "Not found", 405: "Method not allowed"}


async def test_a_missing_field_is_named(client: AsyncTestClient) -> None:
    res = await client.post(API, json={"title": {"en": "No type"}})
    assert res.status_code == 400
    assert [e["field"] for e in res.json()["errors"]] == ["type"]
