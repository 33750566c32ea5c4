"""The analytics warehouse as Dagster resources: chDB in the run worker or a ClickHouse server."""

from __future__ import annotations

import dagster as dg

from resources.warehouse import ChdbWarehouse, ClickHouseWarehouse


class ChdbWarehouseResource(dg.ConfigurableResource):
    """The embedded warehouse: chDB (in-process ClickHouse) with its data under `path`; only run
    workers open it, one at a time (the `warehouse` pool)."""

    path: str
    database: str = "thmnayah"

    def create_resource(self, context: dg.InitResourceContext) -> ChdbWarehouse:
        return ChdbWarehouse(path=self.path, database=self.database)


class ClickHouseWarehouseResource(dg.ConfigurableResource):
    """The production warehouse: a ClickHouse server over HTTP(S)."""

    host: str
    port: int = 8123
    user: str = "default"
    password: str = ""
    secure: bool = False
    database: str = "thmnayah"

    def create_resource(self, context: dg.InitResourceContext) -> ClickHouseWarehouse:
        return ClickHouseWarehouse(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            secure=self.secure,
            database=self.database,
        )
