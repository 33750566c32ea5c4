"""Notification templates: Jinja sources from the database rendered per language and channel.

A template has a subject and a plain-text body for every channel and an optional HTML body for email.
Sources are edited by staff and stored as strings, so they run in Jinja's immutable sandbox (no
underscore attributes, no mutating methods of lists and dicts, capped string repetition and powers)
with `StrictUndefined`: a variable the data does not have is an error, never an empty string.
HTML is autoescaped; subject and text are not. Compiled templates are cached by source text.

A render is also bounded in time and size, so that no template (nested loops, recursive macros, text
doubled step by step) holds a process: one message renders within `RENDER_SECONDS` (checked on every
loop iteration, call, operator, filter and piece of output, so it stops a runaway render from inside),
each part of it and each block or value built on the way holds at most `MAX_OUTPUT_CHARS` characters,
all the text built during one render at most `MAX_BUILT_CHARS`, and an operation asking for more than
that (a width of 10**9, `replace("", ...)` on long text, a join of many long strings, a huge integer)
is refused before it allocates. Running out is a `TemplateError` naming the limit. The API renders in a
worker thread (previews, saves), so the event loop keeps serving meanwhile; the delivery jobs get the
same limits from `render`.

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
import itertools
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
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
from jinja2 import meta, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.runtime import LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from markupsafe import Markup

from domain.notifications.outgoing import CHANNELS

T = TypeVar("T")

DEFAULT_LANGUAGE = "en"
RTL_LANGUAGES = frozenset({"ar", "fa", "he", "iw", "ur", "ps", "sd", "ug", "yi", "ckb", "dv"})
SMS_MAX_CHARS = 1000
SUBJECT_MAX_CHARS = 300
CACHE_SIZE = 512
MAX_REPEAT = 100_000  # longest string or list `*` may build
MAX_EXPONENT = 1_000
RENDER_SECONDS = 2.0  # wall-clock time one message (all its parts) may take to render
MAX_OUTPUT_CHARS = 1_000_000  # longest part, block of captured text or single value a render may build
MAX_BUILT_CHARS = 20_000_000  # all the text (and list items) one render may build, counted as it is built
MAX_INT_BITS = 100_000  # largest integer `*` and `**` may make (about 30,000 digits)
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


# --- limits ------------------------------------------------------------------------------------------


class RenderLimitError(SecurityError):
    """A render that ran out of time or would build too much text."""


class _Budget:
    """What one render may still spend: checked by every loop iteration, call, operator, filter and
    piece of output (the clock every 32 of those, each well under a millisecond)."""

    __slots__ = ("built", "deadline", "seconds", "ticks")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.ticks = 0
        self.built = 0

    def tick(self) -> None:
        self.ticks += 1
        if not self.ticks & 31 and time.monotonic() > self.deadline:
            raise RenderLimitError(
                f"rendering took longer than {self.seconds:g} s, the limit (loops over large data, "
                "nested loops or recursion?)"
            )

    def build(self, value: Any) -> Any:
        if isinstance(value, str | list | tuple):
            size = len(value)
            _check_size(size)
            self.built += size
            if self.built > MAX_BUILT_CHARS:
                raise RenderLimitError(
                    f"the template builds more than {MAX_BUILT_CHARS:,} characters of text in all, the limit"
                )
        return value


_BUDGET: ContextVar[_Budget | None] = ContextVar("template_render_budget", default=None)
_SHARED_DEADLINE: ContextVar[tuple[float, float] | None] = ContextVar(
    "template_shared_deadline", default=None
)


@contextmanager
def shared_time_limit(seconds: float) -> Iterator[None]:
    """Every render inside shares one deadline, `seconds` from now (besides each render's own
    `RENDER_SECONDS`): for work that renders many messages where it must not stall for long, such as
    an API request sending to many recipients on the event loop."""
    token = _SHARED_DEADLINE.set((time.monotonic() + seconds, seconds))
    try:
        yield
    finally:
        _SHARED_DEADLINE.reset(token)


def _check_size(size: int) -> None:
    if size > MAX_OUTPUT_CHARS:
        raise RenderLimitError(f"a text of {size:,} characters or items; the limit is {MAX_OUTPUT_CHARS:,}")


def _sized(value: Any) -> Any:
    """`value`, counted against the running render's budget (or only size-checked outside a render)."""
    budget = _BUDGET.get()
    if budget is not None:
        return budget.build(value)
    if isinstance(value, str | list | tuple):
        _check_size(len(value))
    return value


def _check_count(value: Any, limit: int = MAX_OUTPUT_CHARS) -> None:
    """Refuse a width, count or repetition (an int argument) over `limit` before anything is built."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > limit:
        raise RenderLimitError(f"a width or count of {value:,} is larger than the {limit:,} limit")


def _check_counts(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, tuple | list):
            for item in value:
                _check_count(item)
        else:
            _check_count(value)


_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")
_BRACE_SPEC = re.compile(r"\{[^{}]*:([^{}]*)\}")
_NESTED_SPEC = re.compile(r"\{[^{}]*:[^{}]*\{")
_DIGITS = re.compile(r"\d+")


def _check_format(text: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """Widths and precisions of a %- or {}-format string: written into it (`%999999999s`,
    `{:>999999999}`) or taken from the arguments (`%*d`, `{:>{}}`), whose numbers are then checked."""
    for value in (*args, *kwargs.values()):
        _check_printable(value)  # "%s" % a_list prints the whole list
    from_args = False
    if "%" in text:
        for match in _PERCENT_SPEC.finditer(text):
            for number in match.groups():
                if number == "*":
                    from_args = True
                elif number:
                    _check_count(int(number))
    if "{" in text:
        for spec in _BRACE_SPEC.findall(text):
            for number in _DIGITS.findall(spec):
                _check_count(int(number))
        from_args = from_args or _NESTED_SPEC.search(text) is not None
    if from_args:
        _check_counts(args, kwargs)
        for value in (*args, *kwargs.values()):
            if isinstance(value, Mapping):
                _check_counts((), value)


def _check_result(size: int) -> None:
    if size > MAX_OUTPUT_CHARS:
        raise RenderLimitError(f"the result would be {size:,} characters; the limit is {MAX_OUTPUT_CHARS:,}")


def _text_len(value: Any) -> int:
    return len(value) if isinstance(value, str) else 12


def _rough_size(value: Any, limit: int = MAX_OUTPUT_CHARS) -> int:
    """About how many characters `value` takes printed (str(), JSON): stops counting past `limit`."""
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item) + 2
        elif isinstance(item, Mapping):
            total += 2 + 4 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            total += 2 + 2 * len(item)
            stack.extend(item)
        else:
            total += 12
        if total > limit:
            break
    return total


def _check_printable(value: Any) -> None:
    if isinstance(value, Mapping | list | tuple | set | frozenset):
        size = _rough_size(value)
        if size > MAX_OUTPUT_CHARS:
            raise RenderLimitError(
                f"printing this value makes more than {MAX_OUTPUT_CHARS:,} characters, the limit"
            )


def _replace_size(text: str, old: str, new: str, count: int = -1) -> int:
    found = len(text) + 1 if old == "" else text.count(old)
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * (len(new) - len(old))


def _join_size(items: list[Any], separator: str) -> int:
    return sum(_text_len(item) for item in items) + len(separator) * max(len(items) - 1, 0)


# Checks run before a filter or method that could build far more than its input: each gets the
# arguments the filter gets (after the context) and returns the value to work on.
def _pre_center(value: Any, width: Any = 80, *args: Any, **kwargs: Any) -> Any:
    _check_count(width)
    return value


def _pre_indent(value: Any, width: Any = 4, *args: Any, **kwargs: Any) -> Any:
    width = kwargs.get("width", width)
    _check_count(width)
    step = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    text = str(value) if not isinstance(value, str) else value
    _check_result(len(text) + (text.count("\n") + 1) * max(step, 0))
    return value


def _pre_replace(value: Any, old: Any = "", new: Any = "", count: Any = None, *args: Any, **kw: Any) -> Any:
    if isinstance(value, str) and isinstance(old, str) and isinstance(new, str):
        _check_result(_replace_size(value, old, new, count if isinstance(count, int) else -1))
    return value


def _pre_format(value: Any, *args: Any, **kwargs: Any) -> Any:
    if isinstance(value, str):
        _check_format(value, args, kwargs)
    return value


def _pre_join(value: Any, d: Any = "", attribute: Any = None, *args: Any, **kwargs: Any) -> Any:
    items = value if isinstance(value, list | tuple) else list(value)
    separator = kwargs.get("d", d)
    if attribute is None and "attribute" not in kwargs:
        _check_result(_join_size(items, separator if isinstance(separator, str) else ""))
    return items


def _pre_wordwrap(value: Any, width: Any = 79, *args: Any, **kwargs: Any) -> Any:
    wrapstring = kwargs.get("wrapstring", args[1] if len(args) > 1 else None) or "\n"
    if isinstance(value, str) and isinstance(width, int) and isinstance(wrapstring, str):
        _check_result(len(value) + (len(value) // max(width, 1) + 1) * len(wrapstring))
    return value


def _pre_batch(value: Any, count: Any = 1, *args: Any, **kwargs: Any) -> Any:
    _check_count(count, MAX_REPEAT)
    return value


def _pre_printable(value: Any, *args: Any, **kwargs: Any) -> Any:
    _check_printable(value)
    return value


def _pre_sum(value: Any, attribute: Any = None, start: Any = 0, *args: Any, **kwargs: Any) -> Any:
    start = kwargs.get("start", start)
    if not isinstance(start, int | float | Decimal):
        raise RenderLimitError("sum adds numbers only (start must be a number)")
    return value


_FILTER_CHECKS = {
    "center": _pre_center,
    "indent": _pre_indent,
    "replace": _pre_replace,
    "format": _pre_format,
    "join": _pre_join,
    "wordwrap": _pre_wordwrap,
    "batch": _pre_batch,
    "slice": _pre_batch,
    "sum": _pre_sum,
    "tojson": _pre_printable,
    "pprint": _pre_printable,
    "string": _pre_printable,
    "urlencode": _pre_printable,
    "xmlattr": _pre_printable,
}


# Filters that turn their input into text first: a list or mapping given to them is printed whole.
_TEXT_FILTERS = frozenset(
    {"capitalize", "center", "e", "escape", "forceescape", "indent", "lower", "replace", "safe",
     "striptags", "title", "trim", "truncate", "upper", "urlize", "wordcount", "wordwrap"}
)  # fmt: skip


# Filters that make a number, pick a value, or format one value in CLDR's short forms: none builds
# more than a few characters from what it is given, so they run without the guard's bookkeeping
# (the loops around them still count).
_UNGUARDED_FILTERS = frozenset(
    {*_FILTERS, "abs", "attr", "count", "d", "default", "first", "float", "int", "last", "length",
     "max", "min", "random", "round"}
)  # fmt: skip


def _guard_filter(name: str, func: Any) -> Any:
    """`func` counted against the render's budget, its result sized, its arguments checked first."""
    check = _FILTER_CHECKS.get(name)
    printed = name in _TEXT_FILTERS
    skip = 0 if getattr(func, "jinja_pass_arg", None) is None else 1  # context / eval context / env

    @functools.wraps(func)  # keeps `jinja_pass_arg`
    def guarded(*args: Any, **kwargs: Any) -> Any:
        budget = _BUDGET.get()
        if budget is not None:
            budget.tick()
        if len(args) > skip:
            if printed:
                _check_printable(args[skip])
            if check is not None:
                value = check(*args[skip:], **kwargs)
                args = (*args[:skip], value, *args[skip + 1 :])
        return _sized(func(*args, **kwargs))

    return guarded


def _check_method(method: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[Any, ...]:
    """The checks of the str methods that could build far more than their input; the arguments to
    call it with (an iterable to join, materialized to be measured)."""
    target = getattr(method, "__wrapped__", method)  # str.format comes wrapped by the sandbox
    owner = getattr(target, "__self__", None)
    if not isinstance(owner, str):
        return args
    name = getattr(target, "__name__", "")
    if name in ("center", "ljust", "rjust", "zfill"):
        _check_counts(args[:1], {})
    elif name == "expandtabs":
        size = args[0] if args else kwargs.get("tabsize", 8)
        _check_count(size)
        if isinstance(size, int):
            _check_result(len(owner) + owner.count("\t") * max(size, 0))
    elif name == "replace" and len(args) >= 2:
        _pre_replace(owner, *args[:3])
    elif name == "join" and args:
        items = args[0] if isinstance(args[0], list | tuple) else list(args[0])
        _check_result(_join_size(items, owner))
        args = (items, *args[1:])
    elif name in ("format", "format_map"):
        _check_format(owner, args, kwargs)
    elif name == "translate":
        raise RenderLimitError("str.translate is not available in templates")
    return args


def _check_int_product(left: int, right: int) -> None:
    if left.bit_length() + right.bit_length() > MAX_INT_BITS:
        raise RenderLimitError(f"an integer larger than {MAX_INT_BITS:,} bits")


def _ticking(iterable: Any, budget: _Budget) -> Any:
    for item in iterable:
        budget.tick()
        yield item


class _Buffer(list):
    """The text a block captures (`{% set %}...{% endset %}`, macros, call and filter blocks), counted
    as it is appended."""

    __slots__ = ("budget", "size")

    def __init__(self, budget: _Budget | None) -> None:
        super().__init__()
        self.budget = budget
        self.size = 0

    def append(self, item: Any) -> None:
        self._add(len(item))
        list.append(self, item)

    def extend(self, items: Any) -> None:
        items = tuple(items)
        self._add(sum(map(len, items)))
        list.extend(self, items)

    def _add(self, size: int) -> None:
        self.size += size
        if self.budget is not None:
            self.budget.tick()
        if self.size > MAX_OUTPUT_CHARS:
            raise RenderLimitError(
                f"a block of the template makes more than {MAX_OUTPUT_CHARS:,} characters, the limit"
            )


class _GuardedCodeGenerator(CodeGenerator):
    """Jinja's code generator, with every `for` loop's items, every `~` and every captured block going
    through the budget (`Environment.code_generator_class` is the documented hook for this)."""

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        node.iter = nodes.Call(
            nodes.EnvironmentAttribute("guard_iter"), [node.iter], [], None, None, lineno=node.lineno
        )
        super().visit_For(node, frame)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        # Jinja's own, with each operand checked before it is printed and the result sized.
        if frame.eval_ctx.volatile:
            join = "(markup_join if context.eval_ctx.volatile else str_join)"
        elif frame.eval_ctx.autoescape:
            join = "markup_join"
        else:
            join = "str_join"
        self.write(f"environment.sized({join}((")
        for arg in node.nodes:
            self.write("environment.printable(")
            self.visit(arg, frame)
            self.write("), ")
        self.write(")))")

    def buffer(self, frame: Frame) -> None:
        frame.buffer = self.temporary_identifier()
        self.writeline(f"{frame.buffer} = environment.output_buffer()")


# --- environments ------------------------------------------------------------------------------------


_DICT_ATTRIBUTES = frozenset(dir(dict))


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with `*`, `**`, `%` and `+` bounded so that a template cannot build a
    huge value, and every loop, call, filter and block counted against the render's budget."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})
    code_generator_class = _GuardedCodeGenerator

    def guard_iter(self, iterable: Any) -> Any:
        budget = _BUDGET.get()
        return iterable if budget is None else _ticking(iterable, budget)

    def sized(self, value: Any) -> Any:
        return _sized(value)

    def printable(self, value: Any) -> Any:
        _check_printable(value)
        return value

    def output_buffer(self) -> _Buffer:
        return _Buffer(_BUDGET.get())

    def concat(self, parts: Any) -> str:  # type: ignore[override]  # joins a captured block
        return _sized("".join(parts))

    def call(__self, __context: jinja2.runtime.Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        budget = _BUDGET.get()
        if budget is not None:
            budget.tick()
            if isinstance(__obj, LoopContext) and args:  # `loop(children)` in a recursive loop
                args = (_ticking(args[0], budget), *args[1:])
        args = _check_method(__obj, args, kwargs)
        return _sized(super().call(__context, __obj, *args, **kwargs))

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
        budget = _BUDGET.get()
        if budget is not None:
            budget.tick()
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                if (
                    isinstance(seq, str | list | tuple)
                    and isinstance(count, int)
                    and len(seq) * count > MAX_REPEAT
                ):
                    raise SecurityError(f"repetition builds more than {MAX_REPEAT:,} items")
            if isinstance(left, int) and isinstance(right, int):
                _check_int_product(left, right)
        elif operator == "**":
            if isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
                raise SecurityError(f"exponent larger than {MAX_EXPONENT:,}")
            if isinstance(left, int) and isinstance(right, int) and left.bit_length() * right > MAX_INT_BITS:
                raise RenderLimitError(f"an integer larger than {MAX_INT_BITS:,} bits")
        elif operator == "%" and isinstance(left, str):
            _check_format(left, right if isinstance(right, tuple) else (right,), {})
        return _sized(super().call_binop(context, operator, left, right))


_SCALARS = frozenset({str, int, float, bool, Decimal, Markup})


def _finalize(value: Any) -> Any:
    """What `{{ ... }}` prints: None as nothing; a list or mapping only if its text fits the limit."""
    if value is None:
        return ""
    if type(value) not in _SCALARS:
        _check_printable(value)
    return value


def _environment(autoescape: bool) -> _Sandbox:
    env = _Sandbox(
        undefined=jinja2.StrictUndefined,
        autoescape=autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_finalize,
        cache_size=0,  # no loader; compiled templates are cached below by source text
        auto_reload=False,
    )
    env.filters.update(_FILTERS)
    env.filters = {
        name: func if name in _UNGUARDED_FILTERS else _guard_filter(name, func)
        for name, func in env.filters.items()
    }
    del env.globals["lipsum"]  # paragraphs of filler by the thousand in one call: not for messages
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


_PIECES = 64  # pieces of output measured at a time (they are references: nothing is joined before)


def _generate(template: jinja2.Template, context: dict[str, Any]) -> str:
    """The template's text, measured as it comes and stopped past `MAX_OUTPUT_CHARS` before it is
    joined (and by the budget's clock)."""
    budget = _BUDGET.get()
    stream = template.generate(context)
    pieces: list[str] = []
    size = 0
    while batch := list(itertools.islice(stream, _PIECES)):
        size += sum(map(len, batch))
        if size > MAX_OUTPUT_CHARS:
            raise RenderLimitError(f"the text is longer than {MAX_OUTPUT_CHARS:,} characters, the limit")
        if budget is not None:
            budget.tick()
        pieces += batch
    return "".join(pieces)


def _render_part(part: str, source: str, context: dict[str, Any]) -> str:
    template = _compile(part, source)
    try:
        return _generate(template, context)
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
    chain of the `t` filter. Raises `TemplateError` naming the part (and line) that failed, or the
    limit (`RENDER_SECONDS`, `MAX_OUTPUT_CHARS`, `MAX_BUILT_CHARS`) the render ran into."""
    _check_channel(channel)
    budget = _Budget(RENDER_SECONDS)
    shared = _SHARED_DEADLINE.get()
    if shared is not None and shared[0] < budget.deadline:
        budget.deadline, budget.seconds = shared[0], shared[1]
        if time.monotonic() > budget.deadline:
            raise TemplateError("subject", f"rendering took longer than {shared[1]:g} s in all, the limit")
    token = _BUDGET.set(budget)
    try:
        return _render(source, data, language, channel, default_language)
    finally:
        _BUDGET.reset(token)


def _render(
    source: TemplateSource, data: Mapping[str, Any], language: str, channel: str, default_language: str
) -> Rendered:
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
