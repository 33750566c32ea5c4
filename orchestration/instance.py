"""The Dagster instance configuration (dagster.yaml) for each deployment (chosen by
`orchestration.deployment`).

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

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import yaml

from resources.warehouse import WAREHOUSE_POOL

DAGSTER_POSTGRES_URL_ENV = "THMNAYAH_DAGSTER_POSTGRES_URL"

# Explicit per-pool limits, written into the instance storage by `apply_pool_limits`.
EMBEDDED_POOL_LIMITS: dict[str, int] = {WAREHOUSE_POOL: 1}
PRODUCTION_POOL_LIMITS: dict[str, int] = {WAREHOUSE_POOL: 1}

_RUN_MONITORING = {
    "enabled": True,
    # Give back the pool slots of a run whose worker died, so the warehouse pool never sticks.
    "free_slots_after_run_end_seconds": 30,
}


def embedded_instance_config(dagster_home: Path) -> dict[str, Any]:
    """SQLite storage under `dagster_home`; every pool admits one step at a time."""
    return {
        "storage": {"sqlite": {"base_dir": str(dagster_home)}},
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
        "run_monitoring": _RUN_MONITORING,
        "telemetry": {"enabled": False},
    }


def production_instance_config() -> dict[str, Any]:
    """PostgreSQL storage (URL from the environment, read by Dagster); pools unlimited unless set."""
    return {
        "storage": {"postgres": {"postgres_url": {"env": DAGSTER_POSTGRES_URL_ENV}}},
        "concurrency": {
            "runs": {"max_concurrent_runs": 25},
            "pools": {"granularity": "op"},
        },
        "run_monitoring": _RUN_MONITORING,
        "telemetry": {"enabled": False},
    }


def write_dagster_home(dagster_home: Path, config: dict[str, Any]) -> Path:
    """Write `config` as `dagster.yaml` into `dagster_home` (created if needed); return the
    directory, to be used as DAGSTER_HOME."""
    home = dagster_home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return home


def apply_pool_limits(instance: dg.DagsterInstance, limits: Mapping[str, int]) -> dict[str, int]:
    """Set explicit pool limits in the instance storage; return them."""
    for pool, limit in limits.items():
        instance.event_log_storage.set_concurrency_slots(pool, limit)
    return dict(limits)
