"""The dbt project, its manifest and the `dbt` resource per deployment (resources/dagster/dbt.py)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from dagster_dbt import DbtProject

from domain.settings import Settings
from orchestration.deployment import build_resources
from resources.chdb_dbt import LAUNCHER_NAME
from resources.dagster.dbt import DBT_PROJECT_DIR, installed_dbt, manifest_is_fresh, parse_manifest

PROD = dict(
    deployment="prod",
    database_url="postgresql://thmnayah@db.internal:5432/thmnayah",
    clickhouse_host="clickhouse.internal",
    s3_bucket="media",
    nats_url="nats://nats.internal:4222",
    redis_url="redis://redis.internal:6379/0",
    secret_key="x" * 32,
)


def test_dbt_target_is_the_deployment(local_settings: Settings, tmp_path: Path):
    local = build_resources(local_settings)["dbt"]
    prod = build_resources(Settings(data_dir=tmp_path / "prod", **PROD))["dbt"]

    assert local.target == "local"
    assert Path(local.dbt_executable) == (local_settings.data_dir / "bin" / LAUNCHER_NAME).resolve()
    assert prod.target == "prod"
    assert Path(prod.dbt_executable).name == "dbt"
    assert local.project_dir == prod.project_dir == str(DBT_PROJECT_DIR)


def test_parse_for_the_chdb_target_opens_no_warehouse(local_settings: Settings, tmp_path: Path):
    """What Definitions loading runs in a fresh clone: it must not open (and so lock) chDB."""
    copy = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, copy, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    project = DbtProject(project_dir=copy, target="local")
    assert not manifest_is_fresh(project)

    manifest = json.loads(
        parse_manifest(project, installed_dbt(), database=local_settings.warehouse_database).read_text()
    )

    assert not local_settings.chdb_path.exists()
    assert manifest["metadata"]["adapter_type"] == "clickhouse"
    assert {"model.thmnayah.dim_content", "model.thmnayah.stg_cms__content_items"} <= set(manifest["nodes"])
    assert not [p for p in (copy / "target").iterdir() if p.name.startswith("parse-")]
    assert manifest_is_fresh(project)
    model = copy / "models" / "marts" / "dim_content.sql"
    os.utime(model, (model.stat().st_atime, project.manifest_path.stat().st_mtime + 10))
    assert not manifest_is_fresh(project)
