from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.orm import Session, sessionmaker

from domain.auth import audit, rbac, sessions, users
from domain.auth.passwords import hash_password
from domain.db import sync_engine
from domain.migrate import upgrade
from domain.settings import Settings
from serving.app import create_app
from tests.conftest import record_test_upload

ROLES = tuple(rbac.SYSTEM_ROLES)
PASSWORD = "velvet-kettle-harbour-42"  # the password of users made with the `password_hash` fixture


@pytest.fixture(scope="session")
def password_hash() -> str:
    return hash_password(PASSWORD)


async def login(client: AsyncTestClient, username: str, password: str = PASSWORD, **extra) -> dict:
    """Sign in through the API; the token response."""
    res = await client.post("/api/v1/auth/login", json={"login": username, "password": password, **extra})
    assert res.status_code == 200, res.text
    return res.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def mails(folder: Path) -> list:
    """The `.eml` files the file email transport wrote into `folder`, oldest first, parsed."""
    return [message_from_bytes(p.read_bytes(), policy=policy.default) for p in sorted(folder.glob("*.eml"))]


def plain(message) -> str:
    """The text/plain part of a message."""
    return message.get_body(preferencelist=("plain",)).get_content()


def link_token(message) -> str:
    """The token of the link an account email carries."""
    return re.search(r"token=([A-Za-z0-9_.~-]+)", plain(message)).group(1)


def db_scalar(url: str, statement) -> object:
    engine = sync_engine(url)
    with engine.connect() as conn:
        value = conn.execute(statement).scalar()
    engine.dispose()
    return value


def db_exec(url: str, statement) -> None:
    engine = sync_engine(url)
    with engine.begin() as conn:
        conn.execute(statement)
    engine.dispose()


async def self_register(client: AsyncTestClient, data_dir: Path, username: str) -> tuple[uuid.UUID, str]:
    """An account made the way anyone on the internet makes one, through the public API: register,
    confirm with the token of the emailed link, sign in. (user id, access token)."""
    email = f"{username}@example.test"
    body = {"username": username, "email": email, "password": PASSWORD}
    assert (await client.post("/api/v1/auth/register", json=body)).status_code == 202
    [mail] = [m for m in mails(data_dir / "mail") if m["To"] == email]
    verified = await client.post("/api/v1/auth/verify-email", json={"token": link_token(mail)})
    assert verified.status_code == 200, verified.text
    token = (await login(client, username))["access_token"]
    me = (await client.get("/api/v1/auth/me", headers=bearer(token))).json()
    assert me["roles"] == [rbac.DEFAULT_ROLE] == ["viewer"], me
    return uuid.UUID(me["user_id"]), token


@pytest.fixture
def db_sessions(migrated_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on the test DB outside the app, to set up or inspect rows."""
    engine = sync_engine(migrated_url)
    yield sessionmaker(engine, expire_on_commit=False)
    engine.dispose()


def make_user(
    url: str, username: str, roles: list[str], *, password_hash: str | None = None, **fields
) -> uuid.UUID:
    engine = sync_engine(url)
    with Session(engine) as session, session.begin():
        rbac.seed_system_roles(session)
        user = users.create_user(
            session,
            users.NewUser(
                username=username,
                email=f"{username}@example.test",
                password_hash=password_hash,
                roles=roles,
                **fields,
            ),
            created_by=None,
            origin=audit.Origin(),
        )
        user_id = user.id
    engine.dispose()
    return user_id


def mint_token(app: Litestar, url: str, user_id: uuid.UUID) -> str:
    """A real access token for a real session, as login would issue (without hashing a password)."""
    engine = sync_engine(url)
    auth = app.state.auth
    with Session(engine) as session, session.begin():
        user = users.get_user(session, user_id)
        row, _ = sessions.open_session(session, user, client_type="web", device_id="", origin=audit.Origin())
        token, jti = auth.issue_access_token(user.id, row.session_id)
        sessions.note_access_token(row, jti)
    engine.dispose()
    return token


@pytest.fixture
def settings(migrated_url: str, data_dir: Path) -> Settings:
    return Settings(deployment="local", data_dir=data_dir, database_url=migrated_url)


@pytest.fixture
async def anonymous(settings: Settings) -> AsyncIterator[AsyncTestClient]:
    """The app on a migrated database of each backend (SQLite and PostgreSQL), no credentials."""
    async with AsyncTestClient(app=create_app(settings)) as client:
        yield client


@pytest.fixture
def token_for(anonymous: AsyncTestClient, migrated_url: str) -> Callable[[str], str]:
    """`token_for(role)`: an access token of a fresh user holding exactly that role."""

    def issue(role: str) -> str:
        user_id = make_user(migrated_url, f"{role}-{uuid.uuid4().hex[:8]}", [role])
        return mint_token(anonymous.app, migrated_url, user_id)

    return issue


@pytest.fixture
async def client(anonymous: AsyncTestClient, token_for) -> AsyncTestClient:
    """The app with an editor's token on every request."""
    anonymous.headers["Authorization"] = f"Bearer {token_for('editor')}"
    return anonymous


@pytest.fixture
def mint(anonymous: AsyncTestClient, migrated_url: str) -> Callable[[uuid.UUID], str]:
    """`mint(user_id)`: a token of a new session of an existing user."""
    return lambda user_id: mint_token(anonymous.app, migrated_url, user_id)


@pytest.fixture
def new_user(migrated_url: str, anonymous: AsyncTestClient):
    """`new_user(username, roles, **fields) -> (user_id, access token)`."""

    def create(username: str, roles: list[str], **fields) -> tuple[uuid.UUID, str]:
        user_id = make_user(migrated_url, username, roles, **fields)
        return user_id, mint_token(anonymous.app, migrated_url, user_id)

    return create


@pytest.fixture
async def sqlite_client(sqlite_url: str, data_dir: Path) -> AsyncIterator[AsyncTestClient]:
    upgrade(sqlite_url)
    app = create_app(Settings(deployment="local", data_dir=data_dir, database_url=sqlite_url))
    async with AsyncTestClient(app=app) as client:
        user_id = make_user(sqlite_url, "sqlite-admin", ["admin"])
        client.headers["Authorization"] = f"Bearer {mint_token(app, sqlite_url, user_id)}"
        yield client


def recorded(factory: sessionmaker[Session], uploaded_by: uuid.UUID) -> tuple[str, str]:
    """An accepted upload of `uploaded_by` straight in the DB: (media id, its processing job id)."""
    with factory.begin() as session:
        asset, job = record_test_upload(session, uploaded_by=uploaded_by)
        return str(asset.id), str(job.id)
