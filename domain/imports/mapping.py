"""Declarative mapping of an external record (a YouTube video, a feed entry, a REST record, a manual
row) onto the fields of a content item.

Rules are JSON: `{target field: rule}`, where a rule takes its value from `path` (one path or a list
tried in order, see `mapping_values.parse_path`), a sandboxed Jinja `template` rendered with the
record, or a `default`; then `transforms` run in order (`strip`, `lower`, `upper`, `strip_html`,
`sanitize_html`, `truncate` or `{"truncate": n}`, `{"regex": pattern}` keeping the first group or
the match, `{"map": {from: to}}`), then the `type` coercion, then the target's own check. Title and
description are tagged `ar` or `en` by `language`: "record" (the mapped `language` field, else the
script), "detect" (the script, else the record's language), or a fixed "ar"/"en"; per-language
sub-rules (`{"ar": {...}, "en": {...}}`) read separate source fields. Targets beyond the fixed ones
are `metadata.<name>`.

`compile_rules` validates once (an unknown target, path syntax, coercion or transform raises
`InvalidValue` naming the rule); `map_record` maps one record or raises `RecordRejected` listing
each required field that failed and why; `dry_run` maps a batch, one result per record, and never
stops at a bad one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from domain.content import DESCRIPTION_MAX, SLUG_MAX, TITLE_MAX, slugify
from domain.errors import InvalidValue
from domain.imports import mapping_values as mv
from domain.imports.mapping_defaults import DEFAULT_RULES, SOURCE_TYPES
from domain.notifications.templates.limits import BUDGET, Budget
from domain.notifications.templates.sandbox import TemplateError, compile_part, render_part
from domain.schema import CONTENT_TYPES

URL_MAX = 2048
TEXT_MAX = 2000
LANGUAGE_POLICIES = ("record", "detect", "ar", "en")
FALLBACK_LANGUAGE = "en"
TEMPLATE_SECONDS = 0.1  # a mapping template's render budget: a runaway loop fails its field, not the run


@dataclass(frozen=True, slots=True)
class Target:
    """A field of the mapped item: its kind (how the value is finished), the character limit of its
    text and whether an item without it is rejected unless the rule says otherwise."""

    kind: str
    limit: int = TEXT_MAX
    required: bool = False


TARGETS: dict[str, Target] = {
    "title": Target("localized", TITLE_MAX, required=True),
    "description": Target("localized", DESCRIPTION_MAX),
    "content_type": Target("content_type", required=True),
    "tags": Target("tags"),
    "slug": Target("slug", SLUG_MAX),
    "publish_at": Target("datetime"),
    "language": Target("language"),
    "external_id": Target("text", 512),
    "external_url": Target("url", URL_MAX),
    "thumbnail_url": Target("url", URL_MAX),
    "media_urls": Target("urls", URL_MAX),
    "duration_s": Target("duration"),
}
METADATA_PREFIX = "metadata."
_METADATA_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

_RULE_KEYS = frozenset(
    {"path", "template", "default", "type", "transforms", "required", "language", "ar", "en"}
)
_SOURCE_KEYS = ("path", "template", "ar", "en")
_SIMPLE_TRANSFORMS = frozenset({"strip", "lower", "upper", "strip_html", "sanitize_html", "truncate"})


@dataclass(frozen=True, slots=True)
class FieldRule:
    """One compiled rule: where its value comes from and what is done to it."""

    target: str
    paths: tuple[tuple[mv.Step, ...], ...] = ()
    template: str | None = None
    default: Any = None
    coerce: Callable[[Any], Any] | None = None
    transforms: tuple[Callable[[Any], Any], ...] = ()
    required: bool = False
    language: str = "record"
    per_language: tuple[tuple[str, FieldRule], ...] = ()


@dataclass(frozen=True, slots=True)
class MappingRules:
    """A validated rule set; `spec` is the JSON it was compiled from (what the API stores and shows)."""

    fields: tuple[FieldRule, ...]
    spec: dict[str, Any]


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "reason": self.reason}


class RecordRejected(InvalidValue):
    """A record that cannot become a content item: each required field that failed, and why."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = list(errors)
        detail = "; ".join(f"{e.field}: {e.reason}" for e in self.errors)
        super().__init__(detail, field=self.errors[0].field if self.errors else None)


@dataclass(slots=True)
class MappedItem:
    """A record mapped onto a content item's fields (`warnings`: optional fields left out, and why)."""

    title: dict[str, str]
    content_type: str
    description: dict[str, str] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    slug: str | None = None
    publish_at: datetime | None = None
    language: str | None = None
    external_id: str | None = None
    external_url: str | None = None
    thumbnail_url: str | None = None
    media_urls: list[str] = field(default_factory=list)
    duration_s: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    warnings: list[FieldError] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (what `transformed_data` stores and the dry run shows)."""
        return {
            "title": self.title,
            "content_type": self.content_type,
            "description": self.description,
            "tags": self.tags,
            "slug": self.slug,
            "publish_at": self.publish_at.isoformat() if self.publish_at else None,
            "language": self.language,
            "external_id": self.external_id,
            "external_url": self.external_url,
            "thumbnail_url": self.thumbnail_url,
            "media_urls": self.media_urls,
            "duration_s": self.duration_s,
            "metadata": self.metadata,
            "warnings": [w.to_dict() for w in self.warnings],
        }


@dataclass(frozen=True, slots=True)
class DryRunResult:
    """One record of a dry run: its index in the batch, the mapped item or the errors that reject it."""

    index: int
    item: MappedItem | None
    errors: list[FieldError]

    @property
    def ok(self) -> bool:
        return self.item is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "ok": self.ok,
            "item": self.item.to_dict() if self.item else None,
            "errors": [e.to_dict() for e in self.errors],
        }


# --- compiling ------------------------------------------------------------------------------------


def _target(name: Any) -> Target:
    if isinstance(name, str) and name in TARGETS:
        return TARGETS[name]
    if isinstance(name, str) and name.startswith(METADATA_PREFIX):
        if _METADATA_NAME.match(name[len(METADATA_PREFIX) :]):
            return Target("any")
        raise InvalidValue(
            f"mapping rule {name!r}: metadata names are lowercase letters, digits and _",
            field=f"mapping.{name}",
        )
    known = ", ".join(TARGETS)
    raise InvalidValue(
        f"mapping rule {name!r}: unknown target field; one of {known} or metadata.<name>",
        field=f"mapping.{name}",
    )


def _transform(name: str, spec: Any, limit: int) -> Callable[[Any], Any]:
    """The function of one transform spec (string or one-key object); `ValueError` if unknown."""
    if isinstance(spec, str):
        if spec not in _SIMPLE_TRANSFORMS:
            raise ValueError(f"unknown transform {spec!r}")
        if spec == "truncate":
            return lambda text: mv.truncate(text, limit, is_html="<" in text)
        return {
            "strip": str.strip,
            "lower": str.lower,
            "upper": str.upper,
            "strip_html": mv.strip_html,
            "sanitize_html": mv.sanitize_html,
        }[spec]
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise ValueError(f"a transform is a name or a one-key object, got {spec!r}")
    ((kind, arg),) = spec.items()
    if kind == "truncate":
        if not isinstance(arg, int) or isinstance(arg, bool) or arg < 1:
            raise ValueError("truncate takes a positive number of characters")
        size = min(arg, limit)
        return lambda text: mv.truncate(text, size, is_html="<" in text)
    if kind == "regex":
        if not isinstance(arg, str):
            raise ValueError("regex takes a pattern")
        try:
            pattern = re.compile(arg)
        except re.error as exc:
            raise ValueError(f"bad regex {arg!r}: {exc}") from None

        def extract(text: str) -> Any:
            match = pattern.search(text)
            if match is None:
                return mv.MISSING
            return match.group(1) if pattern.groups else match.group(0)

        return extract
    if kind == "map":
        if not isinstance(arg, Mapping):
            raise ValueError("map takes an object of from -> to")
        table = {str(k): v for k, v in arg.items()}
        return lambda text: table.get(text, mv.MISSING)
    raise ValueError(f"unknown transform {kind!r}")


def _compile_rule(name: str, target: Target, rule: Any, *, sub: bool = False) -> FieldRule:
    where = f"mapping.{name}"
    if isinstance(rule, str):
        rule = {"path": rule}
    if not isinstance(rule, Mapping):
        raise InvalidValue(f"mapping rule {name!r} must be an object or a path", field=where)
    unknown = set(rule) - _RULE_KEYS
    if unknown:
        raise InvalidValue(
            f"mapping rule {name!r} has unknown keys: {', '.join(sorted(unknown))}", field=where
        )
    if not any(k in rule for k in (*_SOURCE_KEYS, "default")):
        raise InvalidValue(f"mapping rule {name!r} needs a path, a template or a default", field=where)
    localized = target.kind == "localized"
    if not localized and any(k in rule for k in ("language", "ar", "en")):
        raise InvalidValue(
            f"mapping rule {name!r}: language applies to title and description only", field=where
        )
    if sub and any(k in rule for k in ("language", "ar", "en", "required")):
        raise InvalidValue(f"mapping rule {name!r}: a per-language rule names its source only", field=where)
    paths_spec = rule.get("path", ())
    paths_list = [paths_spec] if isinstance(paths_spec, str) else paths_spec
    if not isinstance(paths_list, list | tuple) or ("path" in rule and not paths_list):
        raise InvalidValue(f"mapping rule {name!r}: path must be a path or a list of paths", field=where)
    try:
        paths = tuple(mv.parse_path(p) for p in paths_list)
    except ValueError as exc:
        raise InvalidValue(f"mapping rule {name!r}: {exc}", field=where) from None
    template = rule.get("template")
    if template is not None:
        if not isinstance(template, str):
            raise InvalidValue(f"mapping rule {name!r}: template must be text", field=where)
        try:
            compile_part("text", template)
        except TemplateError as exc:
            raise InvalidValue(f"mapping rule {name!r}: template {exc}", field=where) from None
    coerce = None
    if "type" in rule:
        coerce = mv.COERCIONS.get(rule["type"]) if isinstance(rule["type"], str) else None
        if coerce is None:
            known = ", ".join(mv.COERCIONS)
            raise InvalidValue(
                f"mapping rule {name!r}: unknown type {rule['type']!r}; one of {known}", field=where
            )
    transforms_spec = rule.get("transforms", [])
    if not isinstance(transforms_spec, list):
        raise InvalidValue(f"mapping rule {name!r}: transforms must be a list", field=where)
    try:
        transforms = tuple(_transform(name, t, target.limit) for t in transforms_spec)
    except ValueError as exc:
        raise InvalidValue(f"mapping rule {name!r}: {exc}", field=where) from None
    required = rule.get("required", target.required)
    if not isinstance(required, bool):
        raise InvalidValue(f"mapping rule {name!r}: required must be true or false", field=where)
    language = rule.get("language", "record")
    if language not in LANGUAGE_POLICIES:
        raise InvalidValue(
            f"mapping rule {name!r}: language must be one of {', '.join(LANGUAGE_POLICIES)}", field=where
        )
    per_language = tuple(
        (lang, _compile_rule(f"{name}.{lang}", target, rule[lang], sub=True))
        for lang in ("ar", "en")
        if lang in rule
    )
    return FieldRule(
        target=name,
        paths=paths,
        template=template,
        default=rule.get("default"),
        coerce=coerce,
        transforms=transforms,
        required=required,
        language=language,
        per_language=per_language,
    )


def compile_rules(spec: Mapping[str, Any]) -> MappingRules:
    """Validate a JSON rule set into `MappingRules`; `InvalidValue` names the first bad rule."""
    if not isinstance(spec, Mapping):
        raise InvalidValue("mapping rules must be an object of target field -> rule", field="mapping")
    fields = []
    for name, rule in spec.items():
        target = _target(name)
        if rule is not None:
            fields.append(_compile_rule(name, target, rule))
    # `language` first: the localized fields read it.
    fields.sort(key=lambda r: r.target != "language")
    return MappingRules(fields=tuple(fields), spec=dict(spec))


def merge_rules(base: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """`overrides` over `base`, field by field: an override's keys replace the base rule's, and one
    that names a source (path, template, ar, en) drops the base's other sources; `None` removes
    the field."""
    merged: dict[str, Any] = {k: dict(v) if isinstance(v, Mapping) else v for k, v in base.items()}
    for name, rule in (overrides or {}).items():
        current = merged.get(name)
        if rule is None:
            merged.pop(name, None)
        elif isinstance(rule, Mapping) and isinstance(current, Mapping):
            kept = current
            if any(k in rule for k in _SOURCE_KEYS):
                kept = {k: v for k, v in current.items() if k not in _SOURCE_KEYS}
            merged[name] = {**kept, **rule}
        else:
            merged[name] = rule
    return merged


def rules_for(source_type: str, overrides: Mapping[str, Any] | None = None) -> MappingRules:
    """The built-in rules of `source_type` with a source's (or an admin's) overrides merged over."""
    if source_type not in DEFAULT_RULES:
        raise InvalidValue(
            f"unknown source type {source_type!r}; one of {', '.join(SOURCE_TYPES)}", field="source_type"
        )
    return compile_rules(merge_rules(DEFAULT_RULES[source_type], overrides))


# --- mapping --------------------------------------------------------------------------------------


def _empty(value: Any) -> bool:
    return value is mv.MISSING or value is None or value == "" or value == []


def _source(rule: FieldRule, record: Any) -> Any:
    for steps in rule.paths:
        value = mv.resolve(record, steps)
        if not _empty(value):
            return value
    if rule.template is not None:
        context = dict(record) if isinstance(record, Mapping) else {}
        context["record"] = record
        token = BUDGET.set(Budget(TEMPLATE_SECONDS))
        try:
            value = render_part("text", rule.template, context).strip()
        finally:
            BUDGET.reset(token)
        if value:
            return value
    return mv.MISSING


def _apply(transform: Callable[[Any], Any], value: Any) -> Any:
    if isinstance(value, list):
        out = [transform(v if isinstance(v, str) else mv.to_string(v)) for v in value]
        return [v for v in out if not _empty(v)]
    return transform(value if isinstance(value, str) else mv.to_string(value))


def _value(rule: FieldRule, record: Any) -> Any:
    """The rule's value after transforms and coercion, or MISSING; `ValueError`/`TemplateError` when
    the source has a value that does not fit."""
    try:
        value = _source(rule, record)
    except TemplateError:
        if rule.default is None:
            raise
        value = mv.MISSING
    for transform in rule.transforms:
        if _empty(value):
            break
        value = _apply(transform, value)
    if _empty(value):
        if rule.default is None:
            return mv.MISSING
        value = rule.default
    return rule.coerce(value) if rule.coerce is not None else value


def _finish(target: Target, name: str, value: Any) -> Any:
    """The value in the form the item holds for `target`; `ValueError` if it cannot be."""
    kind = target.kind
    if kind == "any":
        return value.isoformat() if isinstance(value, datetime) else value
    if kind == "tags":
        return mv.to_tags(value)
    if kind == "datetime":
        return mv.to_datetime(value)
    if kind == "duration":
        return mv.to_duration(value)
    if kind == "urls":
        return [_url(mv.to_string(v), target.limit) for v in mv.to_list(value)]
    text = mv.to_string(value).strip()
    if kind == "url":
        return _url(text, target.limit)
    if kind == "content_type":
        if text.lower() not in CONTENT_TYPES:
            raise ValueError(f"unknown content type {text!r}; one of {', '.join(CONTENT_TYPES)}")
        return text.lower()
    if kind == "slug":
        slug = slugify(text)
        if not slug:
            raise ValueError(f"no slug can be made from {text!r}")
        return slug
    if not text:
        return mv.MISSING
    if len(text) > target.limit:
        raise ValueError(f"longer than {target.limit} characters ({len(text)}); add a truncate transform")
    return text


def _url(text: str, limit: int) -> str:
    text = text.strip()
    if not re.match(r"(?i)^https?://[^\s/]+", text):
        raise ValueError(f"expected an http(s) URL, got {text[:100]!r}")
    if len(text) > limit:
        raise ValueError(f"URL longer than {limit} characters")
    return text


@dataclass(slots=True)
class _Languages:
    """The record's language: from the source (`given`) or from the language rule's default."""

    given: str | None = None
    default: str | None = None


def _localized(rule: FieldRule, target: Target, record: Any, langs: _Languages) -> dict[str, str]:
    out: dict[str, str] = {}
    for lang, sub in rule.per_language:
        value = _value(sub, record)
        text = None if _empty(value) else _finish(target, sub.target, value)
        if text:
            out[lang] = text
    if out or (not rule.paths and rule.template is None and rule.default is None):
        return out
    value = _value(rule, record)
    if _empty(value):
        return out
    text = _finish(target, rule.target, value)
    if _empty(text):
        return out
    if rule.language in ("ar", "en"):
        lang = rule.language
    elif rule.language == "detect":
        lang = mv.detect_language(text) or langs.given or langs.default or FALLBACK_LANGUAGE
    else:
        lang = langs.given or mv.detect_language(text) or langs.default or FALLBACK_LANGUAGE
    return {lang: text}


def map_record(rules: MappingRules, record: Any) -> MappedItem:
    """`record` mapped by `rules`; `RecordRejected` lists every required field that failed, and a
    failing optional field is left out with a warning."""
    values: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    errors: list[FieldError] = []
    warnings: list[FieldError] = []
    langs = _Languages()
    for rule in rules.fields:
        name = rule.target
        target = TARGETS.get(name) or Target("any")
        try:
            if target.kind == "localized":
                value: Any = _localized(rule, target, record, langs)
            elif name == "language":
                value = _language(rule, record, langs)
            else:
                value = _value(rule, record)
                if not _empty(value):
                    value = _finish(target, name, value)
        except (ValueError, TypeError, TemplateError) as exc:
            (errors if rule.required else warnings).append(FieldError(name, _reason(exc)))
            continue
        if _empty(value) or value == {}:
            if rule.required:
                errors.append(FieldError(name, _missing_reason(rule)))
            continue
        if name.startswith(METADATA_PREFIX):
            metadata[name[len(METADATA_PREFIX) :]] = value
        else:
            values[name] = value
    for name in ("title", "content_type"):
        if name not in values and not any(e.field == name for e in errors):
            errors.append(FieldError(name, "no rule maps this required field"))
    if errors:
        raise RecordRejected(errors)
    title = values.pop("title")
    language = values.pop("language", None) or next(iter(title))
    return MappedItem(title=title, language=language, metadata=metadata, warnings=warnings, **values)


def _language(rule: FieldRule, record: Any, langs: _Languages) -> str | None:
    """The record's language (ar/en) and where it came from, recorded in `langs` for the texts."""
    if rule.default is not None:
        langs.default = mv.language_code(rule.default)
    source = FieldRule(
        target=rule.target, paths=rule.paths, template=rule.template, transforms=rule.transforms
    )
    value = _value(source, record)
    given = None if _empty(value) else mv.language_code(mv.to_string(value))
    langs.given = given
    return given or langs.default


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TemplateError):
        return f"template: {exc.message}"
    return str(exc) or type(exc).__name__


def _missing_reason(rule: FieldRule) -> str:
    sources = [_path_text(p) for p in rule.paths]
    sources += [f"{lang}: {' or '.join(map(_path_text, sub.paths))}" for lang, sub in rule.per_language]
    if rule.template is not None:
        sources.append("its template")
    where = " or ".join(sources) if sources else "its source"
    return f"required, but the record has no value at {where}"


def _path_text(steps: tuple[mv.Step, ...]) -> str:
    text = "".join(f"[{s}]" if isinstance(s, int) or s == mv.WILDCARD else f".{s}" for s in steps)
    return text.lstrip(".")


def dry_run(rules: MappingRules, records: Sequence[Any]) -> list[DryRunResult]:
    """Each record mapped or rejected on its own: a bad record is one result with its errors, and the
    records after it are still mapped."""
    results = []
    for index, record in enumerate(records):
        try:
            item = map_record(rules, record)
        except RecordRejected as exc:
            results.append(DryRunResult(index, None, exc.errors))
        except Exception as exc:  # noqa: BLE001 - whatever one record does, the batch goes on
            results.append(DryRunResult(index, None, [FieldError("record", _reason(exc))]))
        else:
            results.append(DryRunResult(index, item, []))
    return results
