"""The analytics warehouse: chDB in-process (embedded) or a ClickHouse server (production).

chDB allows one process per data path and one open path per process, so callers open a client for
the length of one piece of work and close it (the context manager does), and Dagster runs that
write to it share the `warehouse` pool (limit 1 in embedded mode).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

# The Dagster pool of every step that writes to the warehouse (assets, dbt, checks that query it).
WAREHOUSE_POOL = "warehouse"


@dataclass(kw_only=True)
class Warehouse(ABC):
    """A ClickHouse database; `client()` opens a connection for one piece of work."""

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

    def replace_table(
        self,
        table: str,
        columns: Sequence[tuple[str, str]],
        rows: Iterable[Sequence[Any]],
        *,
        order_by: str,
        batch_size: int = 10_000,
    ) -> int:
        """Replace the contents of `table` with `rows`; return how many were loaded.

        The rows go into a fresh `<table>__loading` (MergeTree, `columns` as `(name, type)`), which
        `EXCHANGE TABLES` then swaps in one atomic step: readers see the old snapshot or the new
        one, never a half-loaded table, and a failed load leaves the old snapshot in place.
        """
        names = [name for name, _ in columns]
        ddl = ", ".join(f"`{name}` {type_}" for name, type_ in columns)
        target = f"`{self.database}`.`{table}`"
        loading = f"`{self.database}`.`{table}__loading`"
        with self.client() as client:
            client.command(
                f"CREATE TABLE IF NOT EXISTS {target} ({ddl}) ENGINE = MergeTree ORDER BY {order_by}"
            )
            client.command(f"DROP TABLE IF EXISTS {loading}")
            client.command(f"CREATE TABLE {loading} ({ddl}) ENGINE = MergeTree ORDER BY {order_by}")
            loaded = 0
            iterator = iter(rows)
            while batch := list(islice(iterator, batch_size)):
                client.insert(f"{table}__loading", batch, column_names=names, database=self.database)
                loaded += len(batch)
            client.command(f"EXCHANGE TABLES {loading} AND {target}")
            client.command(f"DROP TABLE {loading}")
        return loaded


@dataclass(kw_only=True)
class ChdbWarehouse(Warehouse):
    """Embedded: chDB in this process, its data under `path`."""

    path: str

    @property
    def dbt_target(self) -> str:
        return "local"

    def _connect(self) -> Any:
        import clickhouse_connect

        Path(self.path).mkdir(parents=True, exist_ok=True)
        return clickhouse_connect.get_client(dsn=f"chdb://{Path(self.path).resolve()}")


@dataclass(kw_only=True)
class ClickHouseWarehouse(Warehouse):
    """Production: a ClickHouse server over HTTP(S)."""

    host: str
    port: int = 8123
    user: str = "default"
    password: str = field(default="", repr=False)
    secure: bool = False

    @property
    def dbt_target(self) -> str:
        return "prod"

    def _connect(self) -> Any:
        import clickhouse_connect

        return clickhouse_connect.get_client(
            host=self.host, port=self.port, username=self.user, password=self.password, secure=self.secure
        )
