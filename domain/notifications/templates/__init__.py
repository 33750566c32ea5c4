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

The package: `languages` (locale chains, direction, the language-bound helpers), `limits` (the time
and size budget of a render), `sandbox` (the Jinja environments and compiling), `layout` (the email
layout and text/HTML conversions); this module renders, validates and lists a template's variables.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2 import meta

from domain.notifications.outgoing import CHANNELS
from domain.notifications.templates.languages import (
    DEFAULT_LANGUAGE,
    LANG_KEY,
    language_of,
    locale_chain,
    pick,
    text_direction,
)
from domain.notifications.templates.layout import email_layout, html_to_text, text_to_html
from domain.notifications.templates.limits import (
    BUDGET,
    SHARED_DEADLINE,
    Budget,
    RenderLimitError,
    shared_time_limit,
)
from domain.notifications.templates.sandbox import (
    ENVIRONMENTS,
    TemplateError,
    compile_part,
    kind_of,
    render_part,
)

__all__ = [
    "DEFAULT_LANGUAGE",
    "RENDER_SECONDS",
    "RenderLimitError",
    "Rendered",
    "TemplateError",
    "TemplateSource",
    "html_to_text",
    "locale_chain",
    "pick",
    "render",
    "shared_time_limit",
    "text_direction",
    "text_to_html",
    "validate",
    "variables",
]

SMS_MAX_CHARS = 1000
SUBJECT_MAX_CHARS = 300
RENDER_SECONDS = 2.0  # wall-clock time one message (all its parts) may take to render
_GLOBALS = frozenset({"language", "direction"})


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
    budget = Budget(RENDER_SECONDS)
    shared = SHARED_DEADLINE.get()
    if shared is not None and shared[0] < budget.deadline:
        budget.deadline, budget.seconds = shared[0], shared[1]
        if time.monotonic() > budget.deadline:
            raise TemplateError("subject", f"rendering took longer than {shared[1]:g} s in all, the limit")
    token = BUDGET.set(budget)
    try:
        return _render(source, data, language, channel, default_language)
    finally:
        BUDGET.reset(token)


def _render(
    source: TemplateSource, data: Mapping[str, Any], language: str, channel: str, default_language: str
) -> Rendered:
    lang = language_of(language, default_language)
    context = {**data, "language": lang.tag, "direction": lang.direction, LANG_KEY: lang}
    subject = " ".join(render_part("subject", source.subject, context).split())
    text = render_part("text", source.text, context).strip() if _has(source.text) else ""
    body = None
    if _has(source.html) and (channel == "email" or not text):
        body = render_part("html", source.html or "", context)
        if not text:
            text = html_to_text(body)
    html = None
    if channel == "email":
        html = email_layout(body if body is not None else text_to_html(text), subject=subject, language=lang)
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
            compile_part(part, text)
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
            ast = ENVIRONMENTS[kind_of(part)].parse(text)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(part, exc.message or "syntax error", exc.lineno) from exc
        names |= meta.find_undeclared_variables(ast)
    return names - _GLOBALS
