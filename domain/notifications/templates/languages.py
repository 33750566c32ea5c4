"""Languages of a message: locale fallback chains, text direction (RTL), and the helpers bound to the
message's language that templates call (Babel, CLDR data): `date`, `datetime`, `number`, `percent`,
`currency` and `t` (a `{"ar": ..., "en": ...}` value in the message's language)."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from datetime import date as date_cls
from datetime import datetime as datetime_cls
from datetime import tzinfo as tzinfo_cls
from decimal import Decimal
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import jinja2
from babel import Locale, UnknownLocaleError
from babel import dates as babel_dates
from babel import numbers as babel_numbers

T = TypeVar("T")

DEFAULT_LANGUAGE = "en"
RTL_LANGUAGES = frozenset({"ar", "fa", "he", "iw", "ur", "ps", "sd", "ug", "yi", "ckb", "dv"})
LANG_KEY = "@language"  # not an identifier: templates cannot read or shadow it


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
class Language:
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
def language_of(language: str, default: str) -> Language:
    tag = _normalise(language or "") or _normalise(default) or DEFAULT_LANGUAGE
    locale = _babel_locale(tag, default)
    return Language(
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
    lang: Language = context.parent[LANG_KEY]  # set by render()
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
    lang: Language = context.parent[LANG_KEY]  # set by render()
    for tag in lang.chain:  # keys are usually spelled like the chain ("ar", "en"): no normalising
        text = value.get(tag)
        if text is not None and text != "":
            return text
    present = {k: v for k, v in value.items() if v is not None and v != ""}
    found = pick(present, lang.tag, lang.chain[-1])
    if found is not None:
        return found[1]
    return next(iter(present.values()), "")


FILTERS = {
    "date": _date_filter,
    "datetime": _datetime_filter,
    "number": _number_filter,
    "percent": _percent_filter,
    "currency": _currency_filter,
    "t": _t_filter,
}
