"""The Dagster wrappers of the plain clients: what Definitions holds (and the UI shows) is the
configured wrapper; what an asset receives is the client built from that configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa

from domain.settings import Settings
from orchestration.deployment import build_client, build_resources
from resources.dagster.database import OperationalDatabaseResource
from resources.dagster.event_bus import NatsEventBusResource, OutboxEventBusResource
from resources.dagster.storage import LocalObjectStoreResource, S3ObjectStoreResource, UploadStagingResource
from resources.dagster.warehouse import ChdbWarehouseResource, ClickHouseWarehouseResource
from resources.database import OperationalDatabase
from resources.event_bus import NatsEventBus, OutboxEventBus
from resources.object_store import LocalObjectStore, S3ObjectStore
from resources.upload_staging import UploadStaging
from resources.warehouse import ChdbWarehouse, ClickHouseWarehouse

WRAPPERS = [
    (OperationalDatabaseResource(url="sqlite:///x.db"), OperationalDatabase, {"url": "sqlite:///x.db"}),
    (LocalObjectStoreResource(root="/data/objects"), LocalObjectStore, {"root": "/data/objects"}),
    (
        S3ObjectStoreResource(bucket="b", endpoint_url="http://s3.test", region_name="eu-west-1", prefix="p"),
        S3ObjectStore,
        {"bucket": "b", "endpoint_url": "http://s3.test", "region_name": "eu-west-1", "prefix": "p"},
    ),
    (UploadStagingResource(root="/data/uploads"), UploadStaging, {"root": "/data/uploads"}),
    (
        ChdbWarehouseResource(path="/data/chdb", database="w"),
        ChdbWarehouse,
        {"path": "/data/chdb", "database": "w"},
    ),
    (
        ClickHouseWarehouseResource(host="ch", port=8443, user="u", password="pw", secure=True, database="w"),
        ClickHouseWarehouse,
        {"host": "ch", "port": 8443, "user": "u", "password": "pw", "secure": True, "database": "w"},
    ),
    (OutboxEventBusResource(), OutboxEventBus, {}),
    (
        NatsEventBusResource(url="nats://n:4222", stream="S", subject_prefix="t"),
        NatsEventBus,
        {"url": "nats://n:4222", "stream": "S", "subject_prefix": "t"},
    ),
]


@pytest.mark.parametrize(("wrapper", "client_type", "config"), WRAPPERS, ids=lambda v: type(v).__name__)
def test_each_wrapper_vends_its_client_with_its_configuration(
    wrapper: dg.ConfigurableResource, client_type: type, config: dict[str, Any]
) -> None:
    client = build_client(wrapper)
    assert type(client) is client_type
    for name, value in config.items():
        assert getattr(client, name) == value == getattr(wrapper, name)
    # The wrapper's config schema (what the UI lists) carries the same fields.
    assert set(config) <= set(wrapper.get_resource_definition().config_schema.config_type.fields)


def test_assets_receive_the_client_and_the_database_engine_is_disposed_after_the_run(
    sqlite_url: str, data_dir: Path
) -> None:
    seen: list[tuple[OperationalDatabase, sa.Engine, LocalObjectStore]] = []

    @dg.asset
    def probe(
        database: dg.ResourceParam[OperationalDatabase], object_store: dg.ResourceParam[LocalObjectStore]
    ) -> None:
        with database.session() as session:
            assert session.scalar(sa.text("SELECT 1")) == 1
        object_store.put_bytes("probe/hello.txt", b"hello")
        seen.append((database, database.engine(), object_store))

    root = str(data_dir / "objects")
    result = dg.materialize(
        [probe],
        resources={
            "database": OperationalDatabaseResource(url=sqlite_url),
            "object_store": LocalObjectStoreResource(root=root),
        },
    )
    assert result.success
    ((database, engine, store),) = seen
    assert isinstance(database, OperationalDatabase) and database.url == sqlite_url
    assert isinstance(store, LocalObjectStore) and store.get_bytes("probe/hello.txt") == b"hello"
    # Disposed: the pool that held the run's connection was replaced by an empty one.
    assert engine.pool.checkedin() == 0


def test_a_plain_client_stands_in_for_its_wrapper(sqlite_url: str) -> None:
    @dg.asset
    def backend(database: dg.ResourceParam[OperationalDatabase]) -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"backend": database.health()["backend"]})

    database = OperationalDatabase(url=sqlite_url)
    result = dg.materialize([backend], resources={"database": database})
    database.dispose()
    (materialization,) = result.asset_materializations_for_node("backend")
    assert materialization.metadata["backend"].value == "sqlite"


def test_definitions_hold_the_wrappers(local_settings: Settings) -> None:
    resources = build_resources(local_settings)
    for key in ("database", "object_store", "warehouse", "event_bus", "upload_staging"):
        assert isinstance(resources[key], dg.ConfigurableResource), key
        assert type(resources[key]).__name__.endswith("Resource"), key
