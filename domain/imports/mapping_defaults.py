"""The built-in mapping rules of each source type, as JSON (what `GET`/`PUT
/api/v1/import/mapping/{sourceType}` shows and overrides): a YouTube `videos.list` item, an RSS/Atom
entry as feedparser gives it (iTunes podcast fields included), a generic REST record and a manual
JSON/CSV row."""

from __future__ import annotations

from typing import Any

SOURCE_TYPES = ("youtube", "rss", "api", "manual")

_TEXT = ["strip", "truncate"]
_HTML = ["sanitize_html", "truncate"]

YOUTUBE: dict[str, Any] = {
    "external_id": {"path": "id", "required": True},
    "external_url": {"template": "https://www.youtube.com/watch?v={{ id }}"},
    "language": {"path": ["snippet.defaultLanguage", "snippet.defaultAudioLanguage"]},
    "title": {"path": ["snippet.localized.title", "snippet.title"], "transforms": _TEXT},
    "description": {"path": ["snippet.localized.description", "snippet.description"], "transforms": _TEXT},
    "content_type": {"default": "video"},
    "tags": {"path": "snippet.tags"},
    "publish_at": {"path": "snippet.publishedAt"},
    "duration_s": {"path": "contentDetails.duration"},
    # The largest thumbnail the video has.
    "thumbnail_url": {
        "path": [
            f"snippet.thumbnails.{size}.url" for size in ("maxres", "standard", "high", "medium", "default")
        ]
    },
    "metadata.youtube_id": {"path": "id"},
    "metadata.embed_url": {"template": "https://www.youtube.com/embed/{{ id }}"},
    "metadata.channel_id": {"path": "snippet.channelId"},
    "metadata.channel_title": {"path": "snippet.channelTitle"},
    "metadata.audio_language": {"path": "snippet.defaultAudioLanguage"},
    "metadata.view_count": {"path": "statistics.viewCount", "type": "int"},
    "metadata.like_count": {"path": "statistics.likeCount", "type": "int"},
    "metadata.comment_count": {"path": "statistics.commentCount", "type": "int"},
    "metadata.definition": {"path": "contentDetails.definition"},
}

RSS: dict[str, Any] = {
    "external_id": {"path": ["id", "link"], "required": True},
    "external_url": {"path": "link"},
    # A mixed feed declares one language for all its entries: the script of each text decides.
    "language": {"path": ["language", "title_detail.language", "summary_detail.language"]},
    "title": {"path": "title", "transforms": ["strip_html", *_TEXT], "language": "detect"},
    "description": {"path": ["content[0].value", "summary"], "transforms": _HTML, "language": "detect"},
    "content_type": {
        "path": ["enclosures[0].type", "media_content[0].type"],
        "transforms": [{"regex": r"^(audio|video|image)/"}, {"map": {"audio": "episode", "video": "video"}}],
        "default": "article",
    },
    "tags": {"path": "tags[*].term"},
    "publish_at": {"path": ["published", "updated", "published_parsed", "updated_parsed"]},
    "duration_s": {"path": ["itunes_duration", "media_content[0].duration"]},
    "media_urls": {"path": "enclosures[*].href"},
    "thumbnail_url": {"path": ["image.href", "media_thumbnail[0].url"]},
    "metadata.author": {"path": "author", "transforms": ["strip_html", "strip"]},
    "metadata.episode": {"path": ["itunes_episode", "podcast_episode.episode"], "type": "int"},
    "metadata.season": {"path": ["itunes_season", "podcast_season.season"], "type": "int"},
    "metadata.explicit": {"path": "itunes_explicit", "type": "bool"},
    "metadata.episode_type": {"path": "itunes_episodetype"},
    "metadata.enclosure_types": {"path": "enclosures[*].type"},
}

API: dict[str, Any] = {
    "external_id": {"path": ["id", "uuid", "guid", "slug"], "type": "string", "required": True},
    "external_url": {"path": ["url", "link", "permalink", "links.self"]},
    "language": {"path": ["language", "lang", "locale"]},
    "title": {
        "ar": {"path": ["title.ar", "title_ar"], "transforms": _TEXT},
        "en": {"path": ["title.en", "title_en"], "transforms": _TEXT},
        "path": ["title", "name", "headline"],
        "transforms": ["strip_html", *_TEXT],
    },
    "description": {
        "ar": {"path": ["description.ar", "description_ar"], "transforms": _HTML},
        "en": {"path": ["description.en", "description_en"], "transforms": _HTML},
        "path": ["description", "summary", "body", "content"],
        "transforms": _HTML,
    },
    "content_type": {"path": ["content_type", "type"], "transforms": ["lower"], "default": "article"},
    "tags": {"path": ["tags", "keywords", "categories"]},
    "publish_at": {"path": ["published_at", "publishedAt", "date", "created_at", "createdAt"]},
    "thumbnail_url": {"path": ["thumbnail_url", "thumbnail", "image.url", "image"]},
    "media_urls": {"path": ["media_urls", "media_url", "audio_url", "video_url"]},
    "duration_s": {"path": ["duration", "duration_s"]},
}

# Manual rows: the column names of the import template (JSON objects may nest title/description).
MANUAL: dict[str, Any] = {
    "external_id": {"path": ["external_id", "id"], "type": "string"},
    "external_url": {"path": ["external_url", "url"]},
    "language": {"path": "language"},
    "title": {
        "ar": {"path": ["title_ar", "title.ar"], "transforms": _TEXT},
        "en": {"path": ["title_en", "title.en"], "transforms": _TEXT},
        "path": "title",
        "transforms": _TEXT,
    },
    "description": {
        "ar": {"path": ["description_ar", "description.ar"], "transforms": _HTML},
        "en": {"path": ["description_en", "description.en"], "transforms": _HTML},
        "path": "description",
        "transforms": _HTML,
    },
    "content_type": {
        "path": ["content_type", "type"],
        "transforms": ["strip", "lower"],
        "default": "article",
    },
    "tags": {"path": "tags"},
    "slug": {"path": "slug"},
    "publish_at": {"path": "publish_at"},
    "thumbnail_url": {"path": "thumbnail_url"},
    "media_urls": {"path": ["media_urls", "media_url"]},
    "duration_s": {"path": "duration"},
}

DEFAULT_RULES: dict[str, dict[str, Any]] = {"youtube": YOUTUBE, "rss": RSS, "api": API, "manual": MANUAL}
