"""Fixtures for asset tests: a migrated embedded deployment with a few content items."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.orm import Session

from domain import content
from domain.content import NewContent
from domain.db import sync_engine
from domain.migrate import upgrade
from domain.settings import Settings


@pytest.fixture
def embedded(local_settings: Settings) -> Settings:
    """An embedded deployment (SQLite + chDB) in a temp dir, operational DB migrated."""
    upgrade(local_settings.database_url)
    return local_settings


@pytest.fixture
def seeded(embedded: Settings) -> dict[str, uuid.UUID]:
    """Three items: `published` (video, ar + en title, two tags), `draft` (article, en title only),
    `deleted` (audio, ar title only, soft-deleted while still a draft)."""
    engine = sync_engine(embedded.database_url)
    with Session(engine) as session, session.begin():
        published = content.create_content(
            session,
            NewContent(
                type="video", title={"ar": "مرحبا بالعالم", "en": "Hello world"}, tags=["news", "intro"]
            ),
        )
        content.update_content(
            session, published.id, {"status": "in_review"}, expected_version=published.version
        )
        content.publish(session, published.id)
        draft = content.create_content(session, NewContent(type="article", title={"en": "Draft notes"}))
        deleted = content.create_content(session, NewContent(type="audio", title={"ar": "حلقة محذوفة"}))
        content.soft_delete(session, deleted.id)
        ids = {"published": published.id, "draft": draft.id, "deleted": deleted.id}
    engine.dispose()
    return ids
