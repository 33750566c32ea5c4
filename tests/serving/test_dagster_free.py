"""The API process loads neither Dagster nor the heavy libraries that only run workers (or the first
tracked event) need: checked in a fresh interpreter, because this test process has imported them
all already."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from domain.migrate import upgrade
from domain.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
# Dagster and the libraries of run workers, production backends and the event lake's Parquet files.
HEAVY = ("dagster", "pyarrow", "numpy", "pandas", "alembic", "boto3", "clickhouse_connect", "chdb", "nats")

APP_PROBE = """
import json, sys
from pathlib import Path

from litestar.testing import TestClient

from domain.migrate import upgrade
from domain.settings import Settings
from serving.app import create_app

heavy = sys.argv[3].split(",")
loaded = lambda: sorted(name for name in heavy if name in sys.modules)
app = create_app(Settings(deployment="local", data_dir=Path(sys.argv[1]), database_url=sys.argv[2]))
created = loaded()
with TestClient(app) as client:
    status = client.get("/api/v1/health").status_code
print(json.dumps({"created": created, "started": loaded(), "health": status}))
"""

CLIENTS_PROBE = """
import json, sys

import resources.chdb_dbt, resources.database, resources.event_bus, resources.event_lake
import resources.object_store, resources.upload_staging, resources.warehouse

print(json.dumps(sorted(name for name in sys.argv[1].split(",") if name in sys.modules)))
"""


def _probe(source: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", source, *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def test_creating_and_starting_the_app_loads_no_dagster_nor_heavy_libraries(local_settings: Settings) -> None:
    upgrade(local_settings.database_url)
    url = local_settings.database_url
    result = json.loads(_probe(APP_PROBE, str(local_settings.data_dir), url, ",".join(HEAVY)))
    assert result["health"] == 200
    assert result["created"] == [], f"import serving.app + create_app loaded {result['created']}"
    assert result["started"] == [], f"starting the app loaded {result['started']}"


def test_the_resource_clients_import_without_dagster() -> None:
    assert json.loads(_probe(CLIENTS_PROBE, ",".join(HEAVY))) == []
