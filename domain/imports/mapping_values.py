"""The value-level pieces of import mapping: paths into a source record (`a.b[0].c`, `tags[*].term`),
type coercions (datetimes from ISO 8601, RFC 822 or epoch; durations from ISO 8601 or `HH:MM:SS`;
tags), text transforms (HTML sanitized to a safe subset with nh3) and Arabic/English detection.

Each coercion raises `ValueError` with a reason a person can act on; the mapping engine turns it into
a per-field error of the record."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import nh3

from domain.content import TAG_MAX, TAGS_MAX
from domain.text import primary_language, script_language


class _Missing:
    """No value at a path (distinct from a present `None`)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
WILDCARD = "*"

# --- paths ----------------------------------------------------------------------------------------

_SEGMENT = re.compile(r"([^.\[\]]+)|\[(-?\d+|\*)\]|(\.)")
Step = str | int  # a key, an index, or WILDCARD ("*", only ever from `[*]`)


def parse_path(path: str) -> tuple[Step, ...]:
    """`snippet.thumbnails.high.url` -> ("snippet", "thumbnails", "high", "url"); `enclosures[0].href`
    -> ("enclosures", 0, "href"); `tags[*].term` -> ("tags", "*", "term"). Raises `ValueError`."""
    if not isinstance(path, str) or not path.strip():
        raise ValueError("a path must be a non-empty string")
    steps: list[Step] = []
    pos, expect_key = 0, True
    while pos < len(path):
        match = _SEGMENT.match(path, pos)
        if match is None:
            raise ValueError(f"bad path {path!r} at character {pos + 1}")
        key, index, dot = match.groups()
        if dot is not None:
            if expect_key:
                raise ValueError(f"bad path {path!r}: empty key at character {pos + 1}")
            expect_key = True
        elif key is not None:
            if not expect_key:
                raise ValueError(f"bad path {path!r}: a key must follow a dot at character {pos + 1}")
            steps.append(key.strip())
            expect_key = False
        else:
            if expect_key and steps:
                raise ValueError(f"bad path {path!r}: an index cannot follow a dot at character {pos + 1}")
            steps.append(WILDCARD if index == "*" else int(index))
            expect_key = False
        pos = match.end()
    if expect_key:
        raise ValueError(f"bad path {path!r}: it ends with a dot")
    return tuple(steps)


def _step(value: Any, step: Step) -> Any:
    if type(step) is int:
        if isinstance(value, Sequence) and not isinstance(value, str | bytes):
            try:
                return value[step]
            except IndexError:
                return MISSING
        return MISSING
    if isinstance(value, Mapping):
        return value.get(step, MISSING)
    return MISSING


def resolve(record: Any, steps: tuple[Step, ...]) -> Any:
    """The value at `steps` in `record`, or MISSING. After a wildcard the result is the list of what
    each element yields (elements without the rest of the path are left out)."""
    value = record
    for i, step in enumerate(steps):
        if step == WILDCARD:
            if not isinstance(value, Sequence) or isinstance(value, str | bytes):
                return MISSING
            rest = steps[i + 1 :]
            out: list[Any] = []
            for element in value:
                found = resolve(element, rest)
                if found is MISSING or found is None:
                    continue
                if isinstance(found, list) and WILDCARD in rest:
                    out.extend(found)
                else:
                    out.append(found)
            return out
        value = _step(value, step)
        if value is MISSING:
            return MISSING
    return value


# --- coercions ------------------------------------------------------------------------------------

_TRUE = frozenset({"true", "yes", "y", "1", "on", "explicit"})
_FALSE = frozenset({"false", "no", "n", "0", "off", "clean", ""})


def _scalar(value: Any, kind: str) -> Any:
    if isinstance(value, Mapping | list | tuple):
        raise ValueError(
            f"expected a single {kind}, got a {'list' if not isinstance(value, Mapping) else 'object'}"
        )
    return value


def to_string(value: Any) -> str:
    value = _scalar(value, "text value")
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def to_int(value: Any) -> int:
    value = _scalar(value, "number")
    if isinstance(value, bool):
        raise ValueError(f"expected a whole number, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip().replace(",", "").replace("_", "")
        try:
            return int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                pass
            else:
                if number.is_integer():
                    return int(number)
    raise ValueError(f"expected a whole number, got {value!r}")


def to_float(value: Any) -> float:
    value = _scalar(value, "number")
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    try:
        number = float(value.strip().replace(",", "") if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number, got {value!r}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"expected a finite number, got {value!r}")
    return number


def to_bool(value: Any) -> bool:
    value = _scalar(value, "yes/no value")
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"expected a yes/no value, got {value!r}")


_EPOCH_MS_ABOVE = 100_000_000_000  # epoch numbers this large are milliseconds (year 5138 in seconds)


def to_datetime(value: Any) -> datetime:
    """An aware UTC datetime from a datetime, a `time.struct_time` (feedparser's `*_parsed`), epoch
    seconds or milliseconds, ISO 8601 or RFC 822 (`Mon, 06 Jan 2025 09:00:00 +0300`) text."""
    if isinstance(value, time.struct_time) or (
        isinstance(value, tuple | list) and len(value) == 9 and all(isinstance(v, int) for v in value)
    ):
        return datetime(*tuple(value)[:6], tzinfo=UTC)
    value = _scalar(value, "date")
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _from_epoch(value)
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"-?\d+(\.\d+)?", text):
            return _from_epoch(float(text))
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            try:
                parsed = parsedate_to_datetime(text)
            except (TypeError, ValueError, IndexError):
                parsed = None
        if parsed is not None:
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    raise ValueError(f"expected a date (ISO 8601, RFC 822 or epoch seconds), got {value!r}")


def _from_epoch(number: float) -> datetime:
    if abs(number) >= _EPOCH_MS_ABOVE:
        number /= 1000
    try:
        return datetime.fromtimestamp(number, UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"epoch {number!r} is out of range") from None


_ISO_DURATION = re.compile(
    r"P(?:(?P<w>\d+(?:\.\d+)?)W)?(?:(?P<d>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?",
    re.IGNORECASE,
)
_CLOCK = re.compile(r"(?:(?:(\d+):)?([0-5]?\d):)?([0-5]?\d(?:\.\d+)?)")
_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def to_duration(value: Any) -> float:
    """Seconds from a number, ISO 8601 (`PT1H2M3S`, YouTube's form) or a clock (`1:02:03`, `62:03`,
    iTunes' form)."""
    value = _scalar(value, "duration")
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (text := value.strip()):
        iso = _ISO_DURATION.fullmatch(text)
        clock = _CLOCK.fullmatch(text)
        if iso and text.upper() not in ("P", "PT") and not text.upper().endswith("T"):
            seconds = sum(float(iso[u]) * n for u, n in _UNIT_SECONDS.items() if iso[u])
        elif clock:
            h, m, s = clock.groups()
            seconds = int(h or 0) * 3600 + int(m or 0) * 60 + float(s)
        elif re.fullmatch(r"\d+(\.\d+)?", text):
            seconds = float(text)
        else:
            raise ValueError(f"expected a duration (PT1H2M3S, HH:MM:SS or seconds), got {value!r}")
    else:
        raise ValueError(f"expected a duration (PT1H2M3S, HH:MM:SS or seconds), got {value!r}")
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {value!r}")
    return seconds


def to_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


_TAG_SPLIT = re.compile(r"[,;،؛\n]")
_TAG_FORBIDDEN = re.compile(r"[|%\\]")


def to_tags(value: Any) -> list[str]:
    """Tags from a list or a comma-separated string (Arabic comma too); feedparser's `{"term": ...}`
    dicts give their term. Lowercased, stripped of characters tags may not hold (`| % \\`, `_` -> `-`),
    cut to the tag limit, deduplicated, at most `TAGS_MAX`."""
    items = value if isinstance(value, list | tuple) else [value]
    out: dict[str, None] = {}
    for item in items:
        if isinstance(item, Mapping):
            item = item.get("term") or item.get("label") or item.get("name")
        if item is None:
            continue
        if isinstance(item, Mapping | list | tuple):
            raise ValueError(f"a tag must be text, got {item!r}")
        for part in _TAG_SPLIT.split(str(item)):
            tag = " ".join(_TAG_FORBIDDEN.sub("", part).replace("_", "-").split()).lower()[:TAG_MAX].strip()
            if tag:
                out.setdefault(tag, None)
    return list(out)[:TAGS_MAX]


COERCIONS: dict[str, Callable[[Any], Any]] = {
    "string": to_string,
    "int": to_int,
    "float": to_float,
    "bool": to_bool,
    "datetime": to_datetime,
    "duration": to_duration,
    "list": to_list,
    "tags": to_tags,
}

# --- transforms -----------------------------------------------------------------------------------

# The HTML kept in imported descriptions: text structure and links, nothing that runs or loads.
SAFE_TAGS = frozenset(
    {"a", "p", "br", "strong", "b", "em", "i", "u", "ul", "ol", "li", "blockquote", "code", "pre", "h3", "h4"}
)
SAFE_ATTRIBUTES = {"a": {"href", "title"}}
SAFE_SCHEMES = frozenset({"http", "https", "mailto"})
LINK_REL = "noopener noreferrer nofollow"


def sanitize_html(text: str) -> str:
    """`text` with only `SAFE_TAGS`, links limited to http(s)/mailto and marked `rel=nofollow`;
    scripts and styles dropped with their content, every event handler attribute dropped."""
    return nh3.clean(
        text,
        tags=set(SAFE_TAGS),
        attributes=SAFE_ATTRIBUTES,
        url_schemes=set(SAFE_SCHEMES),
        link_rel=LINK_REL,
    ).strip()


def strip_html(text: str) -> str:
    """The text of an HTML fragment, entities decoded and whitespace collapsed."""
    if "<" not in text and "&" not in text:
        return " ".join(text.split())
    return " ".join(html.unescape(nh3.clean(text, tags=set())).split())


def truncate(text: str, limit: int, *, is_html: bool = False) -> str:
    """`text` cut to `limit` characters at a word boundary when one is near, with an ellipsis; HTML is
    re-sanitized after the cut so no tag is left open or half written."""
    if len(text) <= limit:
        return text
    cut = limit - 1
    while cut > 0:
        head = text[:cut]
        space = head.rfind(" ")
        if space > 0 and cut - space <= min(20, cut // 2):
            head = head[:space]
        head = head.rstrip() + "…"
        if is_html:
            head = sanitize_html(head)
        if len(head) <= limit:
            return head
        cut -= len(head) - limit + 1
    return ""


# --- language -------------------------------------------------------------------------------------


def detect_language(text: str) -> str | None:
    """`domain.text.script_language` of the text an HTML fragment shows (markup is not counted)."""
    return script_language(strip_html(text) if "<" in text else text)


def language_code(value: Any) -> str | None:
    """ "ar" or "en" from a language tag (`ar`, `ar-SA`, `en_US`, `English`), None for anything else."""
    code = primary_language(value)
    return code if code in ("ar", "en") else None
