"""The demo's analytics: a day and a half of plausible tracked events, a scheduled report and two
alert rules, so the dashboards, reports and alerts have something to show on a first start.

The events are what the tracking API would have accepted (each passes `events.parse_body`), for the
demo accounts and anonymous visitors, in Arabic and English, over the closed hours before `now`. They
are generated from a fixed seed: the same `now` gives the same stream.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.orm import Session

from domain.analytics import events, report_jobs
from domain.schema import AlertRule, Report

DEMO_HOURS = 36  # within the hours sensor's 48-hour look-back: loaded on the first start
DEMO_SEED = 20261204
# (query, language, results): some find nothing, which search insights call out.
DEMO_QUERIES: list[tuple[str, str, int]] = [
    ("رمضان", "ar", 12),
    ("وثائقي", "ar", 7),
    ("الخط العربي", "ar", 3),
    ("كرة القدم", "ar", 9),
    ("أخبار عاجلة", "ar", 0),
    ("ramadan", "en", 11),
    ("football highlights", "en", 6),
    ("calligraphy", "en", 2),
    ("desert photos", "en", 0),
]
DEMO_REPORT_NAME = "Weekly content report"
DEMO_ALERTS: list[dict[str, Any]] = [
    {
        "name": "Views spike",
        "metric": "events.view",
        "kind": "absolute",
        "comparison": "above",
        "threshold": 200,
        "window_minutes": 5,
    },
    {
        "name": "API server errors",
        "metric": "http.error_rate",
        "kind": "absolute",
        "comparison": "above",
        "threshold": 5,
        "window_minutes": 5,
    },
    {
        "name": "Searches vs last week",
        "metric": "events.search",
        "kind": "same_hour_last_week",
        "comparison": "above",
        "threshold": 100,
        "window_minutes": 60,
    },
]


def _hour_weight(hour: int) -> float:
    """More traffic in the evening (Gulf time, UTC+3) than at night."""
    local = (hour + 3) % 24
    return 0.3 if local < 7 else 1.0 if local < 17 else 2.0


def demo_events(
    now: datetime, content_ids: Mapping[str, uuid.UUID], user_ids: Mapping[str, uuid.UUID]
) -> list[tuple[str | None, bytes]]:
    """(user id or None, event JSON) for the `DEMO_HOURS` closed hours before `now`."""
    rng = random.Random(DEMO_SEED)
    items = list(content_ids.values())
    people: list[tuple[str | None, str]] = [
        (str(uid), "ar" if name == "viewer" else "en") for name, uid in user_ids.items()
    ]
    people += [(None, "ar")] * 3 + [(None, "en")] * 2  # anonymous visitors
    last_hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    out: list[tuple[str | None, bytes]] = []

    def add(user: str | None, kind: str, at: datetime, **fields: Any) -> None:
        if at > now:  # the last hour's sessions run on into the present: stop there
            return
        event = {
            "type": kind,
            "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
            "occurred_at": at.isoformat(),
        }
        event.update(fields)
        out.append((user, msgspec.json.encode(event)))

    for h in range(DEMO_HOURS, 0, -1):
        hour = last_hour - timedelta(hours=h)
        for _ in range(round(6 * _hour_weight(hour.hour) * rng.uniform(0.6, 1.4))):
            user, language = rng.choice(people)
            session_id = f"demo-{rng.getrandbits(32):08x}"
            at = hour + timedelta(seconds=rng.randrange(0, 3000))
            common = {
                "session_id": session_id,
                "language": language,
                "platform": rng.choice(["web", "ios", "android"]),
            }
            if rng.random() < 0.4:
                query, q_language, results = rng.choice(DEMO_QUERIES)
                add(
                    user,
                    "search",
                    at,
                    query=query,
                    result_count=results,
                    **(common | {"language": q_language}),
                )
                if results and rng.random() < 0.6:
                    at += timedelta(seconds=rng.randrange(5, 40))
                    add(
                        user,
                        "search_click",
                        at,
                        query=query,
                        content_id=str(rng.choice(items)),
                        clicked_position=rng.randint(1, min(results, 5)),
                        **(common | {"language": q_language}),
                    )
            for _ in range(rng.randint(1, 3)):
                item = str(rng.choice(items))
                at += timedelta(seconds=rng.randrange(10, 240))
                add(user, "view", at, content_id=item, **common)
                duration = 600.0
                watched = 0.0
                for _ in range(rng.randint(0, 4)):
                    watched = min(duration, watched + rng.uniform(30, 240))
                    at += timedelta(seconds=30)
                    add(
                        user,
                        "media_progress",
                        at,
                        content_id=item,
                        position_s=round(watched, 1),
                        duration_s=duration,
                        **common,
                    )
                if watched >= duration * 0.5 and rng.random() < 0.5:
                    add(
                        user,
                        "media_complete",
                        at + timedelta(seconds=5),
                        content_id=item,
                        duration_s=duration,
                        **common,
                    )
                if user and rng.random() < 0.15:
                    add(user, "favorite", at + timedelta(seconds=8), content_id=item, **common)
                if rng.random() < 0.08:
                    add(
                        user,
                        "share",
                        at + timedelta(seconds=9),
                        content_id=item,
                        channel=rng.choice(["whatsapp", "x", "copy_link"]),
                        **common,
                    )
                if user and rng.random() < 0.05:
                    add(user, "comment", at + timedelta(seconds=12), content_id=item, **common)
            if user and rng.random() < 0.05:
                add(user, "download", at + timedelta(seconds=15), content_id=str(rng.choice(items)), **common)
    return out


def validated_lines(stream: list[tuple[str | None, bytes]], now: datetime) -> list[bytes]:
    """The stream as event-buffer lines, each event validated as the tracking API validates it."""
    lines = []
    for user, raw in stream:
        parsed = events.parse_body(raw, now)
        if parsed.rejected:
            raise ValueError(f"demo event rejected: {parsed.rejected[0]}")
        lines.append(events.buffer_line(raw, user, events.epoch_ms(now)))
    return lines


def seed_demo_reports_and_alerts(
    session: Session, user_ids: Mapping[str, uuid.UUID], now: datetime, first_report_in: timedelta
) -> int:
    """The weekly content report (Arabic, to the analyst and the editor; first generated a few minutes
    after the first start, then Mondays 06:00 UTC) and the demo alert rules, both created by the editor
    (who holds analytics:manage, so may deactivate them). Returns rows added."""
    added = 0
    recipients = [str(user_ids[name]) for name in ("analyst", "editor") if name in user_ids]
    if session.scalar(sa.select(sa.func.count()).where(Report.name == DEMO_REPORT_NAME)) == 0:
        report = report_jobs.create_report(
            session,
            report_jobs.NewReport(
                name=DEMO_REPORT_NAME,
                report_type="content",
                description="Views, watch time and completion of the week's content, with charts.",
                configuration={"formats": ["csv", "xlsx", "pdf"], "language": "ar", "period": "last_7_days"},
                schedule="0 6 * * 1",
                recipients=recipients,
            ),
            created_by=user_ids.get("editor"),
            now=now,
        )
        report.next_run_at = now + first_report_in
        added += 1
    existing = set(session.scalars(sa.select(AlertRule.name)))
    for rule in DEMO_ALERTS:
        if rule["name"] not in existing:
            session.add(
                AlertRule(**rule, recipients=recipients, created_by=user_ids.get("editor"), created_at=now)
            )
            added += 1
    session.flush()
    return added
