{{ config(tags=['events']) }}

with

source as (

    -- FINAL: a job retried after an earlier finish keeps only its latest outcome.
    select * from {{ source('ops', 'raw_processing_jobs') }} final

),

renamed as (

    select
        job_id,
        source as job_source,
        job_kind,
        media_kind,
        status,
        nullIf(error, '') as error,
        created_at,
        started_at,
        finished_at,
        toDate(finished_at) as job_date,
        -- Running time; NULL for a job that failed before it started.
        if(started_at is null, null, dateDiff('millisecond', started_at, finished_at) / 1000.0) as duration_s

    from source

)

select * from renamed
