"""Rendering a saved notification template (`domain.notifications.templates.render`): an Arabic
email digest with a loop over 20 items, conditionals, dates, numbers, percentages and the `t`
filter, wrapped in the RTL email layout, after one warm-up render (the compiled template is cached
by source text). Mean ms per render, two figures:

- `notifications.template_render` (the headline): every render gets its own data, dates, view
  counts and completion rates not formatted before (only the item count repeats), so the per-value
  formatting cache misses and Babel runs for each of them, as for digests that differ per recipient;
- `notifications.template_render_cached`: the same data rendered again and again, so every date
  and number comes from the formatting cache (a broadcast of one message to many recipients).

Target (`goal` on the headline line): under 1 ms per render. The data sets are built before the
clock starts.

    python bench/_notify_templates.py [--iterations 5000]
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime, timedelta

from domain.notifications.templates import TemplateSource, render

SOURCE = TemplateSource(
    subject="{{ 'ملخص الأسبوع' if language.startswith('ar') else 'Your weekly digest' }}: "
    "{{ items | length | number }} {{ {'ar': 'قصص جديدة', 'en': 'new stories'} | t }}",
    text="""{{ {'ar': 'مرحبا', 'en': 'Hello'} | t }} {{ user.name }},

{% for item in items %}
{{ loop.index }}. {{ item.title | t }} ({{ item.published_at | date('medium') }})
{% if item.views > 1000 %}   {{ item.views | number }} {{ {'ar': 'مشاهدة', 'en': 'views'} | t }}{% endif %}

{% endfor %}
{{ unsubscribe_url }}
""",
    html="""<h1 style="font-size:22px;">{{ {'ar': 'مرحبا', 'en': 'Hello'} | t }} {{ user.name }}</h1>
<p>{{ {'ar': 'أبرز ما نُشر منذ', 'en': 'Highlights since'} | t }} {{ since | datetime('long', tz='Asia/Riyadh') }}</p>
<table role="presentation" width="100%" cellpadding="0" cellspacing="0">
{% for item in items %}
  <tr>
    <td style="padding:8px 0;border-bottom:1px solid #eeeeee;">
      <a href="{{ item.url }}" style="font-weight:bold;">{{ item.title | t }}</a>
      {% if item.premium %}<span style="color:#b8860b;">★</span>{% endif %}
      <div style="color:#666666;font-size:13px;">
        {{ item.published_at | date('medium') }}
        {% if item.views > 1000 %} · {{ item.views | number }} {{ {'ar': 'مشاهدة', 'en': 'views'} | t }}{% endif %}
        {% if item.completion %} · {{ item.completion | percent }}{% endif %}
      </div>
    </td>
  </tr>
{% endfor %}
</table>
<p style="font-size:12px;color:#888888;"><a href="{{ unsubscribe_url }}">{{ {'ar': 'إلغاء الاشتراك', 'en': 'Unsubscribe'} | t }}</a></p>
""",
)


def sample_data(count: int = 20, render: int = 0) -> dict:
    """The digest of render number `render`: its dates, view counts and completion rates differ
    from those of every other render number (`u` is unique per render and item)."""
    start = datetime(2025, 1, 6, 9, 0, tzinfo=UTC) + timedelta(days=render)
    items = []
    for i in range(1, count + 1):
        u = render * count + i
        items.append(
            {
                "title": {"ar": f"حلقة رقم {i} من البودكاست", "en": f"Podcast episode {i}"},
                "url": f"https://example.test/c/{i}",
                # 7 h apart within a digest, digests a day apart: no two renders share one (count < 24)
                "published_at": start + timedelta(hours=7 * i),
                # the same branches every render: views shown from the third item, no rate every fifth
                "views": 1_000 + 7 * u if i >= 3 else 100 * i,
                "completion": 0.0 if i % 5 == 0 else 0.05 + 0.9 * (u * 0.6180339887 % 1),
                "premium": i % 3 == 0,
            }
        )
    return {
        "user": {"name": "سارة"},
        "since": start,
        "unsubscribe_url": "https://example.test/u/abc",
        "items": items,
    }


GOAL_MS = 1.0


def _mean_ms(datasets: list[dict]) -> float:
    started = time.perf_counter()
    for data in datasets:
        render(SOURCE, data, language="ar-SA", channel="email")
    return (time.perf_counter() - started) * 1000 / len(datasets)


def template_render(iterations: int = 5000) -> list[dict]:
    """[headline (new dates and numbers every render), cached (the same data every render)]."""
    render(SOURCE, sample_data(), language="ar-SA", channel="email")  # warm-up: compiles and caches
    fresh = _mean_ms([sample_data(render=k) for k in range(1, iterations + 1)])
    cached = _mean_ms([sample_data()] * iterations)
    return [
        {"bench": "notifications.template_render", "value": round(fresh, 4), "unit": "ms", "goal": GOAL_MS},
        {"bench": "notifications.template_render_cached", "value": round(cached, 4), "unit": "ms"},
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--iterations", type=int, default=5000)
    args = parser.parse_args()
    for figure in template_render(args.iterations):
        print(json.dumps(figure), flush=True)


if __name__ == "__main__":
    main()
