{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='job_date, job_source, job_kind, media_kind',
        engine='MergeTree()',
        order_by='(job_date, job_source, job_kind, media_kind)',
        partition_by='toYYYYMM(job_date)',
        tags=['events'],
    )
}}

-- Processing job metrics (media processing, transcode and analyze jobs; import jobs join with the
-- import service): per UTC day of their finish, source, kind and media kind, how many finished, how
-- many failed, the success rate and the running time. Rebuilt for the days in [min_date, max_date).

with

jobs as (

    select * from {{ ref('stg_ops__processing_jobs') }}
    where job_date >= toDate('{{ var("min_date", "1970-01-01") }}')
        and job_date < toDate('{{ var("max_date", "2100-01-01") }}')

),

final as (

    select
        job_date,
        job_source,
        job_kind,
        media_kind,
        count() as jobs,
        countIf(status = 'completed') as completed,
        countIf(status = 'failed') as failed,
        countIf(status = 'completed') / count() as success_rate,
        avg(duration_s) as avg_duration_s,
        quantileExact(0.95)(duration_s) as p95_duration_s

    from jobs
    group by job_date, job_source, job_kind, media_kind

)

select * from final
