{{ config(tags=['events']) }}

with

source as (

    select * from {{ source('events', 'raw_events') }}

),

renamed as (

    select
        event_id,
        event_type,
        occurred_at,
        received_at,
        toDate(occurred_at) as event_date,
        nullIf(user_id, '') as user_id,
        session_id as client_session_id,
        -- Who did it: the signed-in user, else the anonymous client session.
        coalesce(nullIf(user_id, ''), concat('session:', coalesce(session_id, event_id))) as actor_id,
        platform,
        coalesce(language, '') as language,
        nullIf(content_id, '') as content_id,
        position_s,
        duration_s,
        query as search_query,
        -- Lower case, Arabic diacritics and tatweel removed, alef/yaa/taa-marbuta variants folded,
        -- whitespace collapsed: one row per query as people mean it.
        trimBoth(replaceRegexpAll(
            translateUTF8(
                replaceRegexpAll(lowerUTF8(coalesce(query, '')), '[\\x{064B}-\\x{065F}\\x{0670}\\x{0640}]', ''),
                'أإآىة',
                'اااية'
            ),
            '\\s+', ' '
        )) as query_normalized,
        result_count,
        clicked_position,
        channel,
        properties as properties_json

    from source

)

select * from renamed
