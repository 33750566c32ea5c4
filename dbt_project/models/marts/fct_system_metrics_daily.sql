{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='metric_date, route',
        engine='MergeTree()',
        order_by='(metric_date, route)',
        partition_by='toYYYYMM(metric_date)',
        tags=['events'],
    )
}}

-- SystemMetrics of the API: one row per UTC day and route (method + path template), for the long run
-- (the operational DB keeps the minutes 8 days). Rebuilt for the days in [var min_date, var max_date).

with

minutes as (

    select * from {{ ref('stg_ops__route_minutes') }}
    where metric_date >= toDate('{{ var("min_date", "1970-01-01") }}')
        and metric_date < toDate('{{ var("max_date", "2100-01-01") }}')

),

daily as (

    select
        metric_date,
        route,
        any(method) as method,
        sum(requests) as requests,
        sum(client_errors) as client_errors,
        sum(server_errors) as server_errors,
        sum(latency_sum_ms) as latency_sum_ms,
        max(latency_max_ms) as max_latency_ms,
        sumForEach(latency_buckets) as latency_buckets

    from minutes
    group by metric_date, route

),

final as (

    select
        metric_date,
        route,
        method,
        requests,
        client_errors,
        server_errors,
        if(requests = 0, null, client_errors / requests) as client_error_rate,
        if(requests = 0, null, server_errors / requests) as server_error_rate,
        if(requests = 0, null, latency_sum_ms / requests) as avg_latency_ms,
        max_latency_ms,
        {{ bucket_percentile('latency_buckets', 0.5) }} as p50_latency_ms,
        {{ bucket_percentile('latency_buckets', 0.95) }} as p95_latency_ms,
        {{ bucket_percentile('latency_buckets', 0.99) }} as p99_latency_ms

    from daily

)

select * from final
