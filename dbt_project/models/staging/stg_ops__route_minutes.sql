{{ config(tags=['events']) }}

with

source as (

    select * from {{ source('ops', 'raw_route_minutes') }}

),

renamed as (

    select
        minute,
        toDate(minute) as metric_date,
        route,
        -- "GET /api/v1/content/{content_id}" -> method and path template.
        splitByChar(' ', route)[1] as method,
        requests,
        client_errors,
        server_errors,
        latency_sum_ms,
        latency_max_ms,
        latency_buckets

    from source

)

select * from renamed
