"""Rendering a saved notification template (`domain.notifications.templates.render`): an Arabic
email digest with a loop over 20 items, conditionals, dates, numbers and the `t` filter, wrapped in
the RTL email layout, after one warm-up render (the compiled template is cached by source text).
Target: under 1 ms per render.

    python bench/_notify_templates.py [--iterations 5000]
"""

from __future__ import annotations

import argparse
import json
import sys
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


def sample_data(count: int = 20, shift: int = 0) -> dict:
    start = datetime(2025, 1, 6, 9, 0, tzinfo=UTC) + timedelta(days=shift)
    return {
        "user": {"name": "سارة"},
        "since": start,
        "unsubscribe_url": "https://example.test/u/abc",
        "items": [
            {
                "title": {"ar": f"حلقة رقم {i} من البودكاست", "en": f"Podcast episode {i}"},
                "url": f"https://example.test/c/{i}",
                "published_at": start + timedelta(hours=7 * i),
                "views": 250 * i * i + shift,
                "completion": (i % 5) / 5,
                "premium": i % 3 == 0,
            }
            for i in range(1, count + 1)
        ],
    }


def template_render(iterations: int = 5000) -> dict:
    data = sample_data()
    render(SOURCE, data, language="ar-SA", channel="email")  # warm-up: compiles and caches
    started = time.perf_counter()
    for _ in range(iterations):
        render(SOURCE, data, language="ar-SA", channel="email")
    mean_ms = (time.perf_counter() - started) * 1000 / iterations
    return {"bench": "notifications.template_render", "value": round(mean_ms, 4), "unit": "ms"}


def fresh_values_render(iterations: int = 300) -> float:
    """Mean ms when every render brings dates and counts not formatted before (the per-value
    formatting cache misses: Babel runs for each of them)."""
    datasets = [sample_data(shift=10_000 + k) for k in range(iterations)]
    render(SOURCE, sample_data(), language="ar-SA", channel="email")
    started = time.perf_counter()
    for data in datasets:
        render(SOURCE, data, language="ar-SA", channel="email")
    return (time.perf_counter() - started) * 1000 / iterations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=5000)
    args = parser.parse_args()
    print(json.dumps(template_render(args.iterations)), flush=True)
    print(f"# with dates and counts new to every render: {fresh_values_render():.3f} ms", file=sys.stderr)


if __name__ == "__main__":
    main()
