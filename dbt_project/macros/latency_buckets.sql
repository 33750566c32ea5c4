{#
  The upper bounds (ms) of the API latency histogram buckets: the same list as
  domain/analytics/health.py LATENCY_BUCKETS_MS (a test checks they agree). A last, open bucket
  holds anything slower.
#}
{% macro latency_bucket_bounds() -%}
[1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 2000, 5000, 10000]
{%- endmacro %}

{#
  The latency under which a fraction q of the requests fell, read off summed bucket counts as the
  upper bound of the bucket holding that rank (the open bucket reports the largest bound), exactly as
  domain.analytics.health.percentile does; NULL without requests.
#}
{% macro bucket_percentile(buckets, q) -%}
if(
    arraySum({{ buckets }}) = 0,
    null,
    arrayElement(
        {{ latency_bucket_bounds() }},
        toUInt64(least(
            arrayFirstIndex(c -> c >= {{ q }} * arraySum({{ buckets }}), arrayCumSum({{ buckets }})),
            length({{ latency_bucket_bounds() }})
        ))
    )
)
{%- endmacro %}
