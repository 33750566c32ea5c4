{{
    config(
        materialized='table',
        engine='MergeTree()',
        order_by='content_id',
    )
}}

with

content as (

    select * from {{ ref('stg_cms__content_items') }}

),

final as (

    select
        content_id,
        content_type,
        status,
        slug,
        title_ar,
        title_en,
        -- Arabic first: it is the platform's primary language.
        coalesce(title_ar, title_en) as display_title,
        tags,
        length(tags) as tag_count,
        status = 'published' and not is_deleted as is_live,
        is_deleted,
        created_at,
        toDate(created_at) as created_date,
        published_at,
        if(
            published_at is null,
            null,
            dateDiff('second', created_at, published_at)
        ) as seconds_to_publish,
        deleted_at,
        snapshot_at

    from content

)

select * from final
