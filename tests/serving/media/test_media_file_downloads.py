"""The signed download routes, with no bearer token (the signature is the permission):

- `GET /api/v1/media/files/<media>/<expires>/<sig>/<path>` (`serving.media.files`): a published file
  under a media's signed folder, whole or as one byte range; an expired or tampered signature is
  refused, and so is any path that leaves the media's published folders.
- `GET /api/v1/media/variants/<id>/file?expires=&sig=` (`serving.media.controllers`): one variant's
  bytes for a per-variant signed link.

Files are written straight into the embedded object store, where the media assets put them."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.orm import Session

from domain.auth.keys import Keyring
from domain.db import sync_engine
from domain.media import urls
from domain.migrate import upgrade
from domain.schema import MediaAsset, MediaVariant
from domain.settings import Settings
from resources.object_store import LocalObjectStore
from serving.app import create_app

RUNG = "renditions/360p/stream.mp4"
# More than one 256 KiB block of the route's stream; random, so bytes from a wrong offset differ.
DATA = random.Random(20260301).randbytes(300_000)


@dataclass
class Media:
    client: AsyncTestClient
    keys: Keyring
    store: LocalObjectStore
    media_id: uuid.UUID
    settings: Settings

    def folder(self, media_id: uuid.UUID | None = None, *, now: float | None = None) -> str:
        return urls.files_base(self.keys, media_id or self.media_id, private=True, now=now)


@pytest.fixture
async def media(data_dir: Path, sqlite_url: str) -> AsyncIterator[Media]:
    upgrade(sqlite_url)
    settings = Settings(deployment="local", data_dir=data_dir, database_url=sqlite_url)
    app = create_app(settings)
    store = LocalObjectStore(root=str(settings.object_store_dir.resolve()))
    media_id = uuid.uuid4()
    store.put_bytes(f"media/{media_id}/{RUNG}", DATA)
    store.put_bytes(f"media/{media_id}/thumbnails/poster_320.jpg", b"\xff\xd8\xff poster \xff\xd9")
    store.put_bytes(f"media/{media_id}/original", b"the uploaded original: never served here")
    async with AsyncTestClient(app=app) as client:  # no Authorization header
        yield Media(client, app.state.auth.keys, store, media_id, settings)


async def raw_get(app: Litestar, path: str) -> tuple[int, bytes]:
    """GET `path` byte for byte, as a client that does not normalize dot segments sends it (httpx,
    like browsers, would resolve `..` before sending)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "server": ("testserver.local", 80),
        "client": ("127.0.0.1", 50000),
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [],
    }
    sent: list[dict] = []
    requested, done = False, anyio.Event()

    async def receive() -> dict:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()  # the client stays connected until the whole response has arrived
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            done.set()

    with anyio.fail_after(30):
        await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


async def test_a_valid_signature_streams_the_whole_file(media: Media) -> None:
    res = await media.client.get(f"{media.folder()}/{RUNG}")

    assert res.status_code == 200, res.text
    assert res.content == DATA
    assert res.headers["content-type"] == "video/mp4"
    assert res.headers["accept-ranges"] == "bytes"
    assert res.headers["content-length"] == str(len(DATA))
    assert res.headers["cache-control"].startswith("private, max-age=")
    assert 0 < int(res.headers["cache-control"].rsplit("=", 1)[1]) <= urls.PRIVATE_TTL_S
    poster = await media.client.get(f"{media.folder()}/thumbnails/poster_320.jpg")
    assert poster.status_code == 200 and poster.headers["content-type"] == "image/jpeg"
    assert poster.content == b"\xff\xd8\xff poster \xff\xd9"


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=1000-299999", 1000, 299_999),  # spans two blocks of the stream
        ("bytes=299500-", 299_500, 299_999),
        ("bytes=-64", 299_936, 299_999),
        ("bytes=299990-400000", 299_990, 299_999),  # an end past the file is clipped to it
    ],
)
async def test_a_byte_range_answers_206_with_exactly_those_bytes(
    media: Media, header: str, start: int, end: int
) -> None:
    res = await media.client.get(f"{media.folder()}/{RUNG}", headers={"Range": header})

    assert res.status_code == 206, res.text
    assert res.content == DATA[start : end + 1]
    assert res.headers["content-range"] == f"bytes {start}-{end}/{len(DATA)}"
    assert res.headers["content-length"] == str(end - start + 1)


@pytest.mark.parametrize(
    "header", ["bytes=300000-", "bytes=500-400", "bytes=0-1,5-9", "bytes=-", "pages=1-2"]
)
async def test_a_range_that_cannot_be_served_is_a_416(media: Media, header: str) -> None:
    res = await media.client.get(f"{media.folder()}/{RUNG}", headers={"Range": header})

    assert res.status_code == 416, res.text
    assert res.headers["content-range"] == f"bytes */{len(DATA)}"


async def test_an_expired_or_tampered_signature_is_refused(media: Media) -> None:
    expired = media.folder(now=time.time() - urls.PRIVATE_TTL_S - 60)  # signed, but an hour and more ago
    good = media.folder()
    prefix, expires, sig = good.rsplit("/", 2)
    flipped = ("1" if sig[0] == "0" else "0") + sig[1:]
    other = uuid.uuid4()
    media.store.put_bytes(f"media/{other}/{RUNG}", b"another media's file")
    _, other_expires, other_sig = media.folder(other).rsplit("/", 2)

    cases = {
        "expired": f"{expired}/{RUNG}",
        "flipped signature": f"{prefix}/{expires}/{flipped}/{RUNG}",
        "extended expiry": f"{prefix}/{int(expires) + 3600}/{sig}/{RUNG}",
        "this signature on another media": f"{urls.FILES_PREFIX}/{other}/{expires}/{sig}/{RUNG}",
        "another media's signature here": f"{prefix}/{other_expires}/{other_sig}/{RUNG}",
    }
    answers = {name: await media.client.get(url) for name, url in cases.items()}

    assert {name: res.status_code for name, res in answers.items()} == dict.fromkeys(cases, 403)
    assert "expired" in answers["expired"].json()["detail"]
    assert "signature does not match" in answers["flipped signature"].json()["detail"]
    assert all(DATA[:100] not in res.content and b"another" not in res.content for res in answers.values())
    assert (await media.client.get(f"{good}/{RUNG}")).status_code == 200  # the untouched link works


async def test_a_path_outside_the_media_folder_is_refused(media: Media) -> None:
    other = uuid.uuid4()
    media.store.put_bytes(f"media/{other}/{RUNG}", b"another media's private file")
    folder = media.folder()
    escapes = [
        "original",  # the uploaded original is not published
        f"renditions/%2e%2e/%2e%2e/{other}/{RUNG}",
        f"renditions%2F..%2F..%2F{other}%2F{RUNG.replace('/', '%2F')}",
        "renditions/360p/..%2F..%2Foriginal",
        "renditions/.hidden",
        "uploads/whatever.mp4",
    ]
    for rest in escapes:
        res = await media.client.get(f"{folder}/{rest}")
        assert res.status_code == 404, (rest, res.status_code, res.text)
        assert b"private file" not in res.content and b"uploaded original" not in res.content

    # Dot segments sent as they are (no client-side normalization).
    app = media.client.app
    for rest in (f"../../../{other}/{RUNG}", f"renditions/../../{other}/{RUNG}", "renditions/../original"):
        status, body = await raw_get(app, f"{folder}/{rest}")
        assert status == 404, (rest, status, body)
        assert b"private file" not in body and b"uploaded original" not in body
    assert (await raw_get(app, f"{folder}/{RUNG}")) == (200, DATA)  # the same way, a good path works


async def test_a_master_playlist_re_signs_another_medias_dubbed_track(media: Media) -> None:
    dub = uuid.uuid4()
    media.store.put_bytes(f"media/{dub}/renditions/ar/audio.m3u8", b"#EXTM3U\n#EXT-X-ENDLIST\n")
    media.store.put_bytes(
        f"media/{media.media_id}/renditions/master.m3u8",
        f'#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",LANGUAGE="ar",'
        f'URI="../../../{dub}/renditions/ar/audio.m3u8"\n360p/stream.m3u8\n'.encode(),
    )

    res = await media.client.get(f"{media.folder()}/renditions/master.m3u8")

    assert res.status_code == 200, res.text
    assert res.headers["content-type"].startswith("application/vnd.apple.mpegurl")
    [uri] = [line.split('URI="')[1].rstrip('"') for line in res.text.splitlines() if "URI=" in line]
    assert uri.startswith(f"{urls.FILES_PREFIX}/{dub}/") and uri.endswith("/renditions/ar/audio.m3u8")
    assert "360p/stream.m3u8" in res.text.splitlines()  # the media's own rungs stay relative
    dubbed = await media.client.get(uri)
    assert dubbed.status_code == 200 and dubbed.content == b"#EXTM3U\n#EXT-X-ENDLIST\n"


# --- /api/v1/media/variants/<id>/file -------------------------------------------------------------


def add_variant(settings: Settings, media_id: uuid.UUID, key: str, size: int) -> uuid.UUID:
    engine = sync_engine(settings.database_url)
    with Session(engine) as session, session.begin():
        session.add(
            MediaAsset(
                id=media_id,
                content_type="video",
                file_size=size,
                s3_key=f"media/{media_id}/original",
                is_private=True,
                upload_status="completed",
            )
        )
        session.flush()
        variant = MediaVariant(
            media_asset_id=media_id,
            variant_type="mp4",
            format="mp4",
            quality="360p",
            s3_key=key,
            file_size=size,
        )
        session.add(variant)
        session.flush()
        variant_id = variant.id
    engine.dispose()
    return variant_id


async def test_the_per_variant_signed_link_streams_the_variant_and_refuses_a_bad_signature(
    media: Media,
) -> None:
    key = f"media/{media.media_id}/{RUNG}"
    variant_id = add_variant(media.settings, media.media_id, key, len(DATA))
    link = urls.signed_path(media.keys, variant_id, private=True)
    path, query = link.split("?")
    expires, sig = (part.split("=")[1] for part in query.split("&"))
    stale = int(time.time()) - 60

    res = await media.client.get(link)
    refused = {
        "flipped": await media.client.get(f"{path}?expires={expires}&sig={'0' * len(sig)}"),
        "extended": await media.client.get(f"{path}?expires={int(expires) + 60}&sig={sig}"),
        "expired": await media.client.get(
            f"{path}?expires={stale}&sig={urls.signature(media.keys, variant_id, stale)}"
        ),
        "other variant": await media.client.get(
            f"{urls.FILES_PREFIX.rsplit('/', 1)[0]}/variants/{uuid.uuid4()}/file?expires={expires}&sig={sig}"
        ),
    }
    ghost = uuid.uuid4()
    unknown = await media.client.get(urls.signed_path(media.keys, ghost, private=True))

    assert res.status_code == 200, res.text
    assert res.content == DATA and res.headers["content-type"] == "video/mp4"
    assert res.headers["content-length"] == str(len(DATA))
    assert {name: r.status_code for name, r in refused.items()} == dict.fromkeys(refused, 403)
    assert "expired" in refused["expired"].json()["detail"]
    assert unknown.status_code == 404  # a good signature for a variant that does not exist
