"""The Dagster instance configuration (dagster.yaml) for each deployment.

Embedded: SQLite storage under `settings.dagster_home`; every pool, the `warehouse` pool among
them, admits one step at a time across all runs (chDB allows one process per data path).
Production: PostgreSQL storage (`dagster-postgres`, URL from THMNAYAH_DAGSTER_POSTGRES_URL, read
by Dagster itself when the instance loads); the `warehouse` pool is limited to 1 as well (two dbt
runs over the same days would interleave their delete+insert and table swaps), other pools (ffmpeg)
are unlimited. `thmnayah run` applies these limits at start (`apply_pool_limits`); an operator can
change them with `dagster instance concurrency set <pool> <limit>`.

dagster.yaml can only give a *default* pool limit (`concurrency: pools: default_limit`); limits
for named pools live in the instance's storage, which `apply_pool_limits` writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import yaml

from domain.settings import Deployment, Settings
from resources.warehouse import WAREHOUSE_POOL

DAGSTER_POSTGRES_URL_ENV = "THMNAYAH_DAGSTER_POSTGRES_URL"

# Explicit per-pool limits, written into the instance storage by `apply_pool_limits`.
POOL_LIMITS: dict[Deployment, dict[str, int]] = {
    "local": {WAREHOUSE_POOL: 1},
    "prod": {WAREHOUSE_POOL: 1},
}


def instance_config(settings: Settings) -> dict[str, Any]:
    run_monitoring = {
        "enabled": True,
        # Give back the pool slots of a run whose worker died, so the warehouse pool never sticks.
        "free_slots_after_run_end_seconds": 30,
    }
    if settings.deployment == "local":
        return {
            "storage": {"sqlite": {"base_dir": str(settings.dagster_home.resolve())}},
            "concurrency": {
                # Media runs hold their run slot while they wait for ffmpeg, so they get at most
                # half; light runs (notifications, publication, the relay) are never queued behind them.
                "runs": {
                    "max_concurrent_runs": 6,
                    "tag_concurrency_limits": [{"key": "service", "value": "media", "limit": 3}],
                },
                # `op`: steps wait for a slot inside their run, so runs that touch the warehouse
                # only briefly still start at once.
                "pools": {"default_limit": 1, "granularity": "op"},
            },
            "run_monitoring": run_monitoring,
            "telemetry": {"enabled": False},
        }
    return {
        "storage": {"postgres": {"postgres_url": {"env": DAGSTER_POSTGRES_URL_ENV}}},
        "concurrency": {
            "runs": {"max_concurrent_runs": 25},
            "pools": {"granularity": "op"},
        },
        "run_monitoring": run_monitoring,
        "telemetry": {"enabled": False},
    }


def dagster_yaml(settings: Settings) -> str:
    return yaml.safe_dump(instance_config(settings), sort_keys=False)


def write_dagster_home(settings: Settings) -> Path:
    """Write `dagster.yaml` into `settings.dagster_home` (created if needed); return the directory,
    to be used as DAGSTER_HOME."""
    home = settings.dagster_home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(dagster_yaml(settings))
    return home


def apply_pool_limits(instance: dg.DagsterInstance, settings: Settings) -> dict[str, int]:
    """Set the deployment's explicit pool limits in the instance storage; return them."""
    limits = POOL_LIMITS[settings.deployment]
    for pool, limit in limits.items():
        instance.event_log_storage.set_concurrency_slots(pool, limit)
    return limits
