{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='search_date, language, user_type, query_normalized',
        engine='MergeTree()',
        order_by='(search_date, language, user_type, query_normalized)',
        partition_by='toYYYYMM(search_date)',
        tags=['events'],
    )
}}

-- SearchAnalytics: one row per UTC day, interface language, user type (anonymous: no signed-in
-- user; registered) and normalized query. Clicks are
-- `search_click` events carrying the query they clicked from.

with

events as (

    select
        *,
        if(user_id is null, 'anonymous', 'registered') as user_type

    from {{ ref('stg_events__events') }}
    where event_type in ('search', 'search_click')
        and query_normalized != ''
        and event_date >= toDate('{{ var("min_date", "1970-01-01") }}')
        and event_date < toDate('{{ var("max_date", "2100-01-01") }}')

),

daily as (

    select
        event_date,
        language,
        user_type,
        query_normalized,
        countIf(event_type = 'search') as searches,
        avgIf(toFloat64(coalesce(result_count, 0)), event_type = 'search') as avg_result_count_raw,
        countIf(event_type = 'search_click') as clicks,
        avgIf(toFloat64(coalesce(clicked_position, 0)), event_type = 'search_click') as avg_clicked_position_raw,
        countIf(event_type = 'search' and coalesce(result_count, 0) = 0) as zero_result_searches

    from events
    group by event_date, language, user_type, query_normalized

),

final as (

    select
        event_date as search_date,
        language,
        user_type,
        query_normalized,
        searches,
        if(searches = 0, null, avg_result_count_raw) as avg_result_count,
        clicks,
        -- Clicks / searches; NULL for a query only clicked (its search on an earlier day).
        if(searches = 0, null, clicks / searches) as click_through_rate,
        if(clicks = 0, null, avg_clicked_position_raw) as avg_clicked_position,
        zero_result_searches,
        if(searches = 0, null, zero_result_searches / searches) as zero_result_rate

    from daily

)

select * from final
