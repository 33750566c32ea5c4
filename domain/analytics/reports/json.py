"""JSON rendering of a report."""

from __future__ import annotations

import json
from dataclasses import asdict

from domain.analytics.reports.document import ReportDocument


def render_json(doc: ReportDocument) -> bytes:
    """UTF-8 JSON (Arabic unescaped), dates in ISO format, KPIs as {label, value} objects."""
    payload = {
        "title": doc.title,
        "subtitle": doc.subtitle,
        "language": doc.language,
        "period_start": doc.period_start.isoformat(),
        "period_end": doc.period_end.isoformat(),
        "kpis": [{"label": name, "value": value} for name, value in doc.kpis],
        "charts": [asdict(chart) for chart in doc.charts],
        "tables": [asdict(table) for table in doc.tables],
    }
    return json.dumps(payload, ensure_ascii=False, indent=2).encode("utf-8")
