"""Shared set-up of the API benchmarks: a seeded embedded data dir, a bench account, and rounds
that alternate between the servers compared so that load from elsewhere hits them alike."""

from __future__ import annotations

import argparse
import random
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from _http import measure, post_json, serve
from sqlalchemy.orm import Session

from domain import content
from domain.auth import audit, rbac, users
from domain.auth.passwords import hash_password
from domain.db import sync_engine
from domain.migrate import upgrade

BENCH_USER, BENCH_PASSWORD = "bench-editor", "bench-password-not-common-42"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_options(parser: argparse.ArgumentParser, *, rounds: int) -> None:
    """The options of a benchmark that alternates load between servers: seconds a round, client
    connections, and rounds."""
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=rounds)


def login(port: int) -> str:
    """The bench editor's access token from the API listening on `port`."""
    body = {"login": BENCH_USER, "password": BENCH_PASSWORD}
    return post_json(f"http://127.0.0.1:{port}/api/v1/auth/login", body)["access_token"]


def seed_shuffled(data_dir: Path, count: int) -> tuple[str, list[str]]:
    """`seed`, with the content ids in a fixed random order so reads do not walk the table."""
    url, ids = seed(data_dir, count)
    random.Random(7).shuffle(ids)
    return url, ids


def seed(data_dir: Path, count: int) -> tuple[str, list[str]]:
    """Migrate a SQLite DB in `data_dir`, add `count` published articles and the bench editor;
    returns (database URL, content ids)."""
    url = f"sqlite:///{data_dir / 'bench.db'}"
    upgrade(url)
    engine = sync_engine(url)
    ids = []
    with Session(engine) as session, session.begin():
        rbac.seed_system_roles(session)
        editor = users.create_user(
            session,
            users.NewUser(
                BENCH_USER, f"{BENCH_USER}@bench.local", hash_password(BENCH_PASSWORD), roles=["editor"]
            ),
            created_by=None,
            origin=audit.Origin(),
        )
        for i in range(count):
            item = content.create_content(
                session,
                content.NewContent(
                    type="article",
                    title={"ar": f"مقالة رقم {i}", "en": f"Article {i}"},
                    description={"en": "A short description"},
                    tags=["news", "bench"],
                    metadata={"source": "bench"},
                ),
                actor=editor.id,
            )
            # Published, as what readers read (anyone may; drafts only with content:read_unpublished).
            content.update_content(
                session, item.id, {"status": "in_review"}, expected_version=item.version, actor=editor.id
            )
            content.publish(session, item.id, actor=editor.id)
            ids.append(str(item.id))
    engine.dispose()
    return url, ids


@contextmanager
def servers(data_dir: Path, url: str, apps: list[tuple[str, str]]) -> Iterator[list[int]]:
    """Serve each `(factory, probe path)` under uvicorn (one worker, no access log) on embedded
    settings for `data_dir`; yields their ports and stops them afterwards."""
    env = data_dir / "bench.env"
    env.write_text(f"THMNAYAH_DEPLOYMENT=local\nTHMNAYAH_DATA_DIR={data_dir}\nTHMNAYAH_DATABASE_URL={url}\n")
    app_dir = str(Path(__file__).resolve().parent)
    common = ["--env-file", str(env), "--app-dir", app_dir, "--host", "127.0.0.1"]
    common += ["--no-access-log", "--log-level", "warning", "--workers", "1"]
    ports = [free_port() for _ in apps]
    procs = []
    try:
        for (factory, probe), port in zip(apps, ports, strict=True):
            procs.append(
                serve([factory, "--factory", "--port", str(port), *common], f"http://127.0.0.1:{port}{probe}")
            )
        yield ports
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait()


@dataclass
class Target:
    port: int
    paths: list[str]
    headers: dict[str, str] = field(default_factory=dict)
    rounds: list[dict] = field(default_factory=list)

    def median(self) -> dict:
        return sorted(self.rounds, key=lambda r: r["rps"])[len(self.rounds) // 2]


def alternate(targets: list[Target], *, rounds: int, seconds: float, connections: int) -> None:
    for _ in range(rounds):
        for target in targets:
            target.rounds.append(
                measure(
                    "127.0.0.1",
                    target.port,
                    target.paths,
                    seconds=seconds,
                    connections=connections,
                    headers=target.headers,
                )
            )
