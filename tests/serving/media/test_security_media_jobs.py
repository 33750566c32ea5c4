"""Attacks on media jobs through the HTTP API (security review, finding 12).

Holding `media:upload` is not a licence over other people's media: a job's status (HTTP and
WebSocket) and re-processing (`/transcode`, `/analyze`) are for the media's uploader and holders of
`content:update`; anyone else gets the answer an unknown id gets (404). One unfinished job per media
and kind (a second request is a 409 naming the pending job), and a per-user hourly cap (429 with
Retry-After) bound how much ffmpeg work one account can queue.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from litestar.testing import AsyncTestClient
from sqlalchemy.orm import Session, sessionmaker

from domain.schema import MediaJob, Role
from domain.settings import Settings
from serving.app import create_app
from tests.serving.conftest import bearer, make_user, mint_token, recorded

API = "/api/v1/media"


@pytest.fixture
def uploader_role(db_sessions: sessionmaker[Session]) -> str:
    """A deployment's own role: may upload, nothing else (no content:update)."""
    with db_sessions.begin() as session:
        session.add(Role(name="uploader", description="uploads media", permissions=["media:upload"]))
    return "uploader"


def job_count(factory: sessionmaker[Session], media_id: str) -> int:
    with factory() as session:
        return session.scalar(
            sa.select(sa.func.count())
            .select_from(MediaJob)
            .where(MediaJob.media_asset_id == uuid.UUID(media_id))
        )


async def test_another_uploader_can_neither_watch_nor_reprocess_my_media(
    anonymous: AsyncTestClient, new_user, uploader_role: str, db_sessions
) -> None:
    alice_id, alice_token = new_user(f"alice-{uuid.uuid4().hex[:6]}", [uploader_role])
    _, bob_token = new_user(f"bob-{uuid.uuid4().hex[:6]}", [uploader_role])
    alice, bob = bearer(alice_token), bearer(bob_token)
    media_id, job_id = recorded(db_sessions, alice_id)
    status_url = f"{API}/job/{job_id}/status"

    peek = await anonymous.get(status_url, headers=bob)
    transcode = await anonymous.post(f"{API}/transcode", json={"media_id": media_id}, headers=bob)
    analyze = await anonymous.post(f"{API}/analyze", json={"media_id": media_id}, headers=bob)
    with await anonymous.websocket_connect(f"{API}/job/{job_id}/ws", headers=bob) as ws:
        pushed = ws.receive_json()
        with db_sessions.begin() as session:  # the job finishes: a socket still pushing closes now
            session.get(MediaJob, uuid.UUID(job_id)).status = "completed"

    assert (peek.status_code, transcode.status_code, analyze.status_code) == (404, 404, 404)
    unknown = await anonymous.get(f"{API}/job/{uuid.uuid4()}/status", headers=bob)
    assert (unknown.status_code, unknown.json()["title"]) == (404, peek.json()["title"])  # as an unknown job
    assert pushed["type"] == "error" and "job_id" not in pushed
    assert job_count(db_sessions, media_id) == 1  # the upload's own job only

    # The uploader, and anyone holding content:update, may.
    assert (await anonymous.get(status_url, headers=alice)).status_code == 200
    with await anonymous.websocket_connect(f"{API}/job/{job_id}/ws", headers=alice) as ws:
        assert ws.receive_json()["type"] == "status"
    mine = await anonymous.post(f"{API}/transcode", json={"media_id": media_id}, headers=alice)
    assert mine.status_code == 202, mine.text
    author = bearer(new_user(f"author-{uuid.uuid4().hex[:6]}", ["author"])[1])
    assert (await anonymous.get(status_url, headers=author)).status_code == 200
    assert (
        await anonymous.post(f"{API}/analyze", json={"media_id": media_id}, headers=author)
    ).status_code == 202


async def test_one_unfinished_job_per_media_and_kind(
    anonymous: AsyncTestClient, new_user, uploader_role: str, db_sessions
) -> None:
    alice_id, token = new_user(f"alice-{uuid.uuid4().hex[:6]}", [uploader_role])
    alice = bearer(token)
    media_id, _ = recorded(db_sessions, alice_id)

    first = await anonymous.post(
        f"{API}/transcode", json={"media_id": media_id, "formats": ["hls"]}, headers=alice
    )
    again = await anonymous.post(
        f"{API}/transcode", json={"media_id": media_id, "formats": ["mp4"]}, headers=alice
    )
    analyze = await anonymous.post(f"{API}/analyze", json={"media_id": media_id}, headers=alice)
    assert (first.status_code, again.status_code, analyze.status_code) == (202, 409, 202), again.text
    assert again.headers["content-type"].startswith("application/problem+json")
    assert first.json()["status_url"] in again.json()["detail"]
    assert job_count(db_sessions, media_id) == 3  # process, transcode, analyze

    with db_sessions.begin() as session:  # a run worker starts the transcode: still unfinished
        session.get(MediaJob, uuid.UUID(first.json()["job_id"])).status = "processing"
    running = await anonymous.post(f"{API}/transcode", json={"media_id": media_id}, headers=alice)
    assert running.status_code == 409
    with db_sessions.begin() as session:  # ... and finishes it
        session.get(MediaJob, uuid.UUID(first.json()["job_id"])).status = "completed"
    after = await anonymous.post(f"{API}/transcode", json={"media_id": media_id}, headers=alice)
    assert after.status_code == 202, after.text


@pytest.fixture
async def capped(migrated_url: str, data_dir: Path) -> AsyncIterator[AsyncTestClient]:
    settings = Settings(
        deployment="local", data_dir=data_dir, database_url=migrated_url, media_reprocess_per_hour=3
    )
    async with AsyncTestClient(app=create_app(settings)) as client:
        yield client


async def test_reprocessing_requests_are_capped_per_user(
    capped: AsyncTestClient, migrated_url, db_sessions
) -> None:
    alice_id = make_user(migrated_url, f"alice-{uuid.uuid4().hex[:6]}", ["editor"])
    carol_id = make_user(migrated_url, f"carol-{uuid.uuid4().hex[:6]}", ["editor"])
    alice, carol = (
        bearer(mint_token(capped.app, migrated_url, alice_id)),
        bearer(mint_token(capped.app, migrated_url, carol_id)),
    )
    media = [recorded(db_sessions, alice_id)[0] for _ in range(4)]

    answers = [
        (await capped.post(f"{API}/{path}", json={"media_id": m}, headers=alice)).status_code
        for path, m in (("transcode", media[0]), ("analyze", media[1]), ("transcode", media[1]))
    ]
    refused = await capped.post(f"{API}/transcode", json={"media_id": media[2]}, headers=alice)
    other = await capped.post(f"{API}/transcode", json={"media_id": media[3]}, headers=carol)

    assert answers == [202, 202, 202]
    assert refused.status_code == 429, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert 0 < int(refused.headers["retry-after"]) <= 3600
    assert job_count(db_sessions, media[2]) == 1  # nothing queued for the refused request
    assert other.status_code == 202  # per user: another account is not held up
