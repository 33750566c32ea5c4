"""The generated dagster.yaml loads as a Dagster instance with the warehouse pool limited."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml

from domain.settings import Settings
from orchestration.deployment import pool_limits, prepare_dagster_home
from orchestration.instance import DAGSTER_POSTGRES_URL_ENV, apply_pool_limits
from resources.warehouse import WAREHOUSE_POOL

PROD = dict(
    deployment="prod",
    database_url="postgresql://thmnayah@db.internal:5432/thmnayah",
    clickhouse_host="clickhouse.internal",
    s3_bucket="media",
    nats_url="nats://nats.internal:4222",
    redis_url="redis://redis.internal:6379/0",
    secret_key="x" * 32,
)


@dg.asset(pool=WAREHOUSE_POOL)
def pool_probe() -> int:
    return 1


def test_local_instance_admits_one_warehouse_step_at_a_time(local_settings: Settings):
    home = prepare_dagster_home(local_settings)

    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        assert Path(instance.root_directory) == local_settings.dagster_home.resolve()
        # No explicit limit yet: the first step in the pool takes the instance default, 1.
        assert dg.materialize([pool_probe], instance=instance).success
        assert instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).slot_count == 1

        assert apply_pool_limits(instance, pool_limits(local_settings)) == {WAREHOUSE_POOL: 1}
        assert instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).slot_count == 1


@pytest.mark.postgres
def test_prod_instance_stores_in_postgres_from_the_environment(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    settings = Settings(data_dir=tmp_path, **PROD)
    monkeypatch.setenv(DAGSTER_POSTGRES_URL_ENV, postgres_url)
    home = prepare_dagster_home(settings)

    # The URL (a secret) stays in the environment: dagster.yaml names the variable, and Dagster
    # reads it when the instance loads.
    written = (home / "dagster.yaml").read_text()
    assert yaml.safe_load(written)["storage"] == {
        "postgres": {"postgres_url": {"env": DAGSTER_POSTGRES_URL_ENV}}
    }
    assert postgres_url not in written and settings.database_url not in written
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert instance.run_storage.postgres_url == postgres_url
        assert instance.get_concurrency_config().pool_config.default_pool_limit is None
        # Warehouse steps (dbt runs over the same days) one at a time; other pools unlimited.
        assert apply_pool_limits(instance, pool_limits(settings)) == {WAREHOUSE_POOL: 1}
        assert instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).slot_count == 1
        assert dg.materialize([pool_probe], instance=instance).success
