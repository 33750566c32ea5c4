"""The chDB shim: dbt-clickhouse's HTTP connection call lands on the embedded warehouse."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import clickhouse_connect
import pytest

from resources.chdb_dbt import LAUNCHER_NAME, route_clickhouse_connect_to_chdb, write_launcher


def test_http_style_get_client_is_routed_to_the_chdb_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(clickhouse_connect, "get_client", clickhouse_connect.get_client)  # restored after
    path = tmp_path / "chdb"
    route_clickhouse_connect_to_chdb(path)

    # The call dbt-clickhouse makes (dbt/adapters/clickhouse/httpclient.py), to a host that does not exist.
    client = clickhouse_connect.get_client(
        host="warehouse.invalid",
        port=8123,
        username="default",
        password="",
        interface="http",
        compress=False,
        connect_timeout=10,
        send_receive_timeout=300,
        client_name="dbt-adapters dbt-clickhouse",
        verify=True,
        query_limit=0,
        settings={"mutations_sync": "3"},
    )
    try:
        client.command("CREATE DATABASE IF NOT EXISTS shim")
        client.command("CREATE TABLE shim.t (x UInt8) ENGINE = MergeTree ORDER BY x")
        client.command("INSERT INTO shim.t VALUES (7)")
    finally:
        client.close()

    reopened = clickhouse_connect.driver.create_client(dsn=f"chdb://{path.resolve()}")
    try:
        assert reopened.command("SELECT sum(x) FROM shim.t") == 7
    finally:
        reopened.close()


def test_launcher_is_an_executable_script_for_this_interpreter(tmp_path: Path):
    launcher = write_launcher(tmp_path / "bin", tmp_path / "chdb", "analytics")

    assert launcher.name == LAUNCHER_NAME and not launcher.name.startswith("dbt_")
    assert os.access(launcher, os.X_OK)
    source = launcher.read_text()
    assert source.splitlines()[0] == f"#!{sys.executable}"
    assert f"run_dbt({str((tmp_path / 'chdb').resolve())!r}, 'analytics')" in source
    before = launcher.stat().st_mtime_ns
    assert write_launcher(tmp_path / "bin", tmp_path / "chdb", "analytics").stat().st_mtime_ns == before
    assert "'other'" in write_launcher(tmp_path / "bin", tmp_path / "chdb", "other").read_text()
