"""RSS and Atom feeds turned into plain entry records: parsed by feedparser, guarded, deduplicated.

Safety first: a document whose DTD declares an entity is refused before feedparser sees it
(`refuse_entity_declarations`). Expat caps entity amplification since 2.4, but feedparser answers
that error by re-parsing with its lenient parser and returns whatever it salvaged, and an older expat
has no cap at all; feeds never need their own entities, so a billion-laughs document fails at its
first declaration, in the prolog, without expanding anything. HTML in summaries and content is
sanitized by feedparser to a safe subset (no scripts, styles, event handlers or `javascript:` links).

A feed that is not well-formed XML (feedparser's `bozo`) still yields its entries when feedparser
recognized it as RSS or Atom and salvaged at least one entry (a truncated body, a stray `&`): the
problem becomes a warning. Without a recognized format or without entries it is a `FeedError`, as is
an HTML page where a feed was expected.

Each entry gets a dedupe key (its guid, else its link, else a hash of title and content), a language
(what the entry or feed declares, unless its script says otherwise: `domain.text.script_language`),
its media enclosures (audio, video, images; anything else is reported as a problem and never
downloaded) and its iTunes / Podcasting 2.0 fields.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import mimetypes
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from xml.sax import SAXParseException
from xml.sax.handler import ContentHandler

import feedparser
from defusedxml.common import DefusedXmlException
from defusedxml.expatreader import DefusedExpatParser

from domain.text import primary_language, script_language

MEDIA_KINDS = ("audio", "video", "image")
MAX_KEY_LENGTH = 255
_SCAN_CHUNK = 64 * 1024
# Entity declarations spotted without a parser (a prolog expat could not read), in the encodings
# a feed may come in without a byte order mark expat would honour.
_ENTITY_DECLARATION = re.compile(
    b"|".join(
        re.escape("<!ENTITY".encode(codec))
        for codec in ("ascii", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be")
    ),
    re.IGNORECASE,
)
_HTML_START = re.compile(
    rb"^\s*(<!--.*?-->\s*)*<(!doctype\s+html|html[\s>]|head[\s>]|body[\s>])", re.I | re.S
)
# feedparser understands only `yes` and `clean` in <itunes:explicit>; Apple's current spelling is
# `true` / `false`. Rewritten to the old words before parsing, so both read the same.
_ITUNES_EXPLICIT = re.compile(
    rb"(<itunes:explicit\s*>\s*)(yes|true|explicit|no|false|clean)(\s*</itunes:explicit\s*>)", re.I
)
_TAG = re.compile(r"<[^>]*>")


class FeedError(ValueError):
    """A document that yields no entries: `kind` is `entities`, `malformed` or `not_a_feed`; the
    message says why, for the source's last error."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


@dataclass(frozen=True)
class Enclosure:
    """A media file attached to an entry; `kind` is audio, video or image."""

    url: str
    type: str | None
    length: int | None
    kind: str


@dataclass(frozen=True)
class PodcastFields:
    """The iTunes / Podcasting 2.0 fields of an episode (each None when the feed does not say)."""

    episode: int | None
    season: int | None
    duration_seconds: int | None
    explicit: bool | None
    image: str | None
    episode_type: str | None


@dataclass(frozen=True)
class FeedEntry:
    """One entry as the import maps it. `problems` are reported with the item without failing it."""

    key: str
    guid: str | None
    link: str | None
    title: str | None
    summary: str | None
    content: str | None
    published: dt.datetime | None
    updated: dt.datetime | None
    language: str | None
    enclosures: tuple[Enclosure, ...]
    podcast: PodcastFields | None
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class SkippedEntry:
    """An entry left out (a duplicate, or nothing to import), with its position in the document."""

    index: int
    key: str | None
    reason: str


@dataclass(frozen=True)
class ParsedFeed:
    title: str | None
    link: str | None
    language: str | None
    ttl_minutes: int | None
    image: str | None
    version: str
    entries: tuple[FeedEntry, ...]
    skipped: tuple[SkippedEntry, ...]
    warnings: tuple[str, ...]


# --- the guard -----------------------------------------------------------------------------------


class _RootReached(Exception):
    """The root element started: the prolog, the only place a DTD can be, is over."""


class _StopAtRoot(ContentHandler):
    def startElement(self, name: str, attrs: Any) -> None:  # noqa: N802 (SAX's name)
        raise _RootReached


def refuse_entity_declarations(data: bytes) -> None:
    """Raise `FeedError` (`entities`) when the document declares an entity (internal ones expand,
    external ones read files or URLs). Reads only the prolog (up to the root element) with
    defusedxml's expat reader, which stops at the first declaration; when expat cannot read the
    prolog, any `<!ENTITY` in the bytes counts, so feedparser's lenient parser never gets a DTD to
    expand either. A reference to an external DTD (RSS 0.91's Netscape DOCTYPE) is let through: it
    declares nothing here and neither this reader nor feedparser fetches it."""
    parser = DefusedExpatParser(forbid_dtd=False, forbid_entities=True, forbid_external=False)
    parser.setContentHandler(_StopAtRoot())
    try:
        for start in range(0, len(data), _SCAN_CHUNK):
            parser.feed(data[start : start + _SCAN_CHUNK])
    except _RootReached:
        return
    except DefusedXmlException as exc:
        raise FeedError(
            "entities",
            f"the feed declares XML entities (first: {getattr(exc, 'name', '?')!r}), which feeds never "
            "need and are refused",
        ) from None
    except SAXParseException:
        pass
    if _ENTITY_DECLARATION.search(data):
        raise FeedError("entities", "the feed declares XML entities, which feeds never need and are refused")


# --- parsing -------------------------------------------------------------------------------------


def parse_feed(data: bytes, *, content_type: str | None = None, url: str | None = None) -> ParsedFeed:
    """The feed's entries as records (first occurrence of each key kept), or `FeedError`. `url` is
    the address the body came from (relative links resolve against it); `content_type` its header."""
    refuse_entity_declarations(data)
    headers = {"content-type": content_type or "application/xml"}
    if url:
        headers["content-location"] = url
    result = feedparser.parse(_ITUNES_EXPLICIT.sub(_explicit_word, data), response_headers=headers)
    problem = result.get("bozo_exception") if result.get("bozo") else None
    if not result.get("version"):
        if _looks_like_html(data, content_type):
            raise FeedError("not_a_feed", "the address returned an HTML page, not an RSS or Atom feed")
        if problem is not None:
            raise FeedError("malformed", f"the feed is not well-formed XML: {problem}")
        raise FeedError("not_a_feed", "the document is neither RSS nor Atom")
    if problem is not None and not result.entries:
        raise FeedError("malformed", f"the feed is not well-formed XML and has no readable entry: {problem}")
    warnings = []
    if problem is not None and not isinstance(problem, feedparser.CharacterEncodingOverride):
        warnings.append(f"the feed is not well-formed XML ({problem}); its entries were read leniently")
    feed = result.feed
    feed_language = primary_language(feed.get("language"))
    feed_image = _href(feed.get("image"))
    entries: list[FeedEntry] = []
    skipped: list[SkippedEntry] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(result.entries):
        entry = _entry(raw, feed_language=feed_language, feed_image=feed_image)
        if entry is None:
            skipped.append(SkippedEntry(index, None, "the entry has no guid, link, title or content"))
        elif entry.key in seen:
            skipped.append(SkippedEntry(index, entry.key, f"duplicate of entry {seen[entry.key]}"))
        else:
            seen[entry.key] = index
            entries.append(entry)
    return ParsedFeed(
        title=_text(feed.get("title")),
        link=_text(feed.get("link")),
        language=feed_language,
        ttl_minutes=feed_ttl(feed),
        image=feed_image,
        version=result.version,
        entries=tuple(entries),
        skipped=tuple(skipped),
        warnings=tuple(warnings),
    )


def feed_ttl(feed: Mapping[str, Any]) -> int | None:
    """RSS `<ttl>`: minutes a reader may cache the feed; None when absent or not a positive integer."""
    try:
        minutes = int(str(feed.get("ttl", "")).strip())
    except ValueError:
        return None
    return minutes if minutes > 0 else None


def dedupe_key(*, guid: str | None, link: str | None, title: str | None, content: str | None) -> str:
    """`guid:<guid>`, else `link:<link>`, else `hash:<sha256 of title and content>`: unique within a
    source. A key longer than `MAX_KEY_LENGTH` keeps its prefix and becomes a hash."""
    if guid and guid.strip():
        key = f"guid:{guid.strip()}"
    elif link and link.strip():
        key = f"link:{link.strip()}"
    else:
        return "hash:" + _sha256(f"{title or ''}\x1f{content or ''}")
    if len(key) > MAX_KEY_LENGTH:
        prefix, _, value = key.partition(":")
        return f"{prefix}:sha256:{_sha256(value)}"
    return key


def entry_language(declared: str | None, text: str) -> str | None:
    """The entry's language: what it (or its feed) declares, unless the text's script says otherwise
    (Arabic letters under `en`, only Latin ones under `ar`); detected from the script when nothing
    is declared."""
    detected = script_language(text)
    if declared is None or detected is None:
        return declared or detected
    if (declared == "ar") != (detected == "ar"):
        return detected
    return declared


def parse_duration(value: str | None) -> int | None:
    """Seconds of an `<itunes:duration>`: `HH:MM:SS`, `MM:SS` or plain seconds; None when unreadable."""
    if not value or not value.strip():
        return None
    try:
        seconds = 0.0
        for part in value.strip().split(":"):
            seconds = seconds * 60 + float(part)
    except ValueError:
        return None
    return round(seconds) if seconds >= 0 and len(value.split(":")) <= 3 else None


def media_kind(mime_type: str | None, url: str) -> str | None:
    """audio, video or image from the declared type (or, when it says nothing, the URL's extension);
    None for anything else."""
    declared = (mime_type or "").split(";")[0].strip().lower()
    if not declared or declared in ("application/octet-stream", "binary/octet-stream"):
        declared = mimetypes.guess_type(url.split("?")[0])[0] or ""
    major = declared.split("/")[0]
    return major if major in MEDIA_KINDS else None


def _entry(raw: Mapping[str, Any], *, feed_language: str | None, feed_image: str | None) -> FeedEntry | None:
    guid = _text(raw.get("id"))
    link = _text(raw.get("link"))
    title = _text(raw.get("title"))
    summary = _text(raw.get("summary"))
    contents = raw.get("content") or []
    content = _text(contents[0].get("value")) if contents else None
    if not (guid or link or title or summary or content):
        return None
    declared = primary_language(
        raw.get("language")
        or _detail_language(raw.get("title_detail"))
        or next((_detail_language(c) for c in contents if _detail_language(c)), None)
        or _detail_language(raw.get("summary_detail"))
    )
    plain = " ".join(_TAG.sub(" ", part) for part in (title, summary or content) if part)
    enclosures, problems = _enclosures(raw)
    # Read past FeedParserDict's deprecated fallback from `updated_parsed` to `published_parsed`.
    updated = _datetime(dict.get(raw, "updated_parsed"))  # type: ignore[arg-type]
    return FeedEntry(
        key=dedupe_key(guid=guid, link=link, title=title, content=content or summary),
        guid=guid,
        link=link,
        title=title,
        summary=summary,
        content=content,
        published=_datetime(raw.get("published_parsed")) or updated,
        updated=updated,
        language=entry_language(declared or feed_language, plain),
        enclosures=enclosures,
        podcast=_podcast(raw, feed_image),
        problems=problems,
    )


def _enclosures(raw: Mapping[str, Any]) -> tuple[tuple[Enclosure, ...], tuple[str, ...]]:
    found: dict[str, Enclosure] = {}
    problems: list[str] = []
    for url, mime_type, length in _attachments(raw):
        if not url or url in found:
            continue
        if not url.lower().startswith(("http://", "https://")):
            problems.append(f"enclosure {url!r} is not an http(s) URL: not downloaded")
            continue
        kind = media_kind(mime_type, url)
        if kind is None:
            problems.append(
                f"enclosure {url} ({mime_type or 'no type'}) is not audio, video or an image: not downloaded"
            )
            continue
        found[url] = Enclosure(url, mime_type, _length(length), kind)
    return tuple(found.values()), tuple(problems)


def _attachments(raw: Mapping[str, Any]) -> Iterable[tuple[str | None, str | None, Any]]:
    """(url, type, length) of the RSS/Atom enclosures, then of the Media RSS `media:content`."""
    for enclosure in raw.get("enclosures") or []:
        yield _text(enclosure.get("href")), _text(enclosure.get("type")), enclosure.get("length")
    for media in raw.get("media_content") or []:
        yield _text(media.get("url")), _text(media.get("type")), media.get("filesize")


def _podcast(raw: Mapping[str, Any], feed_image: str | None) -> PodcastFields | None:
    fields = PodcastFields(
        episode=_first_number(raw.get("itunes_episode"), raw.get("podcast_episode")),
        season=_first_number(raw.get("itunes_season"), raw.get("podcast_season")),
        duration_seconds=parse_duration(_text(raw.get("itunes_duration"))),
        explicit=raw.get("itunes_explicit") if isinstance(raw.get("itunes_explicit"), bool) else None,
        image=_href(raw.get("image")),
        episode_type=_text(raw.get("itunes_episodetype")),
    )
    if fields == PodcastFields(None, None, None, None, None, None):
        return None
    return fields if fields.image else _with_image(fields, feed_image)


def _with_image(fields: PodcastFields, image: str | None) -> PodcastFields:
    return PodcastFields(
        fields.episode, fields.season, fields.duration_seconds, fields.explicit, image, fields.episode_type
    )


# --- small readers -------------------------------------------------------------------------------


def _explicit_word(match: re.Match[bytes]) -> bytes:
    word = b"yes" if match.group(2).lower() in (b"yes", b"true", b"explicit") else b"clean"
    return match.group(1) + word + match.group(3)


def _looks_like_html(data: bytes, content_type: str | None) -> bool:
    declared = (content_type or "").split(";")[0].strip().lower()
    return declared in ("text/html", "application/xhtml+xml") or bool(_HTML_START.match(data[:4096]))


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _href(value: Any) -> str | None:
    return _text(value.get("href")) if isinstance(value, Mapping) else None


def _detail_language(detail: Any) -> str | None:
    return _text(detail.get("language")) if isinstance(detail, Mapping) else None


def _datetime(value: time.struct_time | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        return dt.datetime(*value[:6], tzinfo=dt.UTC)
    except (TypeError, ValueError):
        return None


def _number(value: Any) -> int | None:
    """A whole, non-negative number (`3`, `3.0`); None otherwise (Podcasting 2.0 allows `1.5`)."""
    try:
        number = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() and number >= 0 else None


def _first_number(*values: Any) -> int | None:
    return next((n for n in map(_number, values) if n is not None), None)


def _length(value: Any) -> int | None:
    try:
        length = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return length if length >= 0 else None


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
