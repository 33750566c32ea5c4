"""Fixtures for asset tests: a migrated embedded deployment with a few content items."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from domain import content
from domain.content import NewContent
from domain.db import sync_engine
from domain.ids import new_id
from domain.media.uploads import original_key
from domain.migrate import upgrade
from domain.settings import Settings
from resources.database import OperationalDatabase
from resources.object_store import LocalObjectStore
from tests.conftest import record_test_upload
from tests.ffmpeg_frames import X264_FAST, ffmpeg, lavfi

MediaEnv = tuple[OperationalDatabase, LocalObjectStore]


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


@pytest.fixture(scope="session")
def clip(tmp_path_factory) -> bytes:
    """Two seconds of 320x180 H.264 video with AAC audio, made by ffmpeg once per session."""
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    ffmpeg(
        *lavfi("testsrc=size=320x180:rate=25:duration=2", "sine=duration=2"),
        "-shortest",
        *X264_FAST,
        "-c:a",
        "aac",
        str(path),
    )
    return path.read_bytes()


@pytest.fixture
def env(data_dir: Path, sqlite_url: str) -> MediaEnv:
    """A migrated SQLite operational DB and a local object store, as the media assets are given them."""
    upgrade(sqlite_url)
    return OperationalDatabase(url=sqlite_url), LocalObjectStore(root=str(data_dir / "objects"))


def store_upload(env: MediaEnv, data: bytes, kind: str = "video", **fields: object) -> uuid.UUID:
    """`data` stored as a new media's original and its upload recorded (other fields as
    `record_test_upload` takes them): the media id."""
    database, store = env
    media_id = new_id()
    store.put_bytes(original_key(media_id), data)
    with database.session() as session:
        record_test_upload(session, media_id=media_id, kind=kind, size=len(data), **fields)
    return media_id
