"""Attacks on unpublished and live content through the HTTP API (security review, findings 3 and 6).

- A viewer (the role self-registration grants) reads published items only: drafts, items in review,
  scheduled (embargoed) and archived ones are 404 to them, in lists and single reads, and so is the
  media of such items; their media links are private (signed, short-lived, never the CDN), and a
  public link handed out while an item was published stops working once it is not.
- An author (`content:update` without `content:publish`) cannot change live content: edit or archive
  a published or scheduled item, nor attach media (a dub) to one. Publish, archive and delete land in
  the audit trail with who did them.
"""

from __future__ import annotations

import base64
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from litestar.testing import AsyncTestClient
from sqlalchemy.orm import Session, sessionmaker

from domain.content import publish_due
from domain.schema import MediaAsset, MediaVariant, TusUpload
from domain.settings import Settings
from resources.object_store import LocalObjectStore
from tests.serving.conftest import bearer, self_register

API = "/api/v1/content"
MEDIA = "/api/v1/media"
UNPUBLISHED = ("draft", "in_review", "scheduled", "archived")


def article(slug: str) -> dict:
    return {"type": "article", "title": {"ar": "خبر", "en": f"Story {slug}"}, "slug": slug, "tags": ["news"]}


async def make_item(client: AsyncTestClient, editor: dict, status: str) -> dict:
    """An item in `status`, made through the API by an editor."""
    slug = f"{status.replace('_', '-')}-{uuid.uuid4().hex[:6]}"
    item = (await client.post(API, json=article(slug), headers=editor)).json()
    url = f"{API}/{item['id']}"
    if status != "draft":
        item = (
            await client.patch(url, json={"status": "in_review"}, headers={**editor, "If-Match": '"v1"'})
        ).json()
    if status == "scheduled":
        at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        item = (await client.post(f"{url}/schedule", json={"publish_at": at}, headers=editor)).json()
    if status in ("published", "archived"):
        item = (await client.post(f"{url}/publish", headers=editor)).json()
    if status == "archived":
        res = await client.patch(
            url, json={"status": "archived"}, headers={**editor, "If-Match": f'"v{item["version"]}"'}
        )
        item = res.json()
    assert item["status"] == status, item
    return item


@pytest.fixture
async def staff(new_user, anonymous: AsyncTestClient, data_dir: Path) -> dict[str, dict[str, str]]:
    """Headers per role; the viewer is an account anyone can make (registered through the API)."""
    people = {
        role: bearer(new_user(f"{role}-{uuid.uuid4().hex[:6]}", [role])[1])
        for role in ("editor", "author", "analyst")
    }
    people["viewer"] = bearer((await self_register(anonymous, data_dir, "stranger"))[1])
    return people


async def test_a_viewer_lists_and_reads_published_content_only(anonymous: AsyncTestClient, staff) -> None:
    items = {
        status: await make_item(anonymous, staff["editor"], status) for status in (*UNPUBLISHED, "published")
    }
    viewer = staff["viewer"]

    listed = (await anonymous.get(API, headers=viewer)).json()["items"]
    assert [i["id"] for i in listed] == [items["published"]["id"]]
    for status in UNPUBLISHED:
        filtered = await anonymous.get(API, params={"status": status}, headers=viewer)
        assert filtered.status_code == 200 and filtered.json()["items"] == [], status
        searched = await anonymous.get(API, params={"q": "story", "status": status}, headers=viewer)
        assert searched.json()["items"] == [], status
        one = await anonymous.get(f"{API}/{items[status]['id']}", headers=viewer)
        assert one.status_code == 404, (status, one.text)  # not 403: that it exists does not leak
        assert one.headers["content-type"].startswith("application/problem+json")
        etag = f'"v{items[status]["version"]}"'
        conditional = await anonymous.get(
            f"{API}/{items[status]['id']}", headers={**viewer, "If-None-Match": etag}
        )
        assert conditional.status_code == 404, status  # a 304 would confirm the guess
    assert (await anonymous.get(f"{API}/{items['published']['id']}", headers=viewer)).status_code == 200
    # An analyst reads published content too, and nothing else.
    assert [i["id"] for i in (await anonymous.get(API, headers=staff["analyst"])).json()["items"]] == [
        items["published"]["id"]
    ]

    # Holders of content:read_unpublished see everything.
    for role in ("editor", "author"):
        everything = (await anonymous.get(API, headers=staff[role])).json()["items"]
        assert {i["id"] for i in everything} == {i["id"] for i in items.values()}, role
        for status in UNPUBLISHED:
            assert (
                await anonymous.get(f"{API}/{items[status]['id']}", headers=staff[role])
            ).status_code == 200


def add_media(
    factory: sessionmaker[Session], settings: Settings, item_id: str | None, *, private: bool = False
) -> tuple[uuid.UUID, str]:
    """A processed media with one published rendition (row and bytes), as media_renditions leaves it."""
    store = LocalObjectStore(root=str(settings.object_store_dir.resolve()))
    media_id = uuid.uuid4()
    key = f"media/{media_id}/renditions/run1/360p.mp4"
    store.put_bytes(key, b"rendition bytes")
    with factory.begin() as session:
        session.add(
            MediaAsset(
                id=media_id,
                content_item_id=uuid.UUID(item_id) if item_id else None,
                content_type="video",
                mime_type="video/mp4",
                file_size=15,
                s3_key=f"media/{media_id}/original",
                upload_status="completed",
                is_private=private,
            )
        )
        session.flush()
        session.add(
            MediaVariant(
                media_asset_id=media_id,
                variant_type="mp4",
                format="mp4",
                quality="360p",
                s3_key=key,
                file_size=15,
            )
        )
    return media_id, key


async def test_media_of_unpublished_items_is_private(
    anonymous: AsyncTestClient, staff, db_sessions, settings: Settings
) -> None:
    draft = await make_item(anonymous, staff["editor"], "draft")
    scheduled = await make_item(anonymous, staff["editor"], "scheduled")
    published = await make_item(anonymous, staff["editor"], "published")
    hidden = {
        "draft": add_media(db_sessions, settings, draft["id"])[0],
        "scheduled": add_media(db_sessions, settings, scheduled["id"])[0],
        "unattached": add_media(db_sessions, settings, None)[0],
    }
    public, _ = add_media(db_sessions, settings, published["id"])
    viewer = staff["viewer"]

    for name, media_id in hidden.items():
        for path in (f"{MEDIA}/{media_id}/variants", f"{MEDIA}/{media_id}"):
            res = await anonymous.get(path, headers=viewer)
            assert res.status_code == 404, (name, path, res.status_code)
        staff_view = await anonymous.get(f"{MEDIA}/{media_id}/variants", headers=staff["author"])
        assert staff_view.status_code == 200, name
        [variant] = staff_view.json()["variants"]
        assert variant["url"].startswith("/api/v1/media/files/")  # signed, never the CDN
        expires = int(variant["url"].split("/")[6])
        assert expires <= datetime.now(UTC).timestamp() + 3600 + 5  # the private (1 h) lifetime
        assert (await anonymous.get(variant["url"])).content == b"rendition bytes"

    listed = await anonymous.get(f"{MEDIA}/{public}/variants", headers=viewer)
    assert listed.status_code == 200, listed.text
    link = listed.json()["variants"][0]["url"]
    assert (await anonymous.get(link)).content == b"rendition bytes"
    assert (await anonymous.get(f"{MEDIA}/{public}", headers=viewer)).status_code == 200

    # The item is archived: the public link the viewer was given stops working at once.
    archived = await anonymous.patch(
        f"{API}/{published['id']}",
        json={"status": "archived"},
        headers={**staff["editor"], "If-Match": f'"v{published["version"]}"'},
    )
    assert archived.status_code == 200, archived.text
    assert (await anonymous.get(link)).status_code == 404
    assert (await anonymous.get(f"{MEDIA}/{public}/variants", headers=viewer)).status_code == 404


async def test_a_cdn_never_serves_media_of_an_unpublished_item(
    migrated_url: str, data_dir: Path, new_user, db_sessions
) -> None:
    from serving.app import create_app

    settings = Settings(
        deployment="local",
        data_dir=data_dir,
        database_url=migrated_url,
        cdn_base_url="https://cdn.example.test",
    )
    async with AsyncTestClient(app=create_app(settings)) as client:
        editor = bearer(new_user(f"editor-{uuid.uuid4().hex[:6]}", ["editor"])[1])
        draft = await make_item(client, editor, "draft")
        published = await make_item(client, editor, "published")
        media_draft, _ = add_media(db_sessions, settings, draft["id"])
        media_published, key = add_media(db_sessions, settings, published["id"])
        draft_url = (await client.get(f"{MEDIA}/{media_draft}/variants", headers=editor)).json()["variants"][
            0
        ]["url"]
        public_url = (await client.get(f"{MEDIA}/{media_published}/variants", headers=editor)).json()[
            "variants"
        ][0]["url"]
    assert draft_url.startswith("/api/v1/media/files/")
    assert public_url == f"https://cdn.example.test/{key}"


async def test_an_author_cannot_change_live_content(anonymous: AsyncTestClient, staff) -> None:
    author, editor = staff["author"], staff["editor"]
    for status in ("published", "scheduled"):
        item = await make_item(anonymous, editor, status)
        url, etag = f"{API}/{item['id']}", f'"v{item["version"]}"'
        edit = await anonymous.patch(
            url, json={"title": {"en": "Defaced"}}, headers={**author, "If-Match": etag}
        )
        archive = await anonymous.patch(
            url, json={"status": "archived"}, headers={**author, "If-Match": etag}
        )
        to_draft = await anonymous.patch(url, json={"status": "draft"}, headers={**author, "If-Match": etag})
        assert (edit.status_code, archive.status_code, to_draft.status_code) == (403, 403, 403), status
        assert "content:publish" in edit.json()["detail"]
        after = (await anonymous.get(url, headers=editor)).json()
        assert (after["title"]["en"], after["status"], after["version"]) == (
            item["title"]["en"],
            status,
            item["version"],
        )
        # An editor may.
        ok = await anonymous.patch(
            url, json={"title": {"en": "Corrected"}}, headers={**editor, "If-Match": etag}
        )
        assert ok.status_code == 200, ok.text

    # Drafts and items in review are the author's to change, their own or anyone's.
    draft = await make_item(anonymous, editor, "in_review")
    changed = await anonymous.patch(
        f"{API}/{draft['id']}",
        json={"title": {"en": "Better"}},
        headers={**author, "If-Match": f'"v{draft["version"]}"'},
    )
    assert changed.status_code == 200, changed.text


@pytest.fixture(scope="module")
def dub(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("dub") / "dub.m4a"
    tone = ["-f", "lavfi", "-i", "sine=frequency=330:duration=1"]
    subprocess.run(["ffmpeg", "-v", "error", *tone, "-c:a", "aac", str(path)], check=True)
    return path


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def test_an_author_cannot_attach_a_dub_to_a_published_video(
    anonymous: AsyncTestClient, staff, dub: Path, db_sessions
) -> None:
    author, editor = staff["author"], staff["editor"]
    video = (
        await anonymous.post(
            API, json={**article(f"film-{uuid.uuid4().hex[:6]}"), "type": "video"}, headers=editor
        )
    ).json()
    await anonymous.patch(
        f"{API}/{video['id']}", json={"status": "in_review"}, headers={**editor, "If-Match": '"v1"'}
    )
    video = (await anonymous.post(f"{API}/{video['id']}/publish", headers=editor)).json()
    form = {"content_item_id": video["id"], "language": "ar"}

    multipart = await anonymous.post(
        f"{MEDIA}/upload",
        files={"file": ("dub.m4a", dub.read_bytes(), "audio/mp4")},
        data=form,
        headers=author,
    )
    metadata = f"filename {b64('dub.m4a')},content_item_id {b64(video['id'])},language {b64('ar')}"
    tus = await anonymous.post(
        f"{MEDIA}/tus",
        headers={
            **author,
            "Tus-Resumable": "1.0.0",
            "Upload-Length": str(dub.stat().st_size),
            "Upload-Metadata": metadata,
        },
    )

    assert (multipart.status_code, tus.status_code) == (403, 403), (multipart.text, tus.text)
    with db_sessions() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(MediaAsset)) == 0
        assert session.scalar(sa.select(sa.func.count()).select_from(TusUpload)) == 0
    by_editor = await anonymous.post(
        f"{MEDIA}/upload",
        files={"file": ("dub.m4a", dub.read_bytes(), "audio/mp4")},
        data=form,
        headers=editor,
    )
    assert by_editor.status_code == 201, by_editor.text
    # A draft takes the author's media as before.
    draft = await make_item(anonymous, editor, "draft")
    own = await anonymous.post(
        f"{MEDIA}/upload",
        files={"file": ("dub.m4a", dub.read_bytes(), "audio/mp4")},
        data={**form, "content_item_id": draft["id"]},
        headers=author,
    )
    assert own.status_code == 201, own.text


async def test_publish_archive_and_delete_are_audited(
    anonymous: AsyncTestClient, new_user, migrated_url: str
) -> None:
    editor_id, token = new_user(f"auditee-{uuid.uuid4().hex[:6]}", ["editor"])
    editor = bearer(token)
    admin = bearer(new_user(f"auditor-{uuid.uuid4().hex[:6]}", ["admin"])[1])
    item = await make_item(anonymous, editor, "archived")  # published, then archived
    gone = await make_item(anonymous, editor, "draft")
    assert (await anonymous.delete(f"{API}/{gone['id']}", headers=editor)).status_code == 204
    due = await make_item(anonymous, editor, "scheduled")
    from domain.db import sync_engine

    engine = sync_engine(migrated_url)
    with Session(engine) as session, session.begin():
        assert publish_due(session, datetime.now(UTC) + timedelta(hours=2)) == [uuid.UUID(due["id"])]
    engine.dispose()

    async def trail(action: str) -> list[tuple[str | None, str]]:
        res = await anonymous.get("/api/v1/audit/activities", params={"action": action}, headers=admin)
        assert res.status_code == 200, res.text
        return [(a["user_id"], a["resource_id"]) for a in res.json()["items"] if a["resource"] == "content"]

    assert await trail("content.published") == [(None, due["id"]), (str(editor_id), item["id"])]
    assert await trail("content.archived") == [(str(editor_id), item["id"])]
    assert await trail("content.deleted") == [(str(editor_id), gone["id"])]
    assert await trail("content.scheduled") == [(str(editor_id), due["id"])]
