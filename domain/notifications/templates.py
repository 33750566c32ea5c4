"""Notification templates: Jinja sources from the database rendered per language and channel.

A template has a subject and a plain-text body for every channel and an optional HTML body for email.
Sources are edited by staff and stored as strings, so they run in Jinja's immutable sandbox (no
underscore attributes, no mutating methods of lists and dicts, capped string repetition and powers)
with `StrictUndefined`: a variable the data does not have is an error, never an empty string.
HTML is autoescaped; subject and text are not. Compiled templates are cached by source text.

Helpers bound to the message's language (Babel, CLDR data):

    {{ published_at | date("long") }}          {{ sent_at | datetime("short", tz="Asia/Riyadh") }}
    {{ views | number }}   {{ ratio | percent }}   {{ price | currency("SAR") }}
    {{ content.title | t }}    # {"ar": ..., "en": ...} -> ar-SA, ar, then the default language
    {{ language }} {{ direction }}

Email HTML is wrapped in a small responsive layout carrying `lang` and `dir` (right-to-left for
Arabic, Persian, Hebrew, Urdu and other RTL scripts); an email without an HTML source gets one made
from its text, and an HTML source without text gets its plain-text alternative derived from the HTML.
"""

from __future__ import annotations

import functools
import html as html_lib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from datetime import date as date_cls
from datetime import datetime as datetime_cls
from datetime import tzinfo as tzinfo_cls
from decimal import Decimal
from html.parser import HTMLParser
from types import TracebackType
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import jinja2
from babel import Locale, UnknownLocaleError
from babel import dates as babel_dates
from babel import numbers as babel_numbers
from jinja2 import meta
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from domain.notifications.outgoing import CHANNELS

T = TypeVar("T")

DEFAULT_LANGUAGE = "en"
RTL_LANGUAGES = frozenset({"ar", "fa", "he", "iw", "ur", "ps", "sd", "ug", "yi", "ckb", "dv"})
SMS_MAX_CHARS = 1000
SUBJECT_MAX_CHARS = 300
CACHE_SIZE = 512
MAX_REPEAT = 100_000  # longest string or list `*` may build
MAX_EXPONENT = 1_000
_GLOBALS = frozenset({"language", "direction"})
_LANG_KEY = "@language"  # not an identifier: templates cannot read or shadow it


@dataclass(frozen=True)
class TemplateSource:
    subject: str
    text: str
    html: str | None = None  # email only


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str | None
    language: str
    direction: str  # "rtl" | "ltr"


class TemplateError(ValueError):
    """A template that does not compile or render: `part` is "subject", "text" or "html"."""

    def __init__(self, part: str, message: str, line: int | None = None) -> None:
        super().__init__(part, message, line)
        self.part = part
        self.message = message
        self.line = line

    def __str__(self) -> str:
        where = self.part if self.line is None else f"{self.part}, line {self.line}"
        return f"{where}: {self.message}"


# --- languages ---------------------------------------------------------------------------------


def _normalise(tag: str) -> str:
    """`ar_sa` / `AR-sa` -> `ar-SA`, `zh_hant_tw` -> `zh-Hant-TW`; POSIX suffixes (.UTF-8, @euro) dropped."""
    tag = tag.strip().split(".", 1)[0].split("@", 1)[0]
    parts = [p for p in re.split(r"[-_]", tag) if p]
    if not parts:
        return ""
    out = [parts[0].lower()]
    for part in parts[1:]:
        if len(part) == 2 and part.isalpha():
            out.append(part.upper())
        elif len(part) == 4 and part.isalpha():
            out.append(part.title())
        else:
            out.append(part.lower())
    return "-".join(out)


def locale_chain(locale: str, default: str) -> list[str]:
    """`"ar-SA"` -> `["ar-SA", "ar", default]`: the locale, its shorter forms, then the default."""
    chain: list[str] = []
    seen: set[str] = set()
    tag = _normalise(locale or "")
    parts = tag.split("-") if tag else []
    candidates = ["-".join(parts[:n]) for n in range(len(parts), 0, -1)]
    candidates.append(_normalise(default or ""))
    for candidate in candidates:
        if candidate and candidate.lower() not in seen:
            seen.add(candidate.lower())
            chain.append(candidate)
    return chain


def pick(available: Mapping[str, T], locale: str, default: str) -> tuple[str, T] | None:
    """The first language of `locale_chain(locale, default)` that `available` has, as
    `(key as spelled in available, value)`; keys compare case-insensitively (`ar_sa` == `ar-SA`)."""
    keys: dict[str, str] = {}
    for key in available:
        keys.setdefault(_normalise(str(key)).lower(), key)
    for language in locale_chain(locale, default):
        key = keys.get(language.lower())
        if key is not None:
            return key, available[key]
    return None


def text_direction(language: str) -> str:
    """`"rtl"` for Arabic, Persian, Hebrew, Urdu and the other right-to-left languages, else `"ltr"`."""
    base = _normalise(language or "").split("-", 1)[0]
    return "rtl" if base in RTL_LANGUAGES else "ltr"


@dataclass(frozen=True)
class _Language:
    tag: str
    direction: str
    locale: Locale
    locale_key: str
    chain: tuple[str, ...]


def _babel_locale(tag: str, default: str) -> Locale:
    for candidate in (tag, tag.split("-", 1)[0], _normalise(default), DEFAULT_LANGUAGE):
        if not candidate:
            continue
        try:
            return Locale.parse(candidate.replace("-", "_"))
        except (UnknownLocaleError, ValueError, TypeError):
            continue
    return Locale.parse(DEFAULT_LANGUAGE)


@functools.lru_cache(maxsize=256)
def _language(language: str, default: str) -> _Language:
    tag = _normalise(language or "") or _normalise(default) or DEFAULT_LANGUAGE
    locale = _babel_locale(tag, default)
    return _Language(
        tag=tag,
        direction=text_direction(tag),
        locale=locale,
        locale_key=str(locale),
        chain=tuple(locale_chain(tag, default)),
    )


# --- helpers available in templates ----------------------------------------------------------------


def _as_datetime(value: Any) -> datetime_cls | date_cls:
    if isinstance(value, date_cls):  # datetime is a date too
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            if len(text) == 10:
                return date_cls.fromisoformat(text)
            return datetime_cls.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not an ISO date or date-time: {value!r}") from None
    raise TypeError(f"expected a date, a datetime or an ISO string, got {type(value).__name__}")


def _zone(tz: str | tzinfo_cls | None) -> tzinfo_cls | None:
    if tz is None or isinstance(tz, tzinfo_cls):
        return tz
    try:
        return ZoneInfo(tz)
    except (ValueError, KeyError, OSError):  # ZoneInfoNotFoundError is a KeyError
        raise ValueError(f"unknown time zone {tz!r}") from None


# Babel's formatters take 10-50 us a call, more than the rest of a render; a broadcast formats the
# same dates and counts for every recipient, so results are kept per (filter, locale, arguments, value)
# in a bounded table, emptied when full. Floats, decimals and datetimes are keyed by type and repr, so
# that equal values that print differently (-0.0 and 0.0, one instant in two zones) stay apart; other
# types (subclasses included) are formatted every time.
_FORMATTED: dict[tuple[Any, ...], str] = {}
_FORMATTED_MAX = 8192
_BY_VALUE = frozenset({int, str, date_cls})
_BY_REPR = frozenset({float, Decimal, datetime_cls})


def _memo(context: jinja2.runtime.Context, name: str, value: Any, args: tuple[Any, ...]) -> str:
    lang: _Language = context.parent[_LANG_KEY]  # set by render()
    kind = type(value)
    if kind in _BY_VALUE:
        key: tuple[Any, ...] | None = (name, lang.locale_key, args, kind, value)
    elif kind in _BY_REPR:
        key = (name, lang.locale_key, args, kind, repr(value))
    else:
        key = None
    if key is not None:
        found = _FORMATTED.get(key)
        if found is not None:
            return found
    result = _FORMATTERS[name](value, lang.locale, *args)
    if key is not None:
        if len(_FORMATTED) >= _FORMATTED_MAX:
            _FORMATTED.clear()
        _FORMATTED[key] = result
    return result


def _format_date(value: Any, locale: Locale, format: str, tz: str | None) -> str:
    moment = _as_datetime(value)
    zone = _zone(tz)
    if zone is not None and isinstance(moment, datetime_cls):
        moment = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(zone)
    day = moment.date() if isinstance(moment, datetime_cls) else moment
    return babel_dates.format_date(day, format, locale=locale)


def _format_datetime(value: Any, locale: Locale, format: str, tz: str | None) -> str:
    moment = _as_datetime(value)
    if not isinstance(moment, datetime_cls):
        moment = datetime_cls(moment.year, moment.month, moment.day)
    return babel_dates.format_datetime(moment, format, tzinfo=_zone(tz), locale=locale)


def _format_number(value: Any, locale: Locale, format: str | None) -> str:
    return babel_numbers.format_decimal(value, format, locale=locale)


def _format_percent(value: Any, locale: Locale, format: str | None) -> str:
    return babel_numbers.format_percent(value, format, locale=locale)


def _format_currency(value: Any, locale: Locale, code: str, format: str | None) -> str:
    return babel_numbers.format_currency(value, code, format, locale=locale)


_FORMATTERS = {
    "date": _format_date,
    "datetime": _format_datetime,
    "number": _format_number,
    "percent": _format_percent,
    "currency": _format_currency,
}


@jinja2.pass_context
def _date_filter(
    context: jinja2.runtime.Context, value: Any, format: str = "medium", tz: str | None = None
) -> str:
    """A date in the message's language: format short|medium|long|full or a CLDR pattern; `tz`
    converts a datetime first (naive ones are UTC)."""
    return _memo(context, "date", value, (format, tz))


@jinja2.pass_context
def _datetime_filter(
    context: jinja2.runtime.Context, value: Any, format: str = "medium", tz: str | None = None
) -> str:
    return _memo(context, "datetime", value, (format, tz))


@jinja2.pass_context
def _number_filter(context: jinja2.runtime.Context, value: Any, format: str | None = None) -> str:
    return _memo(context, "number", value, (format,))


@jinja2.pass_context
def _percent_filter(context: jinja2.runtime.Context, value: Any, format: str | None = None) -> str:
    return _memo(context, "percent", value, (format,))


@jinja2.pass_context
def _currency_filter(
    context: jinja2.runtime.Context, value: Any, code: str, format: str | None = None
) -> str:
    return _memo(context, "currency", value, (code, format))


@jinja2.pass_context
def _t_filter(context: jinja2.runtime.Context, value: Any) -> Any:
    """A multilingual `{"ar": ..., "en": ...}` -> the text in the message's language, following the
    locale chain; when no language of the chain has a text, any non-empty text."""
    if type(value) is not dict and not isinstance(value, Mapping):
        return value  # a plain string, or an Undefined that fails when printed
    lang: _Language = context.parent[_LANG_KEY]  # set by render()
    for tag in lang.chain:  # keys are usually spelled like the chain ("ar", "en"): no normalising
        text = value.get(tag)
        if text is not None and text != "":
            return text
    present = {k: v for k, v in value.items() if v is not None and v != ""}
    found = pick(present, lang.tag, lang.chain[-1])
    if found is not None:
        return found[1]
    return next(iter(present.values()), "")


_FILTERS = {
    "date": _date_filter,
    "datetime": _datetime_filter,
    "number": _number_filter,
    "percent": _percent_filter,
    "currency": _currency_filter,
    "t": _t_filter,
}


# --- environments ------------------------------------------------------------------------------------


_DICT_ATTRIBUTES = frozenset(dir(dict))


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with `*` and `**` bounded so that a template cannot build a huge value."""

    intercepted_binops = frozenset({"*", "**"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        # `item.title` on a dict: the sandbox tries the attribute first and catches AttributeError
        # before reading the key; reading the key straight away (when `dict` has no such attribute,
        # so the answer is the same) saves that exception on every lookup of data.
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                if (
                    isinstance(seq, str | list | tuple)
                    and isinstance(count, int)
                    and len(seq) * count > MAX_REPEAT
                ):
                    raise SecurityError(f"repetition builds more than {MAX_REPEAT:,} items")
        elif operator == "**" and isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
            raise SecurityError(f"exponent larger than {MAX_EXPONENT:,}")
        return super().call_binop(context, operator, left, right)


def _environment(autoescape: bool) -> _Sandbox:
    env = _Sandbox(
        undefined=jinja2.StrictUndefined,
        autoescape=autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=lambda value: "" if value is None else value,
        cache_size=0,  # no loader; compiled templates are cached below by source text
        auto_reload=False,
    )
    env.filters.update(_FILTERS)
    return env


_ENVIRONMENTS = {"text": _environment(autoescape=False), "html": _environment(autoescape=True)}


def _kind(part: str) -> str:
    return "html" if part == "html" else "text"


@functools.lru_cache(maxsize=CACHE_SIZE)
def _compiled(kind: str, source: str) -> jinja2.Template:
    return _ENVIRONMENTS[kind].from_string(source)


def _template_line(tb: TracebackType | None) -> int | None:
    """The template line of the innermost template frame of a render error (Jinja rewrites
    tracebacks so that template frames carry the template's own line numbers)."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _compile(part: str, source: str) -> jinja2.Template:
    try:
        return _compiled(_kind(part), source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(part, exc.message or "syntax error", exc.lineno) from exc


def _render_part(part: str, source: str, context: dict[str, Any]) -> str:
    template = _compile(part, source)
    try:
        return template.render(context)
    except TemplateError:
        raise
    except Exception as exc:  # any failure of a staff-written template is that template's error
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        raise TemplateError(part, message, _template_line(exc.__traceback__)) from exc


# --- email layout and plain text --------------------------------------------------------------------

_FONTS = {
    "rtl": "Tahoma,'Segoe UI',Arial,sans-serif",
    "ltr": "-apple-system,'Segoe UI',Helvetica,Arial,sans-serif",
}
_LAYOUT = """<!doctype html>
<html lang="{lang}" dir="{dir}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="x-apple-disable-message-reformatting">
<title>{title}</title>
</head>
<body dir="{dir}" style="margin:0;padding:0;background:#f4f4f4;direction:{dir};text-align:{align};">
<div lang="{lang}" dir="{dir}" style="max-width:600px;margin:0 auto;padding:24px 16px;background:#ffffff;\
color:#1a1a1a;font-family:{fonts};font-size:16px;line-height:1.6;direction:{dir};text-align:{align};">
{body}
</div>
</body>
</html>
"""


def _is_document(markup: str) -> bool:
    head = markup.lstrip()[:9].lower()
    return head.startswith("<!doctype") or head.startswith("<html")


def _layout(body: str, *, subject: str, language: _Language) -> str:
    if _is_document(body):
        return body
    direction = language.direction
    return _LAYOUT.format(
        lang=html_lib.escape(language.tag),
        dir=direction,
        align="right" if direction == "rtl" else "left",
        fonts=_FONTS[direction],
        title=html_lib.escape(subject),
        body=body.strip(),
    )


_URL = re.compile(r"https?://[^\s<>\"']+")
_PARAGRAPHS = re.compile(r"\n[ \t]*\n+")


def _linkify(escaped: str) -> str:
    def link(match: re.Match[str]) -> str:
        url = match.group(0)
        trail = ""
        while url and url[-1] in ".,;:!?)]":
            url, trail = url[:-1], url[-1] + trail
        return f'<a href="{url}">{url}</a>{trail}'

    return _URL.sub(link, escaped)


def text_to_html(text: str) -> str:
    """Plain text -> escaped HTML paragraphs (blank lines split paragraphs, newlines become <br>)."""
    paragraphs = [p.strip() for p in _PARAGRAPHS.split(text.replace("\r\n", "\n")) if p.strip()]
    return "\n".join(
        '<p style="margin:0 0 16px;">' + _linkify(html_lib.escape(p)).replace("\n", "<br>\n") + "</p>"
        for p in paragraphs
    )


_SKIP = frozenset({"script", "style", "head", "title", "template"})
_PARAGRAPH_TAGS = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "table", "blockquote", "hr", "pre", "dl"}
)
_LINE_TAGS = frozenset({"div", "tr", "li", "section", "article", "header", "footer", "dt", "dd", "address"})


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skipping = 0
        self.links: list[tuple[str, int]] = []  # (href, index in out where the anchor's text starts)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skipping += 1
        elif tag == "br":
            self.out.append("\n")
        elif tag in _PARAGRAPH_TAGS:
            self.out.append("\n\n")
        elif tag == "li":
            self.out.append("\n- ")
        elif tag in _LINE_TAGS:
            self.out.append("\n")
        elif tag in ("td", "th"):
            self.out.append(" ")
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt:
                self.out.append(alt)
        elif tag == "a":
            self.links.append((dict(attrs).get("href") or "", len(self.out)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "a":
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in _PARAGRAPH_TAGS:
            self.out.append("\n\n")
        elif tag in _LINE_TAGS and tag != "li":  # the next item starts its own line
            self.out.append("\n")
        elif tag == "a" and self.links:
            href, start = self.links.pop()
            href = href.strip()
            if not href or href.startswith("#") or href.lower().startswith("javascript:"):
                return
            shown = href.split(":", 1)[1] if href.lower().startswith(("mailto:", "tel:")) else href
            label = " ".join("".join(self.out[start:]).split())
            if not label:
                self.out.append(shown)
            elif shown not in label:
                self.out.append(f" ({shown})")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.out.append(re.sub(r"\s+", " ", data))


def html_to_text(markup: str) -> str:
    """HTML -> readable plain text: tags stripped, links kept as "text (url)", blank lines collapsed."""
    parser = _TextExtractor()
    parser.feed(markup)
    parser.close()
    lines = [line.strip() for line in "".join(parser.out).splitlines()]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


# --- rendering ---------------------------------------------------------------------------------------


def _check_channel(channel: str) -> None:
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}; expected one of {', '.join(CHANNELS)}")


def _has(source: str | None) -> bool:
    return bool(source and source.strip())


def render(
    source: TemplateSource,
    data: Mapping[str, Any],
    *,
    language: str,
    channel: str,
    default_language: str = DEFAULT_LANGUAGE,
) -> Rendered:
    """Render a template for one recipient. `language` and `direction` in the template are the
    message's (they win over keys of the same name in `data`); `default_language` ends the locale
    chain of the `t` filter. Raises `TemplateError` naming the part (and line) that failed."""
    _check_channel(channel)
    lang = _language(language, default_language)
    context = {**data, "language": lang.tag, "direction": lang.direction, _LANG_KEY: lang}
    subject = " ".join(_render_part("subject", source.subject, context).split())
    text = _render_part("text", source.text, context).strip() if _has(source.text) else ""
    body = None
    if _has(source.html) and (channel == "email" or not text):
        body = _render_part("html", source.html or "", context)
        if not text:
            text = html_to_text(body)
    html = None
    if channel == "email":
        html = _layout(body if body is not None else text_to_html(text), subject=subject, language=lang)
    return Rendered(subject=subject, text=text, html=html, language=lang.tag, direction=lang.direction)


def validate(
    source: TemplateSource,
    *,
    language: str,
    channel: str,
    sample: Mapping[str, Any],
    default_language: str = DEFAULT_LANGUAGE,
) -> Rendered:
    """Compile every part, render with `sample`, and refuse a subject over 300 characters or an SMS
    over 1,000; returns the rendering (the preview). Raises `TemplateError`."""
    _check_channel(channel)
    for part in ("subject", "text", "html"):
        text = getattr(source, part)
        if text is not None:
            _compile(part, text)
    rendered = render(source, sample, language=language, channel=channel, default_language=default_language)
    if len(rendered.subject) > SUBJECT_MAX_CHARS:
        raise TemplateError(
            "subject",
            f"{len(rendered.subject):,} characters after rendering; the limit is {SUBJECT_MAX_CHARS:,}",
        )
    if channel == "sms" and len(rendered.text) > SMS_MAX_CHARS:
        raise TemplateError(
            "text",
            f"SMS is {len(rendered.text):,} characters after rendering; the limit is {SMS_MAX_CHARS:,}",
        )
    return rendered


def variables(source: TemplateSource) -> set[str]:
    """Top-level variables the template reads from its data (`language` and `direction` excluded)."""
    names: set[str] = set()
    for part in ("subject", "text", "html"):
        text = getattr(source, part)
        if text is None:
            continue
        try:
            ast = _ENVIRONMENTS[_kind(part)].parse(text)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(part, exc.message or "syntax error", exc.lineno) from exc
        names |= meta.find_undeclared_variables(ast)
    return names - _GLOBALS
