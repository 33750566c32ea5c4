"""RSS/Atom parsing (domain.imports.feeds): records, dedupe keys, languages, podcast fields, and the
bad documents a feed source meets (each a `FeedError` or a reported entry, never a crash)."""

from __future__ import annotations

import datetime as dt
import tracemalloc

import feedparser
import pytest

from domain.imports.feeds import (
    Enclosure,
    FeedError,
    PodcastFields,
    dedupe_key,
    entry_language,
    media_kind,
    parse_duration,
    parse_feed,
    refuse_entity_declarations,
)
from domain.text import script_language
from tests.domain.imports.feed_samples import ARABIC_PODCAST, ATOM, MIXED, billion_laughs

# --- records -------------------------------------------------------------------------------------


def test_an_arabic_podcast_becomes_records_with_audio_and_itunes_fields() -> None:
    feed = parse_feed(ARABIC_PODCAST.encode(), url="https://podcast.example/feed.xml")
    assert (feed.title, feed.language, feed.ttl_minutes, feed.version) == (
        "بودكاست ثمانية",
        "ar",
        90,
        "rss20",
    )
    assert feed.image == "https://podcast.example/cover.jpg"
    assert feed.skipped == () and feed.warnings == ()
    first, second = feed.entries
    assert first.key == "guid:thmanyah-ep-1" and first.link == "https://podcast.example/episodes/1"
    assert first.published == dt.datetime(2026, 12, 1, 7, 0, tzinfo=dt.UTC)
    assert first.language == "ar" and second.language == "ar"
    assert first.enclosures == (
        Enclosure("https://cdn.podcast.example/ep1.mp3", "audio/mpeg", 48213004, "audio"),
    )
    assert first.podcast == PodcastFields(
        episode=1,
        season=2,
        duration_seconds=3723,
        explicit=False,
        image="https://podcast.example/ep1.jpg",
        episode_type="full",
    )
    # Podcasting 2.0 numbers when iTunes has none; the feed's cover when the episode has no image.
    assert second.podcast == PodcastFields(2, 2, 2710, True, "https://podcast.example/cover.jpg", None)
    assert second.enclosures == (
        Enclosure("https://cdn.podcast.example/ep2.m4a", "audio/mp4", None, "audio"),
    )


def test_html_is_sanitized_to_a_safe_subset() -> None:
    first = parse_feed(ARABIC_PODCAST.encode()).entries[0]
    assert "<b>القراءة</b>" in first.summary and "script" not in first.summary
    assert "javascript" not in first.content and "نص الحلقة" in first.content


def test_an_enclosure_that_is_not_media_is_reported_not_kept() -> None:
    second = parse_feed(ARABIC_PODCAST.encode()).entries[1]
    assert [e.url for e in second.enclosures] == ["https://cdn.podcast.example/ep2.m4a"]
    assert second.problems == (
        "enclosure https://cdn.podcast.example/ep2-notes.pdf (application/pdf) is not audio, video or an "
        "image: not downloaded",
    )


def test_an_atom_feed_with_relative_links_and_entry_languages() -> None:
    feed = parse_feed(ATOM.encode(), url="https://notes.example/atom.xml")
    assert (feed.version, feed.language, feed.ttl_minutes) == ("atom10", "en", None)
    note, arabic = feed.entries
    assert note.key == "guid:urn:note:1" and note.link == "https://notes.example/notes/1"
    assert note.published == dt.datetime(2026, 12, 2, 8, tzinfo=dt.UTC)
    assert note.updated == dt.datetime(2026, 12, 3, 8, tzinfo=dt.UTC)
    assert note.content == "<p>Long form <em>text</em></p>" and note.summary == "Why we read."
    assert note.enclosures == (Enclosure("https://notes.example/talk.mp4", "video/mp4", 1000, "video"),)
    assert note.podcast is None and note.language == "en"
    # xml:lang on the entry; no <published>: the update date stands in.
    assert arabic.language == "ar" and arabic.published == arabic.updated


def test_mixed_entries_are_tagged_deduped_and_tolerated_without_dates_or_titles() -> None:
    feed = parse_feed(MIXED.encode())
    assert [(e.key, e.language) for e in feed.entries] == [
        ("guid:m-1", "en"),
        ("guid:m-2", "ar"),  # the feed says en, the script says ar
        ("guid:m-3", "ar"),
        ("link:https://mixed.example/4", "en"),
        (dedupe_key(guid=None, link=None, title="Only a title", content=None), "en"),
    ]
    untitled = feed.entries[2]
    assert untitled.title is None and untitled.published is None and untitled.updated is None
    assert [(s.index, s.key, s.reason) for s in feed.skipped] == [
        (3, "guid:m-1", "duplicate of entry 0"),
        (5, "link:https://mixed.example/4", "duplicate of entry 4"),
        (7, feed.entries[4].key, "duplicate of entry 6"),
        (8, None, "the entry has no guid, link, title or content"),
    ]
    assert feed.entries[0].title == "English news"  # the first of two equal guids is kept


# --- bad documents -------------------------------------------------------------------------------


def test_a_billion_laughs_feed_fails_fast_in_bounded_memory() -> None:
    document = billion_laughs(9)
    tracemalloc.start()
    try:
        with pytest.raises(FeedError) as raised:
            parse_feed(document)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert raised.value.kind == "entities"
    assert "declares XML entities (first: 'lol0')" in raised.value.reason
    assert peak < 2 * 1024 * 1024  # 3 GB if expanded; the guard stops at the first declaration


def test_a_quadratic_blowup_and_an_external_entity_are_refused_too() -> None:
    quadratic = (
        f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "{"x" * 50_000}">]><rss version="2.0"><channel>'
        f"<title>{'&a;' * 50_000}</title></channel></rss>"
    ).encode()
    xxe = (
        b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<rss version="2.0"><channel><title>&x;</title></channel></rss>'
    )
    for document in (quadratic, xxe):
        with pytest.raises(FeedError) as raised:
            parse_feed(document)
        assert raised.value.kind == "entities"


def test_entities_are_refused_even_when_expat_cannot_read_the_prolog() -> None:
    # Broken before the DTD: expat gives up, feedparser's lenient parser would carry on.
    broken = billion_laughs(9).replace(b"<!DOCTYPE", b"<<junk>><!DOCTYPE", 1)
    with pytest.raises(FeedError) as raised:
        refuse_entity_declarations(broken)
    assert raised.value.kind == "entities"
    # Without the guard feedparser would return the salvaged document as a feed.
    assert feedparser.parse(broken).bozo


def test_an_external_dtd_reference_without_entities_is_accepted() -> None:
    rss091 = (
        b'<?xml version="1.0"?><!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" '
        b'"http://my.netscape.com/publish/formats/rss-0.91.dtd"><rss version="0.91"><channel><title>N</title>'
        b"<item><title>Old</title><link>https://old.example/1</link></item></channel></rss>"
    )
    feed = parse_feed(rss091)
    assert [e.key for e in feed.entries] == ["link:https://old.example/1"]


def test_an_html_page_is_not_a_feed() -> None:
    page = b"<!DOCTYPE html><html><head><title>Blog</title></head><body><p>Hello</p></body></html>"
    for content_type in ("text/html; charset=utf-8", None):
        with pytest.raises(FeedError) as raised:
            parse_feed(page, content_type=content_type)
        assert raised.value.kind == "not_a_feed"
        assert "HTML page" in raised.value.reason


def test_malformed_xml_without_entries_is_an_error_and_with_entries_a_warning() -> None:
    with pytest.raises(FeedError) as raised:
        parse_feed(b"this is not xml {at: all}")
    assert raised.value.kind == "malformed"
    with pytest.raises(FeedError) as raised:
        parse_feed(b'<?xml version="1.0"?><rss version="2.0"><channel><title>T &amp U</tit')
    assert raised.value.kind == "malformed" and "no readable entry" in raised.value.reason
    truncated = MIXED.encode()[: MIXED.index("<item><guid>m-3")] + b"<item><title>cut"
    feed = parse_feed(truncated)
    assert [e.key for e in feed.entries][:2] == ["guid:m-1", "guid:m-2"]
    assert len(feed.warnings) == 1 and "not well-formed" in feed.warnings[0]


def test_a_document_that_is_neither_rss_nor_atom() -> None:
    with pytest.raises(FeedError) as raised:
        parse_feed(b'<?xml version="1.0"?><catalog><book>x</book></catalog>')
    assert raised.value.kind == "not_a_feed"


# --- keys, languages, small readers --------------------------------------------------------------


def test_dedupe_keys_prefer_guid_then_link_then_a_content_hash() -> None:
    assert dedupe_key(guid=" g ", link="https://x/1", title="t", content="c") == "guid:g"
    assert dedupe_key(guid="", link="https://x/1", title="t", content="c") == "link:https://x/1"
    hashed = dedupe_key(guid=None, link=None, title="t", content="c")
    assert hashed.startswith("hash:") and len(hashed) == 5 + 64
    assert hashed == dedupe_key(guid=None, link=None, title="t", content="c")
    assert hashed != dedupe_key(guid=None, link=None, title="tc", content="")
    long_key = dedupe_key(guid="g" * 400, link=None, title=None, content=None)
    assert long_key.startswith("guid:sha256:") and len(long_key) <= 255


def test_languages_from_declaration_and_script() -> None:
    assert script_language("الحلقة الأولى") == "ar"
    assert script_language("Episode one") == "en"
    assert script_language("Episode ١: الحلقة الأولى") == "ar"  # more Arabic letters than Latin
    assert script_language("2026 — 12") is None
    assert entry_language("en", "خبر عربي") == "ar"
    assert entry_language("ar", "English only") == "en"
    assert entry_language("fr", "Bonjour") == "fr"  # a Latin-script language is believed
    assert entry_language(None, "") is None
    assert entry_language("ar", "") == "ar"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("01:02:03", 3723), ("62:03", 3723), ("3723", 3723), ("45.6", 46), ("", None), ("soon", None),
     ("1:2:3:4", None), (None, None)],
)  # fmt: skip
def test_durations(value: str | None, seconds: int | None) -> None:
    assert parse_duration(value) == seconds


def test_media_kinds_from_type_or_extension() -> None:
    assert media_kind("audio/mpeg", "https://x/a") == "audio"
    assert media_kind("image/jpeg; q=1", "https://x/a") == "image"
    assert media_kind(None, "https://x/a.mp4?sig=1") == "video"
    assert media_kind("application/octet-stream", "https://x/a.mp3") == "audio"
    assert media_kind("application/pdf", "https://x/a.mp3") is None
    assert media_kind(None, "https://x/a.zip") is None
