"""Mapping imported records onto content items (`domain.imports.mapping.map_record`) with the built-in
rules: half YouTube `videos.list` items, half feedparser entries of an Arabic podcast, every record
different (ids, titles, dates, durations, tags), built before the clock starts.

`import.map_item`: mean ms per record (`goal`: 1 ms; the spec asks under 1 s), against a
hand-written function doing the same field picks with dict lookups and no rules, coercion or
sanitizing (`baseline`, so `ratio` is what the declarative engine costs over the bare picks).
Medians of `--rounds` alternating rounds.

    python bench/import_map.py [--items 4000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from domain.imports.mapping import map_record, rules_for

GOAL_MS = 1.0


def youtube_video(i: int) -> dict[str, Any]:
    vid = f"vid{i:08d}"
    return {
        "kind": "youtube#video",
        "id": vid,
        "snippet": {
            "publishedAt": f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:15:00Z",
            "channelId": "UCthmanyah",
            "title": f"شرح الدرس رقم {i} في البرمجة" if i % 3 else f"Lesson {i}: learning to code",
            "description": f"في هذه الحلقة رقم {i} نتحدث عن أساسيات البرمجة.\nhttps://example.com/{i}",
            "thumbnails": {
                size: {"url": f"https://i.ytimg.com/vi/{vid}/{size}.jpg", "width": w, "height": w * 9 // 16}
                for size, w in (("default", 120), ("medium", 320), ("high", 480), ("maxres", 1280))
            },
            "channelTitle": "ثمانية",
            "tags": ["برمجة", "تعليم", f"Series_{i % 7}", "Python"],
            "defaultLanguage": "ar" if i % 3 else "en",
            "defaultAudioLanguage": "ar",
        },
        "contentDetails": {"duration": f"PT{i % 3}H{i % 60}M{i % 59}S", "definition": "hd"},
        "statistics": {"viewCount": str(1000 + i * 7), "likeCount": str(i), "commentCount": str(i // 3)},
    }


def podcast_entry(i: int) -> dict[str, Any]:
    link = f"https://podcast.example/ep/{i}"
    return {
        "id": link,
        "link": link,
        "title": f"الحلقة {i}: حكايات من التاريخ",
        "title_detail": {"type": "text/plain", "language": "ar"},
        "summary": f'<p>نتحدث في الحلقة {i} عن <a href="https://ex.com/{i}">المصادر</a> و<b>الرواة</b>.</p>',
        "published": f"Mon, {1 + i % 28:02d} Jan 2025 09:{i % 60:02d}:00 +0300",
        "tags": [{"term": "تاريخ"}, {"term": "Culture"}],
        "author": "فريق ثمانية",
        "itunes_duration": f"00:{i % 60:02d}:{i % 59:02d}",
        "itunes_episode": str(i),
        "itunes_season": str(1 + i // 100),
        "itunes_explicit": False,
        "itunes_episodetype": "full",
        "image": {"href": f"https://podcast.example/ep{i}.jpg"},
        "enclosures": [
            {"href": f"https://cdn.podcast.example/ep{i}.mp3", "type": "audio/mpeg", "length": "4352"}
        ],
    }


def bare_youtube(r: dict[str, Any]) -> dict[str, Any]:
    s, thumbs = r["snippet"], r["snippet"]["thumbnails"]
    return {
        "external_id": r["id"],
        "external_url": "https://www.youtube.com/watch?v=" + r["id"],
        "language": s.get("defaultLanguage"),
        "title": {s.get("defaultLanguage") or "ar": s["title"]},
        "description": {s.get("defaultLanguage") or "ar": s["description"]},
        "content_type": "video",
        "tags": s.get("tags", []),
        "publish_at": s["publishedAt"],
        "duration_s": r["contentDetails"]["duration"],
        "thumbnail_url": next(thumbs[k]["url"] for k in ("maxres", "standard", "high") if k in thumbs),
        "metadata": {
            "youtube_id": r["id"],
            "embed_url": "https://www.youtube.com/embed/" + r["id"],
            "channel_id": s["channelId"],
            "view_count": r["statistics"]["viewCount"],
        },
    }


def bare_rss(e: dict[str, Any]) -> dict[str, Any]:
    return {
        "external_id": e.get("id") or e.get("link"),
        "external_url": e.get("link"),
        "title": {"ar": e["title"]},
        "description": {"ar": e.get("summary", "")},
        "content_type": "episode" if e.get("enclosures") else "article",
        "tags": [t["term"] for t in e.get("tags", [])],
        "publish_at": e.get("published"),
        "duration_s": e.get("itunes_duration"),
        "media_urls": [x["href"] for x in e.get("enclosures", [])],
        "thumbnail_url": e.get("image", {}).get("href"),
        "metadata": {"episode": e.get("itunes_episode"), "season": e.get("itunes_season")},
    }


def _mean_ms(fn: Callable[[Any], Any], records: list[Any]) -> float:
    started = time.perf_counter()
    for record in records:
        fn(record)
    return (time.perf_counter() - started) * 1000 / len(records)


def map_item(items: int = 4000, rounds: int = 5) -> dict[str, Any]:
    youtube, rss = rules_for("youtube"), rules_for("rss")
    records = [("y", youtube_video(i)) if i % 2 else ("r", podcast_entry(i)) for i in range(items)]
    engine_records = [(youtube if kind == "y" else rss, r) for kind, r in records]
    bare_records = [(bare_youtube if kind == "y" else bare_rss, r) for kind, r in records]
    for rules, record in engine_records[:20]:  # warm-up: templates compiled, regexes cached
        map_record(rules, record)

    def engine(pair: tuple[Any, Any]) -> Any:
        return map_record(*pair)

    def bare(pair: tuple[Any, Any]) -> Any:
        return pair[0](pair[1])

    measured, baseline = [], []
    for _ in range(rounds):
        measured.append(_mean_ms(engine, engine_records))
        baseline.append(_mean_ms(bare, bare_records))
    value, base = statistics.median(measured), statistics.median(baseline)
    return {
        "bench": "import.map_item",
        "value": round(value, 6),
        "unit": "ms",
        "baseline": round(base, 6),
        "ratio": round(value / base, 2),
        "goal": GOAL_MS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(map_item(args.items, args.rounds)), flush=True)


if __name__ == "__main__":
    main()
