"""The analytics warehouse: chDB in-process (embedded) or a ClickHouse server (production).

chDB allows one process per data path and one open path per process, so callers open a client for
the length of one piece of work and close it (the context manager does), and Dagster runs that
write to it share the `warehouse` pool (limit 1 in embedded mode).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg


class Warehouse(dg.ConfigurableResource, ABC):
    database: str = "thmnayah"

    @abstractmethod
    def _connect(self) -> Any: ...

    @property
    @abstractmethod
    def dbt_target(self) -> str:
        """The dbt profile target for this backend (`local` = chDB, `prod` = ClickHouse)."""

    @contextmanager
    def client(self) -> Iterator[Any]:
        """A clickhouse-connect client with the warehouse database created; closed afterwards."""
        client = self._connect()
        try:
            client.command(f"CREATE DATABASE IF NOT EXISTS `{self.database}`")
            yield client
        finally:
            client.close()


class ChdbWarehouse(Warehouse):
    path: str

    @property
    def dbt_target(self) -> str:
        return "local"

    def _connect(self) -> Any:
        import clickhouse_connect

        Path(self.path).mkdir(parents=True, exist_ok=True)
        return clickhouse_connect.get_client(dsn=f"chdb://{Path(self.path).resolve()}")


class ClickHouseWarehouse(Warehouse):
    host: str
    port: int = 8123
    user: str = "default"
    password: str = ""
    secure: bool = False

    @property
    def dbt_target(self) -> str:
        return "prod"

    def _connect(self) -> Any:
        import clickhouse_connect

        return clickhouse_connect.get_client(
            host=self.host, port=self.port, username=self.user, password=self.password, secure=self.secure
        )
