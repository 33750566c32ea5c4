"""The import mapping engine: paths, coercions, templates, defaults, transforms, language tagging, the
built-in rules on realistic records, overrides and the dry run."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from domain.errors import InvalidValue
from domain.imports import mapping_values as mv
from domain.imports.mapping import RecordRejected, compile_rules, dry_run, map_record, merge_rules, rules_for
from domain.imports.mapping_defaults import DEFAULT_RULES

YOUTUBE_VIDEO = {
    "kind": "youtube#video",
    "etag": "Xyz",
    "id": "dQw4w9WgXcQ",
    "snippet": {
        "publishedAt": "2024-11-03T17:30:00Z",
        "channelId": "UCabc",
        "title": "شرح الذكاء الاصطناعي للمبتدئين",
        "description": "في هذه الحلقة نشرح أساسيات الذكاء الاصطناعي.\nhttps://example.com",
        "thumbnails": {
            "default": {"url": "https://i.ytimg.com/vi/dQw4w9WgXcQ/default.jpg", "width": 120, "height": 90},
            "high": {"url": "https://i.ytimg.com/vi/dQw4w9WgXcQ/hqdefault.jpg", "width": 480, "height": 360},
            "maxres": {
                "url": "https://i.ytimg.com/vi/dQw4w9WgXcQ/maxresdefault.jpg",
                "width": 1280,
                "height": 720,
            },
        },
        "channelTitle": "قناة ثمانية",
        "tags": ["ذكاء اصطناعي", "AI", "Machine_Learning", "AI"],
        "categoryId": "27",
        "defaultLanguage": "ar",
        "defaultAudioLanguage": "ar-SA",
        "localized": {"title": "شرح الذكاء الاصطناعي للمبتدئين", "description": "وصف محلي"},
    },
    "contentDetails": {"duration": "PT1H2M3S", "dimension": "2d", "definition": "hd"},
    "statistics": {"viewCount": "152340", "likeCount": "4210", "commentCount": "312"},
}

PODCAST_ENTRY = {  # an entry as feedparser gives it, of an Arabic podcast with iTunes fields
    "id": "https://podcast.example/ep/12",
    "guidislink": False,
    "link": "https://podcast.example/ep/12",
    "title": "الحلقة ١٢: قصة &amp; <b>التاريخ</b>",
    "title_detail": {"type": "text/html", "language": "ar", "value": "الحلقة ١٢"},
    "summary": '<p>نتحدث عن <a href="https://ex.com/x" onclick="steal()">المصادر</a></p><script>alert(1)</script>'
    '<img src="x" onerror="alert(2)">',
    "summary_detail": {"type": "text/html", "language": "ar"},
    "published": "Mon, 06 Jan 2025 09:00:00 +0300",
    "published_parsed": time.struct_time((2025, 1, 6, 6, 0, 0, 0, 6, 0)),
    "tags": [
        {"term": "تاريخ", "scheme": None, "label": None},
        {"term": "Culture", "scheme": None, "label": None},
    ],
    "authors": [{"name": "فريق ثمانية"}],
    "author": "فريق ثمانية",
    "itunes_duration": "00:45:12",
    "itunes_episode": "12",
    "itunes_season": "2",
    "itunes_explicit": False,
    "itunes_episodetype": "full",
    "image": {"href": "https://podcast.example/ep12.jpg"},
    "enclosures": [
        {"href": "https://cdn.podcast.example/ep12.mp3", "type": "audio/mpeg", "length": "43520000"}
    ],
    "links": [
        {"rel": "alternate", "type": "text/html", "href": "https://podcast.example/ep/12"},
        {"rel": "enclosure", "type": "audio/mpeg", "href": "https://cdn.podcast.example/ep12.mp3"},
    ],
}

REST_RECORD = {
    "id": 4711,
    "url": "https://api.example.com/articles/4711",
    "title": {"ar": "مقال عن الفضاء", "en": "An article about space"},
    "body": "<p>Space is <em>big</em>.</p>",
    "published_at": 1735689600,
    "keywords": "space, science، فضاء",
    "image": {"url": "https://api.example.com/img/4711.jpg"},
}


def rules(spec: dict) -> object:
    return compile_rules({"title": {"default": "t"}, "content_type": {"default": "article"}, **spec})


def one(field: str, rule: object, record: object) -> object:
    item = map_record(rules({field: rule}), record)
    return (
        item.metadata[field.removeprefix("metadata.")]
        if field.startswith("metadata.")
        else getattr(item, field)
    )


# --- paths ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("snippet.thumbnails.high.url", "https://i.ytimg.com/vi/dQw4w9WgXcQ/hqdefault.jpg"),
        ("snippet.tags[0]", "ذكاء اصطناعي"),
        ("snippet.tags[-1]", "AI"),
        ("snippet.thumbnails.none.url", mv.MISSING),
        ("snippet.tags[9]", mv.MISSING),
        ("snippet.title[0]", mv.MISSING),  # an index into text is no value, not a character
    ],
)
def test_dotted_paths_and_indexes(path: str, expected: object) -> None:
    assert mv.resolve(YOUTUBE_VIDEO, mv.parse_path(path)) == expected


def test_wildcards_collect_from_each_element_and_flatten_nested_ones() -> None:
    assert mv.resolve(PODCAST_ENTRY, mv.parse_path("tags[*].term")) == ["تاريخ", "Culture"]
    assert (
        mv.resolve(PODCAST_ENTRY, mv.parse_path("enclosures[0].href"))
        == "https://cdn.podcast.example/ep12.mp3"
    )
    nested = {"groups": [{"items": [{"n": 1}, {"n": 2}]}, {"items": [{"n": 3}, {}]}]}
    assert mv.resolve(nested, mv.parse_path("groups[*].items[*].n")) == [1, 2, 3]
    assert mv.resolve({"tags": "x"}, mv.parse_path("tags[*]")) is mv.MISSING


@pytest.mark.parametrize("path", ["", "a..b", "a.", ".a", "a[x]", "a[1", "a.[0]", "a]b"])
def test_bad_path_syntax_is_an_invalid_rule_naming_it(path: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        rules({"external_id": {"path": path}})
    assert "'external_id'" in caught.value.detail and caught.value.field == "mapping.external_id"


def test_a_list_of_paths_takes_the_first_with_a_value() -> None:
    rule = {"path": ["snippet.thumbnails.standard.url", "snippet.thumbnails.maxres.url"]}
    assert one("thumbnail_url", rule, YOUTUBE_VIDEO) == "https://i.ytimg.com/vi/dQw4w9WgXcQ/maxresdefault.jpg"


# --- coercions ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        ("string", 42, "42"),
        ("int", "1,234", 1234),
        ("int", 7.0, 7),
        ("int", "12.0", 12),
        ("float", "3.5", 3.5),
        ("bool", "yes", True),
        ("bool", "clean", False),
        ("bool", 0, False),
        ("datetime", "2024-11-03T17:30:00Z", datetime(2024, 11, 3, 17, 30, tzinfo=UTC)),
        ("datetime", "2024-11-03T20:30:00+03:00", datetime(2024, 11, 3, 17, 30, tzinfo=UTC)),
        ("datetime", "2024-11-03", datetime(2024, 11, 3, tzinfo=UTC)),
        ("datetime", "Mon, 06 Jan 2025 09:00:00 +0300", datetime(2025, 1, 6, 6, 0, tzinfo=UTC)),
        ("datetime", "Mon, 06 Jan 2025 09:00:00 GMT", datetime(2025, 1, 6, 9, 0, tzinfo=UTC)),
        ("datetime", 1735689600, datetime(2025, 1, 1, tzinfo=UTC)),
        ("datetime", 1735689600000, datetime(2025, 1, 1, tzinfo=UTC)),
        ("datetime", "1735689600", datetime(2025, 1, 1, tzinfo=UTC)),
        ("datetime", time.struct_time((2025, 1, 6, 6, 0, 0, 0, 6, 0)), datetime(2025, 1, 6, 6, tzinfo=UTC)),
        ("duration", "PT1H2M3S", 3723.0),
        ("duration", "PT4M13S", 253.0),
        ("duration", "P1DT1S", 86401.0),
        ("duration", "PT0.5S", 0.5),
        ("duration", "01:02:03", 3723.0),
        ("duration", "45:12", 2712.0),
        ("duration", "2712", 2712.0),
        ("duration", 90, 90.0),
        ("list", "a", ["a"]),
        ("list", ["a", "b"], ["a", "b"]),
        ("tags", "News, Sports؛ رياضة،  اخبار |x", ["news", "sports", "رياضة", "اخبار x"]),
        ("tags", ["A_B", {"term": "T"}, "a-b"], ["a-b", "t"]),
    ],
)
def test_coercions(kind: str, value: object, expected: object) -> None:
    assert mv.COERCIONS[kind](value) == expected


@pytest.mark.parametrize(
    ("kind", "value", "words"),
    [
        ("int", "twelve", "whole number"),
        ("int", 1.5, "whole number"),
        ("int", True, "whole number"),
        ("float", "nan", "finite"),
        ("float", "x", "number"),
        ("bool", "maybe", "yes/no"),
        ("datetime", "next tuesday", "ISO 8601, RFC 822"),
        ("datetime", 10**20, "out of range"),
        ("duration", "PT", "duration"),
        ("duration", "1:99:00", "duration"),
        ("duration", -5, "negative"),
        ("string", {"a": 1}, "object"),
        ("tags", [["nested"]], "tag must be text"),
    ],
)
def test_bad_values_raise_a_reason(kind: str, value: object, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        mv.COERCIONS[kind](value)


def test_a_bad_value_in_an_optional_field_is_a_warning_and_in_a_required_one_an_error() -> None:
    spec = {"metadata.episode": {"path": "ep", "type": "int"}, "publish_at": {"path": "when"}}
    item = map_record(rules(spec), {"ep": "twelve", "when": "soon"})
    assert item.publish_at is None and "episode" not in item.metadata
    assert {w.field for w in item.warnings} == {"metadata.episode", "publish_at"}
    spec["metadata.episode"]["required"] = True
    with pytest.raises(RecordRejected) as caught:
        map_record(rules(spec), {"ep": "twelve"})
    assert [(e.field, "whole number" in e.reason) for e in caught.value.errors] == [
        ("metadata.episode", True)
    ]


def test_unknown_type_target_or_transform_raise_invalid_value_naming_the_rule() -> None:
    with pytest.raises(InvalidValue, match="'metadata.n'.*unknown type 'decimal'"):
        rules({"metadata.n": {"path": "n", "type": "decimal"}})
    with pytest.raises(InvalidValue, match="'headline': unknown target field"):
        rules({"headline": {"path": "h"}})
    with pytest.raises(InvalidValue, match="'tags': unknown transform 'reverse'"):
        rules({"tags": {"path": "t", "transforms": ["reverse"]}})
    with pytest.raises(InvalidValue, match="'slug': bad regex"):
        rules({"slug": {"path": "s", "transforms": [{"regex": "("}]}})
    with pytest.raises(InvalidValue, match="'tags' has unknown keys: paht"):
        rules({"tags": {"paht": "t"}})
    with pytest.raises(InvalidValue, match="'tags': language applies to title and description only"):
        rules({"tags": {"path": "t", "language": "ar"}})
    with pytest.raises(InvalidValue, match="'slug' needs a path, a template or a default"):
        rules({"slug": {"type": "string"}})
    with pytest.raises(InvalidValue, match="'external_url': template"):
        rules({"external_url": {"template": "{{ id "}})


# --- templates, defaults, transforms ----------------------------------------------------------------


def test_templates_render_with_the_record_in_the_sandbox() -> None:
    spec = {
        "external_url": {"template": "https://www.youtube.com/watch?v={{ id }}"},
        "metadata.label": {"template": "{{ snippet.channelTitle }} · {{ statistics.viewCount | int }}"},
        "metadata.has_audio": {"template": "{{ record.get('enclosures') is not none }}", "type": "bool"},
    }
    item = map_record(rules(spec), YOUTUBE_VIDEO)
    assert item.external_url == "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
    assert item.metadata == {"label": "قناة ثمانية · 152340", "has_audio": False}
    # The sandbox holds: no attribute escapes to Python internals.
    escape = {"metadata.x": {"template": "{{ record.__class__.__mro__ }}", "required": True}}
    with pytest.raises(RecordRejected, match="metadata.x: template"):
        map_record(rules(escape), {})


def test_a_runaway_template_fails_its_field_within_the_render_budget() -> None:
    spec = {
        "metadata.x": {
            "template": "{% for i in range(10**5) %}{% for j in range(10**5) %}{% endfor %}{% endfor %}"
        }
    }
    item = map_record(rules(spec), {})  # 10**10 iterations: only the budget ends it
    assert [w.field for w in item.warnings] == ["metadata.x"] and "longer than" in item.warnings[0].reason


def test_defaults_fill_missing_or_empty_values_and_failing_templates() -> None:
    spec = {
        "language": {"path": "lang", "default": "ar"},
        "tags": {"path": "tags", "default": ["imported"]},
        "metadata.source": {"template": "{{ missing_key }}", "default": "feed"},
    }
    item = map_record(rules(spec), {"tags": []})
    assert (item.language, item.tags, item.metadata) == ("ar", ["imported"], {"source": "feed"})
    assert map_record(rules(spec), {"tags": ["x"], "lang": "en-GB"}).language == "en"


def test_html_is_sanitized_to_a_safe_subset_with_links_kept() -> None:
    item = map_record(rules_for("rss"), PODCAST_ENTRY)
    html = item.description["ar"]
    assert "<script" not in html and "alert" not in html and "onerror" not in html and "onclick" not in html
    assert "<img" not in html
    assert '<a href="https://ex.com/x" rel="noopener noreferrer nofollow">المصادر</a>' in html
    assert (
        mv.sanitize_html('<a href="javascript:alert(1)">x</a>')
        == '<a rel="noopener noreferrer nofollow">x</a>'
    )
    assert item.title == {"ar": "الحلقة ١٢: قصة & التاريخ"}  # strip_html: tags gone, entities decoded


def test_transforms_strip_lower_regex_map_and_truncate() -> None:
    spec = {
        "slug": {"path": "code", "transforms": [{"regex": r"ID-(\d+)"}]},
        "content_type": {"path": "kind", "transforms": ["strip", "lower", {"map": {"podcast": "episode"}}]},
        "metadata.short": {"path": "long", "transforms": [{"truncate": 10}]},
        "metadata.upper": {"path": "kind", "transforms": ["strip", "upper"]},
    }
    item = map_record(
        compile_rules({"title": {"default": "t"}, **spec}),
        {"code": "x ID-42 y", "kind": " Podcast ", "long": "one two three four"},
    )
    assert (item.slug, item.content_type, item.metadata) == (
        "42",
        "episode",
        {"short": "one two…", "upper": "PODCAST"},
    )
    long_html = "<p>" + "كلمة " * 2000 + '<a href="https://x.test">link</a></p>'
    described = map_record(
        rules({"description": {"path": "d", "transforms": ["sanitize_html", "truncate"]}}), {"d": long_html}
    )
    text = described.description["ar"]
    assert len(text) <= 5000 and text.startswith("<p>") and text.endswith("…</p>")


def test_a_text_over_the_field_limit_without_truncate_is_an_error() -> None:
    with pytest.raises(RecordRejected, match="title: longer than 300 characters"):
        map_record(
            compile_rules({"title": {"path": "t"}, "content_type": {"default": "video"}}), {"t": "x" * 301}
        )


def test_fixed_fields_are_checked() -> None:
    spec = {"external_url": {"path": "u"}, "content_type": {"path": "k"}}
    with pytest.raises(RecordRejected) as caught:
        map_record(rules(spec), {"u": "javascript:alert(1)", "k": "movie"})
    assert [e.field for e in caught.value.errors] == ["content_type"]
    assert "unknown content type 'movie'" in caught.value.errors[0].reason
    item = map_record(rules({"external_url": {"path": "u"}}), {"u": "ftp://x"})
    assert item.external_url is None and "http(s) URL" in item.warnings[0].reason


# --- languages ------------------------------------------------------------------------------------


def test_detect_language_by_script() -> None:
    assert mv.detect_language("مرحبا بالعالم") == "ar"
    assert mv.detect_language("Hello world") == "en"
    assert mv.detect_language("تعلم Python في ساعة") == "ar"
    assert mv.detect_language("Intro to الجبر and geometry basics") == "en"
    assert mv.detect_language("2024 - 12") is None
    assert [mv.language_code(v) for v in ("ar-SA", "en_US", "English", "fr", None)] == [
        "ar",
        "en",
        "en",
        None,
        None,
    ]


def test_texts_are_tagged_by_the_record_language_or_the_script() -> None:
    spec = {"language": {"path": "lang"}, "title": {"path": "t"}}
    assert map_record(rules(spec), {"lang": "en", "t": "2024"}).title == {"en": "2024"}
    assert map_record(rules(spec), {"t": "خبر اليوم"}).title == {"ar": "خبر اليوم"}
    detect = {"language": {"path": "lang"}, "title": {"path": "t", "language": "detect"}}
    # A feed that says "ar" for every entry: the English entry is still tagged en.
    item = map_record(rules(detect), {"lang": "ar", "t": "Weekly news roundup"})
    assert (item.title, item.language) == ({"en": "Weekly news roundup"}, "ar")
    fixed = {"title": {"path": "t", "language": "en"}}
    assert map_record(rules(fixed), {"t": "عنوان"}).title == {"en": "عنوان"}


def test_a_mixed_record_tags_each_text_by_its_own_script() -> None:
    entry = {
        **PODCAST_ENTRY,
        "title": "Episode 12: Stories of the desert",
        "summary": "<p>قصص من الصحراء</p>",
    }
    item = map_record(rules_for("rss"), entry)
    assert item.title == {"en": "Episode 12: Stories of the desert"}
    assert item.description == {"ar": "<p>قصص من الصحراء</p>"}


def test_per_language_sub_rules_read_separate_fields() -> None:
    row = {"title_ar": "عنوان", "title_en": "Title", "type": "Video", "tags": "a, b"}
    item = map_record(rules_for("manual"), row)
    assert (item.title, item.content_type, item.tags) == ({"ar": "عنوان", "en": "Title"}, "video", ["a", "b"])
    # Without the per-language columns the plain title is tagged by its script.
    assert map_record(rules_for("manual"), {"title": "Plain title"}).title == {"en": "Plain title"}


# --- the built-in rules on realistic records --------------------------------------------------------


def test_youtube_defaults_on_a_videos_list_item() -> None:
    item = map_record(rules_for("youtube"), YOUTUBE_VIDEO)
    assert item.title == {"ar": "شرح الذكاء الاصطناعي للمبتدئين"}
    assert item.description == {"ar": "وصف محلي"}
    assert (item.content_type, item.language, item.external_id) == ("video", "ar", "dQw4w9WgXcQ")
    assert item.tags == ["ذكاء اصطناعي", "ai", "machine-learning"]
    assert item.publish_at == datetime(2024, 11, 3, 17, 30, tzinfo=UTC)
    assert item.duration_s == 3723.0
    assert item.thumbnail_url == "https://i.ytimg.com/vi/dQw4w9WgXcQ/maxresdefault.jpg"
    assert item.external_url == "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
    assert item.metadata["embed_url"] == "https://www.youtube.com/embed/dQw4w9WgXcQ"
    assert (item.metadata["view_count"], item.metadata["like_count"]) == (152340, 4210)
    assert item.metadata["audio_language"] == "ar-SA" and item.warnings == []


def test_rss_defaults_on_an_arabic_podcast_entry() -> None:
    item = map_record(rules_for("rss"), PODCAST_ENTRY)
    assert (item.content_type, item.language, item.external_id) == (
        "episode",
        "ar",
        "https://podcast.example/ep/12",
    )
    assert item.publish_at == datetime(2025, 1, 6, 6, 0, tzinfo=UTC)
    assert item.duration_s == 2712.0
    assert item.media_urls == ["https://cdn.podcast.example/ep12.mp3"]
    assert item.thumbnail_url == "https://podcast.example/ep12.jpg"
    assert item.tags == ["تاريخ", "culture"]
    assert item.metadata == {
        "author": "فريق ثمانية",
        "episode": 12,
        "season": 2,
        "explicit": False,
        "episode_type": "full",
        "enclosure_types": ["audio/mpeg"],
    }
    plain = {k: v for k, v in PODCAST_ENTRY.items() if k not in ("enclosures", "published")}
    article = map_record(rules_for("rss"), plain)
    assert article.content_type == "article"
    assert article.publish_at == datetime(2025, 1, 6, 6, 0, tzinfo=UTC)  # from published_parsed


def test_api_defaults_on_a_rest_record() -> None:
    item = map_record(rules_for("api"), REST_RECORD)
    assert item.title == {"ar": "مقال عن الفضاء", "en": "An article about space"}
    assert item.description == {"en": "<p>Space is <em>big</em>.</p>"}
    assert (item.external_id, item.content_type) == ("4711", "article")
    assert item.publish_at == datetime(2025, 1, 1, tzinfo=UTC)
    assert item.tags == ["space", "science", "فضاء"]
    assert item.thumbnail_url == "https://api.example.com/img/4711.jpg"
    assert item.to_dict()["publish_at"] == "2025-01-01T00:00:00+00:00"


def test_every_built_in_rule_set_compiles() -> None:
    for source_type in DEFAULT_RULES:
        assert rules_for(source_type).fields
    with pytest.raises(InvalidValue, match="unknown source type 'ftp'"):
        rules_for("ftp")


# --- overrides ------------------------------------------------------------------------------------


def test_overrides_merge_field_by_field_over_the_type_defaults() -> None:
    overrides = {
        "title": {"path": "snippet.channelTitle"},  # a new source drops the default's paths
        "description": {"transforms": ["strip", {"truncate": 5}]},  # keeps the default's paths
        "content_type": {"default": "episode"},
        "metadata.view_count": None,  # removed
        "metadata.playlist": {"default": "lectures"},
    }
    merged = merge_rules(DEFAULT_RULES["youtube"], overrides)
    assert merged["title"] == {"path": "snippet.channelTitle", "transforms": ["strip", "truncate"]}
    assert "metadata.view_count" not in merged
    item = map_record(rules_for("youtube", overrides), YOUTUBE_VIDEO)
    assert item.title == {"ar": "قناة ثمانية"}
    assert item.description == {"ar": "وصف…"}
    assert item.content_type == "episode"
    assert "view_count" not in item.metadata and item.metadata["playlist"] == "lectures"
    assert DEFAULT_RULES["youtube"]["title"]["path"] == [
        "snippet.localized.title",
        "snippet.title",
    ]  # untouched
    with pytest.raises(InvalidValue, match="'metadata.x': unknown type"):
        rules_for("youtube", {"metadata.x": {"path": "id", "type": "uuid"}})


# --- dry run --------------------------------------------------------------------------------------


def test_dry_run_reports_per_item_errors_while_valid_items_map() -> None:
    records = [
        YOUTUBE_VIDEO,
        {"id": "no-title", "snippet": {"publishedAt": "2024-01-01T00:00:00Z"}},
        "not an object",
        {**YOUTUBE_VIDEO, "id": "second", "snippet": {**YOUTUBE_VIDEO["snippet"], "publishedAt": "garbage"}},
    ]
    results = dry_run(rules_for("youtube"), records)
    assert [r.ok for r in results] == [True, False, False, True]
    assert results[0].item.external_id == "dQw4w9WgXcQ"
    assert [e.to_dict() for e in results[1].errors] == [
        {
            "field": "title",
            "reason": "required, but the record has no value at snippet.localized.title or snippet.title",
        }
    ]
    assert {e.field for e in results[2].errors} == {"external_id", "title"}
    assert results[3].item.publish_at is None
    assert [w.field for w in results[3].item.warnings] == ["publish_at"]
    assert results[1].to_dict()["item"] is None and results[0].to_dict()["item"]["title"]
