{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='metric_date, content_id',
        engine='MergeTree()',
        order_by='(metric_date, content_id)',
        partition_by='toYYYYMM(metric_date)',
        tags=['events'],
    )
}}

-- ContentMetrics: one row per content item and UTC day with any event about it. Rebuilt for the
-- days in [var min_date, var max_date) (Dagster passes the run's partition window, widened to
-- whole days); delete+insert on (metric_date, content_id) replaces those days' rows.

with

events as (

    select * from {{ ref('stg_events__events') }}
    where content_id is not null
        and event_date >= toDate('{{ var("min_date", "1970-01-01") }}')
        and event_date < toDate('{{ var("max_date", "2100-01-01") }}')

),

-- How long each viewer watched in each of their sessions: the furthest position reported by a
-- progress heartbeat, or the media's duration once they completed it.
watches as (

    select
        event_date,
        assumeNotNull(content_id) as content_id,
        actor_id,
        client_session_id,
        if(
            countIf(event_type = 'media_complete') > 0,
            greatest(
                coalesce(maxIf(duration_s, event_type = 'media_complete'), 0),
                coalesce(maxIf(position_s, event_type = 'media_progress'), 0)
            ),
            coalesce(maxIf(position_s, event_type = 'media_progress'), 0)
        ) as watch_time_s

    from events
    where event_type in ('media_progress', 'media_complete')
    group by event_date, content_id, actor_id, client_session_id

),

watch_daily as (

    select
        event_date,
        content_id,
        avg(watch_time_s) as avg_watch_time_s

    from watches
    group by event_date, content_id

),

daily as (

    select
        event_date,
        assumeNotNull(content_id) as content_id,
        countIf(event_type = 'view') as views,
        uniqExactIf(actor_id, event_type = 'view') as unique_viewers,
        countIf(event_type = 'media_complete') as completions,
        uniqExactIf(actor_id, event_type = 'media_complete') as completers,
        countIf(event_type = 'share') as shares,
        countIf(event_type = 'favorite') as favorites,
        countIf(event_type = 'comment') as comments

    from events
    group by event_date, content_id

),

final as (

    select
        daily.event_date as metric_date,
        daily.content_id as content_id,
        daily.views as views,
        daily.unique_viewers as unique_viewers,
        -- 0 when nobody played the media that day (no heartbeat, no completion).
        watch_daily.avg_watch_time_s as avg_watch_time_s,
        daily.completions as completions,
        -- Viewers who completed it / viewers; NULL on a day without views.
        if(daily.unique_viewers = 0, null, daily.completers / daily.unique_viewers) as completion_rate,
        daily.shares as shares,
        daily.favorites as favorites,
        daily.comments as comments,
        -- Engagement score: each view 1 point, completion 2, favorite 3, comment 4, share 5
        -- (weights grow with the effort the action takes and the reach it gives).
        daily.views + 2 * daily.completions + 3 * daily.favorites + 4 * daily.comments
            + 5 * daily.shares as engagement_score

    from daily
    left join watch_daily
        on daily.event_date = watch_daily.event_date
        and daily.content_id = watch_daily.content_id

)

select * from final
