"""System and job metrics into the warehouse, hour by hour (see `domain.analytics.warehouse_ops`).

`analytics_ops_raw` shares the hourly partitions of the event lake's loader and runs in the same job:
each run replaces its hours of `raw_route_minutes` (the API's per-route minutes) and loads the
processing jobs that finished in them into `raw_processing_jobs`. The dbt models
`fct_system_metrics_daily` and `fct_processing_jobs_daily` read them.
"""

import dagster as dg

from assets.analytics_events import ANALYTICS_GROUP, events_hourly_partitions, hours_of_window
from domain.analytics import warehouse_ops as ops
from resources.database import OperationalDatabase
from resources.warehouse import WAREHOUSE_POOL, Warehouse

# The dbt models built over these tables (tag `events`, in `event_dbt_models`).
OPS_MODELS = (
    "stg_ops__route_minutes",
    "stg_ops__processing_jobs",
    "fct_system_metrics_daily",
    "fct_processing_jobs_daily",
)
ROUTE_MINUTES_KEY = dg.AssetKey("analytics_raw_route_minutes")
PROCESSING_JOBS_KEY = dg.AssetKey("analytics_raw_processing_jobs")


@dg.multi_asset(
    name="analytics_ops_raw",
    specs=[
        dg.AssetSpec(
            ROUTE_MINUTES_KEY,
            group_name=ANALYTICS_GROUP,
            kinds={"python", "clickhouse"},
            description="The hour's API route minutes (requests, 4xx/5xx, latency sum, max and histogram "
            "per route and minute, from every API process) in the warehouse table `raw_route_minutes`. "
            "The operational DB keeps route minutes 8 days; the warehouse keeps them for good.",
        ),
        dg.AssetSpec(
            PROCESSING_JOBS_KEY,
            group_name=ANALYTICS_GROUP,
            kinds={"python", "clickhouse"},
            description="The processing jobs that finished in the hour (kind, media kind, outcome, "
            "timings) in the warehouse table `raw_processing_jobs`.",
        ),
    ],
    pool=WAREHOUSE_POOL,
    partitions_def=events_hourly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def analytics_ops_raw(
    context: dg.AssetExecutionContext,
    database: dg.ResourceParam[OperationalDatabase],
    warehouse: dg.ResourceParam[Warehouse],
):
    """Both tables for the run's hours, each hour replaced (a reload changes nothing)."""
    hours = hours_of_window(context.partition_time_window)
    routes = jobs = requests = failed = 0
    with warehouse.client() as client, database.session() as session:
        client.command(ops.route_minutes_ddl(warehouse.database))
        client.command(ops.processing_jobs_ddl(warehouse.database))
        names = {
            ops.RAW_ROUTE_MINUTES_TABLE: [name for name, _ in ops.ROUTE_COLUMNS],
            ops.RAW_PROCESSING_JOBS_TABLE: [name for name, _ in ops.JOB_COLUMNS],
        }
        for hour in hours:
            route_rows = ops.route_rows(session, hour)
            job_rows = ops.job_rows(session, hour)
            client.command(
                ops.delete_hour_sql(warehouse.database, ops.RAW_ROUTE_MINUTES_TABLE, "minute", hour)
            )
            client.command(
                ops.delete_hour_sql(warehouse.database, ops.RAW_PROCESSING_JOBS_TABLE, "finished_at", hour)
            )
            for table, rows in (
                (ops.RAW_ROUTE_MINUTES_TABLE, route_rows),
                (ops.RAW_PROCESSING_JOBS_TABLE, job_rows),
            ):
                if rows:
                    client.insert(table, rows, column_names=names[table], database=warehouse.database)
            routes += len(route_rows)
            jobs += len(job_rows)
            requests += sum(r[2] for r in route_rows)
            failed += sum(1 for j in job_rows if j[4] == "failed")
    context.log.info(f"{len(hours)} hour(s): {routes} route minutes ({requests} requests), {jobs} jobs")
    yield dg.MaterializeResult(
        asset_key=ROUTE_MINUTES_KEY,
        metadata={
            "hours": len(hours),
            "dagster/row_count": routes,
            "dagster/table_name": f"{warehouse.database}.{ops.RAW_ROUTE_MINUTES_TABLE}",
            "requests": requests,
        },
    )
    yield dg.MaterializeResult(
        asset_key=PROCESSING_JOBS_KEY,
        metadata={
            "hours": len(hours),
            "dagster/row_count": jobs,
            "dagster/table_name": f"{warehouse.database}.{ops.RAW_PROCESSING_JOBS_TABLE}",
            "failed_jobs": failed,
        },
    )
