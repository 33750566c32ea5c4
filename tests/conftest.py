"""Shared fixtures: temp data dirs, both operational databases, service availability.

Tests that need PostgreSQL, Redis or NATS skip with a reason when the service is absent, unless
REQUIRE_SERVICES=1 (set by .ci/run), in which case a missing service fails the test.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import pytest
import sqlalchemy as sa
import uvicorn
from litestar import Litestar
from sqlalchemy.orm import Session

from domain.ids import new_id
from domain.media.uploads import record_upload
from domain.migrate import upgrade
from domain.schema import MediaAsset, MediaJob
from domain.settings import Settings

POSTGRES_URL = os.environ.get("THMNAYAH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
NATS_URL = os.environ.get("THMNAYAH_TEST_NATS_URL", "nats://127.0.0.1:4222")
REDIS_URL = os.environ.get("THMNAYAH_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=1
        ):
            return True
    except OSError:
        return False


def require_service(name: str, url: str, default_port: int) -> None:
    if _reachable(url, default_port):
        return
    message = f"{name} is not reachable at {url}"
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message} and REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(f"{message}; start it or set REQUIRE_SERVICES=1 to make this a failure")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on at the moment of asking."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def served(app: Litestar) -> Iterator[str]:
    """The app under uvicorn in a thread (a real event loop serving real connections): its
    `127.0.0.1:<port>`, for as long as the block runs. Waits at most 20 s for the start."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(400):
        if server.started:
            break
        thread.join(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def record_test_upload(
    session: Session,
    *,
    media_id: uuid.UUID | None = None,
    kind: str = "video",
    mime: str = "video/mp4",
    size: int = 10,
    filename: str = "clip.mp4",
    content_item_id: str | None = None,
    language: str | None = None,
    uploaded_by: uuid.UUID | None = None,
) -> tuple[MediaAsset, MediaJob]:
    """An accepted upload recorded straight in the DB, without its bytes (a small video nobody
    uploaded, unless the arguments say otherwise): its asset and its `process` job."""
    return record_upload(
        session,
        media_id=media_id or new_id(),
        kind=kind,
        mime=mime,
        size=size,
        sha256="",
        filename=filename,
        metadata={},
        content_item_id=content_item_id,
        language=language,
        uploaded_by=uploaded_by,
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'thmnayah.db'}"


@pytest.fixture(scope="session")
def postgres_server() -> str:
    require_service("PostgreSQL", POSTGRES_URL, 5432)
    return POSTGRES_URL


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"thmnayah_t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(
        postgres_server.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    base = sa.engine.make_url(postgres_server)
    yield base.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """An empty operational DB of each backend (the test runs once per backend)."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def migrated_url(database_url: str) -> str:
    upgrade(database_url)
    return database_url


@pytest.fixture
def nats_url() -> str:
    require_service("NATS", NATS_URL, 4222)
    return NATS_URL


@pytest.fixture
def redis_url() -> str:
    require_service("Redis", REDIS_URL, 6379)
    return REDIS_URL


@pytest.fixture
def local_settings(data_dir: Path, sqlite_url: str) -> Settings:
    return Settings(deployment="local", data_dir=data_dir, database_url=sqlite_url)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto in server mode: a real HTTP S3 endpoint on loopback."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    # Never pick up a developer's real AWS configuration.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


def prod_settings(database_url: str, data_dir: Path, **extra) -> Settings:
    """Settings of the production deployment for a test: the services it does not reach are only
    named (`.invalid` hosts), the ones it does come in `extra` (redis_url=..., nats_url=...)."""
    named = {
        "clickhouse_host": "clickhouse.invalid",
        "s3_bucket": "unused",
        "nats_url": "nats://nats.invalid:4222",
        "redis_url": "redis://redis.invalid:6379/0",
        "secret_key": "prod-test-secret-" + "s" * 32,
    }
    return Settings(deployment="prod", data_dir=data_dir, database_url=database_url, **{**named, **extra})
