"""The launcher's security promises: demo accounts only on the embedded deployment (or with an
explicit --demo), a production start refused while demo accounts exist, the first administrator
from `create-admin` (password from a prompt or a file, never an argument), and a Dagster UI that
listens on its own, loopback-by-default address."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from domain.auth import rbac
from domain.auth.passwords import hash_password, verify_password
from domain.db import sync_engine
from domain.demo import seed_demo_users
from domain.migrate import upgrade
from domain.schema import User
from domain.settings import Settings
from orchestration.cli import prepare
from orchestration.deployment import dagster_commands
from tests.conftest import free_port, prod_settings

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "orchestration.cli"]
PROD_DB = "postgresql://thmnayah@db.invalid:5432/thmnayah"  # only named, never reached


def prod_env(database_url: str, data_dir: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("THMNAYAH_")},
        "THMNAYAH_DEPLOYMENT": "prod",
        "THMNAYAH_DATA_DIR": str(data_dir),
        "THMNAYAH_DATABASE_URL": database_url,
        "THMNAYAH_CLICKHOUSE_HOST": "clickhouse.invalid",
        "THMNAYAH_S3_BUCKET": "media",
        "THMNAYAH_NATS_URL": "nats://nats.invalid:4222",
        "THMNAYAH_REDIS_URL": "redis://redis.invalid:6379/0",
        "THMNAYAH_SECRET_KEY": "s" * 40,
    }


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], input=stdin, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def usernames(url: str) -> set[str]:
    engine = sync_engine(url)
    with engine.connect() as conn:
        names = set(conn.scalars(sa.select(User.username)))
    engine.dispose()
    return names


@pytest.mark.postgres
def test_a_production_start_seeds_no_demo_account(postgres_url: str, data_dir: Path) -> None:
    assert prepare(prod_settings(postgres_url, data_dir), 90, 240, demo=False)
    assert usernames(postgres_url) == set()


@pytest.mark.postgres
def test_a_production_start_is_refused_while_demo_accounts_exist(postgres_url: str, data_dir: Path) -> None:
    """Through the CLI, as an operator runs it: exit 2, naming the accounts, before anything starts."""
    prepare(prod_settings(postgres_url, data_dir), 90, 240, demo=False)  # migrated, empty
    engine = sync_engine(postgres_url)
    with Session(engine) as session, session.begin():
        seed_demo_users(session, hash_password)
    engine.dispose()
    done = cli(prod_env(postgres_url, data_dir), "run")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "refusing to start: demo account(s) admin, editor, author, analyst, viewer exist" in done.stderr
    assert "create-admin" in done.stderr


def test_an_admin_named_admin_with_its_own_password_is_not_a_demo_account(
    sqlite_url: str, data_dir: Path
) -> None:
    password_file = data_dir / "password"
    password_file.write_text("a long and private passphrase 42\n")
    env = {**os.environ, "THMNAYAH_DATA_DIR": str(data_dir), "THMNAYAH_DATABASE_URL": sqlite_url}
    made = cli(
        env,
        "create-admin",
        "--username",
        "admin",
        "--email",
        "ops@example.test",
        "--password-file",
        str(password_file),
    )
    assert made.returncode == 0, made.stdout + made.stderr
    assert "created administrator admin (ops@example.test)" in made.stdout
    local = Settings(deployment="local", data_dir=data_dir, database_url=sqlite_url)
    assert prepare(local, 90, 240, demo=False)  # not refused: not a demo account

    engine = sync_engine(sqlite_url)
    with Session(engine) as session:
        user = session.scalar(sa.select(User).where(User.username == "admin"))
        assert user is not None and user.is_active and user.is_verified
        assert verify_password(user.password_hash, "a long and private passphrase 42")[0]
        roles, _, _ = rbac.effective_permissions(session, user.id)
        assert roles == ["admin"]
    engine.dispose()


def test_create_admin_takes_no_password_argument_and_checks_the_policy(
    sqlite_url: str, data_dir: Path
) -> None:
    upgrade(sqlite_url)
    env = {**os.environ, "THMNAYAH_DATA_DIR": str(data_dir), "THMNAYAH_DATABASE_URL": sqlite_url}
    base = ["create-admin", "--username", "boss", "--email", "boss@example.test"]
    as_argument = cli(env, *base, "--password", "a long and private passphrase 42")
    assert as_argument.returncode == 2 and "unrecognized arguments: --password" in as_argument.stderr
    weak = cli(env, *base, "--password-file", "-", stdin="password1\n")
    assert weak.returncode == 1 and weak.stderr.startswith("create-admin: ") and "password" in weak.stderr
    assert "boss" not in usernames(sqlite_url)
    ok = cli(env, *base, "--password-file", "-", stdin="a long and private passphrase 42\n")
    assert ok.returncode == 0, ok.stderr
    assert "a long and private passphrase" not in ok.stdout + ok.stderr
    again = cli(env, *base, "--password-file", "-", stdin="another long passphrase 43\n")
    assert again.returncode == 1 and "already exists" in again.stderr


def test_the_dagster_ui_listens_on_its_own_loopback_address(sqlite_url: str, data_dir: Path) -> None:
    exposed_api = Settings(deployment="local", data_dir=data_dir, database_url=sqlite_url, api_host="0.0.0.0")
    local = dagster_commands(exposed_api)
    assert set(local) == {"dagster-webserver", "dagster-daemon"}  # not the superseded `dagster dev`
    web = local["dagster-webserver"]
    assert web[web.index("-h") + 1] == "127.0.0.1" and "--read-only" not in web

    prod = dagster_commands(prod_settings(PROD_DB, data_dir, api_host="0.0.0.0", dagster_read_only=True))
    assert set(prod) == {"dagster-webserver", "dagster-daemon"}
    web, daemon = prod["dagster-webserver"], prod["dagster-daemon"]
    assert web[web.index("-h") + 1] == "127.0.0.1" and "--read-only" in web
    assert daemon[1:] == ["run", "-m", "orchestration.definitions"]
    # The daemon's command line is one dagster-daemon takes.
    assert subprocess.run([*daemon, "--help"], capture_output=True, timeout=120).returncode == 0


def test_the_production_webserver_command_serves_the_ui_read_only(sqlite_url: str, data_dir: Path) -> None:
    """The webserver command `run` uses in prod, started for real (on an embedded instance, so that
    the definitions load here): it answers on loopback only, and in read-only mode."""
    port = free_port()
    settings = prod_settings(PROD_DB, data_dir, dagster_port=port, dagster_read_only=True)
    web = dagster_commands(settings)["dagster-webserver"]
    home = data_dir / "dagster_home"
    home.mkdir()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "THMNAYAH_DATA_DIR": str(data_dir),
        "THMNAYAH_DATABASE_URL": sqlite_url,
        "THMNAYAH_DEPLOYMENT": "local",
    }
    proc = subprocess.Popen(web, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5) as response:
                    assert response.status == 200
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
                assert time.monotonic() < deadline, "the Dagster webserver did not come up"
                time.sleep(0.5)
        query = b'{"query": "{ permissions { permission value } }"}'
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/graphql", data=query, headers={"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())["data"]["permissions"]
        permissions = {p["permission"]: p["value"] for p in answer}
        assert permissions["launch_pipeline_execution"] is False
        with socket.socket() as probe:  # not on the machine's other addresses
            other = socket.gethostbyname(socket.gethostname())
            if other != "127.0.0.1" and not other.startswith("127."):
                assert probe.connect_ex((other, port)) != 0
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
