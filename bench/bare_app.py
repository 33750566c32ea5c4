"""The baseline for API benchmarks: a bare Litestar route returning a body of the same shape as
`GET /api/v1/content/{id}`, with no database behind it."""

from __future__ import annotations

import uuid

from litestar import Litestar, get

BODY = {
    "id": "00000000-0000-7000-8000-000000000000",
    "type": "article",
    "title": {"ar": "مقالة تجريبية للقياس", "en": "Benchmark article"},
    "description": {"ar": "وصف قصير", "en": "A short description"},
    "slug": "benchmark-article",
    "status": "published",
    "tags": ["news", "bench"],
    "metadata": {"source": "bench"},
    "version": 3,
    "created_at": "2026-11-24T10:00:00Z",
    "updated_at": "2026-11-24T10:00:00Z",
    "publish_at": None,
    "published_at": "2026-11-24T10:00:00Z",
    "created_by": None,
    "updated_by": None,
}


@get("/bare/{item_id:uuid}", opt={"permission": "public"})
async def bare(item_id: uuid.UUID) -> dict:
    return {**BODY, "id": str(item_id)}


def create_bare_app() -> Litestar:
    return Litestar([bare], openapi_config=None)
