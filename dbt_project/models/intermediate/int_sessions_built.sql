{{ config(materialized='table', engine='MergeTree()', order_by='(user_id, session_number)', tags=['events']) }}

-- A table, not a view: the user mart and the tests read the sessions several times per run, and
-- a view would run the window functions over every event each time.

-- Sessions of signed-in users: a session starts at a user's first event and whenever more than
-- 30 minutes (1,800 s) passed since that user's previous event; a gap of exactly 30 minutes
-- continues the session. One row per session, dated by its first event (UTC).

with

events as (

    select
        assumeNotNull(user_id) as user_id,
        event_id,
        event_type,
        occurred_at

    from {{ ref('stg_events__events') }}
    -- Signed-in users only (anonymous clients have no user id; '' counts as none).
    where coalesce(user_id, '') != ''

),

gaps as (

    select
        *,
        row_number() over by_user as event_number,
        lagInFrame(occurred_at) over by_user as previous_at

    from events
    window by_user as (
        partition by user_id order by occurred_at, event_id
        rows between unbounded preceding and current row
    )

),

flagged as (

    select
        *,
        if(
            event_number = 1 or dateDiff('second', previous_at, occurred_at) > 1800, 1, 0
        ) as starts_session

    from gaps

),

numbered as (

    select
        *,
        sum(starts_session) over (
            partition by user_id order by occurred_at, event_id
            rows between unbounded preceding and current row
        ) as session_number

    from flagged

),

sessions as (

    select
        user_id,
        session_number,
        concat(user_id, '#', toString(session_number)) as session_key,
        min(occurred_at) as started_at,
        max(occurred_at) as ended_at,
        toDate(min(occurred_at)) as session_date,
        -- From the first event to the last: a single-event session lasts 0 s.
        dateDiff('second', min(occurred_at), max(occurred_at)) as session_time_s,
        count() as events,
        countIf(event_type = 'view') as page_views

    from numbered
    group by user_id, session_number

)

select * from sessions
