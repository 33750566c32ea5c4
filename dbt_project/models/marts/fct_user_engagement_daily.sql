{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='activity_date, user_id',
        engine='MergeTree()',
        order_by='(activity_date, user_id)',
        partition_by='toYYYYMM(activity_date)',
        tags=['events'],
    )
}}

-- UserEngagement: one row per signed-in user and UTC day they did anything. Sessions come from
-- int_sessions_built (30-minute inactivity timeout) and count on the day they started.

with

events as (

    select * from {{ ref('stg_events__events') }}
    where user_id is not null
        and event_date >= toDate('{{ var("min_date", "1970-01-01") }}')
        and event_date < toDate('{{ var("max_date", "2100-01-01") }}')

),

sessions as (

    select
        session_date,
        user_id,
        count() as sessions,
        sum(session_time_s) as session_time_s

    from {{ ref('int_sessions_built') }}
    where session_date >= toDate('{{ var("min_date", "1970-01-01") }}')
        and session_date < toDate('{{ var("max_date", "2100-01-01") }}')
    group by session_date, user_id

),

activity as (

    select
        event_date,
        assumeNotNull(user_id) as user_id,
        countIf(event_type = 'view') as page_views,
        -- Interactions: favorites, shares and comments (actions on content beyond consuming it).
        countIf(event_type in ('favorite', 'share', 'comment')) as interactions,
        countIf(event_type = 'search') as searches,
        countIf(event_type = 'download') as downloads,
        countIf(event_type = 'share') as shares,
        max(occurred_at) as last_activity_at

    from events
    group by event_date, user_id

),

final as (

    select
        activity.event_date as activity_date,
        activity.user_id as user_id,
        sessions.sessions as sessions,
        sessions.session_time_s as session_time_s,
        activity.page_views as page_views,
        activity.interactions as interactions,
        activity.searches as searches,
        activity.downloads as downloads,
        activity.shares as shares,
        activity.last_activity_at as last_activity_at

    from activity
    -- Every session starts with an event of its user on its day, so no session is lost here;
    -- a day whose only events continue the previous day's session has 0 sessions.
    left join sessions
        on activity.event_date = sessions.session_date
        and activity.user_id = sessions.user_id

)

select * from final
