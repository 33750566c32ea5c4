"""Embedded-vs-production wiring: the only Dagster module that reads the deployment switch."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dagster as dg

from domain.settings import Settings
from resources.database import OperationalDatabase
from resources.dbt import build_dbt_resource
from resources.event_bus import NatsEventBus, OutboxEventBus
from resources.object_store import LocalObjectStore, S3ObjectStore
from resources.upload_staging import UploadStaging
from resources.warehouse import ChdbWarehouse, ClickHouseWarehouse

RESOURCE_KEYS = ("database", "object_store", "warehouse", "event_bus", "dbt", "upload_staging")


def load_settings() -> Settings:
    return Settings.from_env()


def child_process_env(dagster_home: Path) -> dict[str, str]:
    """The environment of the processes `thmnayah run` starts: ours, plus the Dagster home."""
    return {**os.environ, "DAGSTER_HOME": str(dagster_home)}


def build_resources(settings: Settings) -> dict[str, Any]:
    """The same resource keys for every deployment; secrets reach prod resources as `dg.EnvVar`."""
    if settings.deployment == "local":
        resources: dict[str, Any] = {
            "database": OperationalDatabase(url=settings.database_url),
            "object_store": LocalObjectStore(root=str(settings.object_store_dir.resolve())),
            "warehouse": ChdbWarehouse(
                path=str(settings.chdb_path.resolve()), database=settings.warehouse_database
            ),
            "event_bus": OutboxEventBus(),
        }
    else:
        resources = {
            "database": OperationalDatabase(url=dg.EnvVar("THMNAYAH_DATABASE_URL")),
            "object_store": S3ObjectStore(
                bucket=settings.s3_bucket,
                endpoint_url=settings.s3_endpoint_url or None,
                region_name=settings.s3_region,
                prefix=settings.s3_prefix,
            ),
            "warehouse": ClickHouseWarehouse(
                host=settings.clickhouse_host,
                port=settings.clickhouse_port,
                user=settings.clickhouse_user,
                password=dg.EnvVar("THMNAYAH_CLICKHOUSE_PASSWORD") if settings.clickhouse_password else "",
                secure=settings.clickhouse_secure,
                database=settings.warehouse_database,
            ),
            "event_bus": NatsEventBus(
                url=settings.nats_url,
                stream=settings.nats_stream,
                subject_prefix=settings.nats_subject_prefix,
            ),
        }
    resources["upload_staging"] = UploadStaging(root=str((settings.data_dir / "uploads").resolve()))
    # dbt target = deployment: chDB through the launcher (local) or the ClickHouse server (prod).
    resources["dbt"] = build_dbt_resource(settings)
    assert tuple(sorted(resources)) == tuple(sorted(RESOURCE_KEYS))
    return resources
