"""The Jinja environments templates run in: the immutable sandbox with `StrictUndefined`, its operators,
calls and filters bounded by `limits`, one environment for text and one autoescaping HTML; compiled
templates cached by source text; a failing part reported as `TemplateError` with its line."""

from __future__ import annotations

import functools
import itertools
from decimal import Decimal
from types import TracebackType
from typing import Any

import jinja2
from jinja2.runtime import LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from markupsafe import Markup

from domain.notifications.templates.languages import FILTERS
from domain.notifications.templates.limits import (
    BUDGET,
    MAX_EXPONENT,
    MAX_INT_BITS,
    MAX_OUTPUT_CHARS,
    MAX_REPEAT,
    UNGUARDED_FILTERS,
    Buffer,
    GuardedCodeGenerator,
    RenderLimitError,
    check_format,
    check_int_product,
    check_method,
    check_printable,
    guard_filter,
    sized,
    ticking,
)

CACHE_SIZE = 512


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


_DICT_ATTRIBUTES = frozenset(dir(dict))


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with `*`, `**`, `%` and `+` bounded so that a template cannot build a
    huge value, and every loop, call, filter and block counted against the render's budget."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})
    code_generator_class = GuardedCodeGenerator

    def guard_iter(self, iterable: Any) -> Any:
        budget = BUDGET.get()
        return iterable if budget is None else ticking(iterable, budget)

    def sized(self, value: Any) -> Any:
        return sized(value)

    def printable(self, value: Any) -> Any:
        check_printable(value)
        return value

    def output_buffer(self) -> Buffer:
        return Buffer(BUDGET.get())

    def concat(self, parts: Any) -> str:  # type: ignore[override]  # joins a captured block
        return sized("".join(parts))

    def call(__self, __context: jinja2.runtime.Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        budget = BUDGET.get()
        if budget is not None:
            budget.tick()
            if isinstance(__obj, LoopContext) and args:  # `loop(children)` in a recursive loop
                args = (ticking(args[0], budget), *args[1:])
        args = check_method(__obj, args, kwargs)
        return sized(super().call(__context, __obj, *args, **kwargs))

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
        budget = BUDGET.get()
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
                check_int_product(left, right)
        elif operator == "**":
            if isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
                raise SecurityError(f"exponent larger than {MAX_EXPONENT:,}")
            if isinstance(left, int) and isinstance(right, int) and left.bit_length() * right > MAX_INT_BITS:
                raise RenderLimitError(f"an integer larger than {MAX_INT_BITS:,} bits")
        elif operator == "%" and isinstance(left, str):
            check_format(left, right if isinstance(right, tuple) else (right,), {})
        return sized(super().call_binop(context, operator, left, right))


_SCALARS = frozenset({str, int, float, bool, Decimal, Markup})


def _finalize(value: Any) -> Any:
    """What `{{ ... }}` prints: None as nothing; a list or mapping only if its text fits the limit."""
    if value is None:
        return ""
    if type(value) not in _SCALARS:
        check_printable(value)
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
    env.filters.update(FILTERS)
    env.filters = {
        name: func if name in UNGUARDED_FILTERS else guard_filter(name, func)
        for name, func in env.filters.items()
    }
    del env.globals["lipsum"]  # paragraphs of filler by the thousand in one call: not for messages
    return env


ENVIRONMENTS = {"text": _environment(autoescape=False), "html": _environment(autoescape=True)}


def kind_of(part: str) -> str:
    return "html" if part == "html" else "text"


@functools.lru_cache(maxsize=CACHE_SIZE)
def _compiled(kind: str, source: str) -> jinja2.Template:
    return ENVIRONMENTS[kind].from_string(source)


def _template_line(tb: TracebackType | None) -> int | None:
    """The template line of the innermost template frame of a render error (Jinja rewrites
    tracebacks so that template frames carry the template's own line numbers)."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def compile_part(part: str, source: str) -> jinja2.Template:
    try:
        return _compiled(kind_of(part), source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(part, exc.message or "syntax error", exc.lineno) from exc


_PIECES = 64  # pieces of output measured at a time (they are references: nothing is joined before)


def _generate(template: jinja2.Template, context: dict[str, Any]) -> str:
    """The template's text, measured as it comes and stopped past `MAX_OUTPUT_CHARS` before it is
    joined (and by the budget's clock)."""
    budget = BUDGET.get()
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


def render_part(part: str, source: str, context: dict[str, Any]) -> str:
    template = compile_part(part, source)
    try:
        return _generate(template, context)
    except TemplateError:
        raise
    except Exception as exc:  # any failure of a staff-written template is that template's error
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        raise TemplateError(part, message, _template_line(exc.__traceback__)) from exc
