with

source as (

    select * from {{ source('cms', 'raw_content_items') }}

),

renamed as (

    select
        id as content_id,
        type as content_type,
        status,
        slug,
        title_ar,
        title_en,
        description_ar,
        description_en,
        tags,
        metadata_json,
        created_by as created_by_user_id,
        updated_by as updated_by_user_id,
        created_at,
        updated_at,
        publish_at as scheduled_publish_at,
        published_at,
        deleted_at,
        is_deleted,
        version,
        snapshot_at

    from source

)

select * from renamed
