"""The limits of one render, enforced from inside it: a time budget checked on every loop iteration,
call, operator, filter and piece of output; sizes checked before anything large is built (widths,
repetitions, joins, replacements, format specs, huge integers); and the code generator hook that routes
loops, `~` and captured blocks through the budget. Running out raises `RenderLimitError`."""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from decimal import Decimal
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.sandbox import SecurityError

from domain.notifications.templates.languages import FILTERS

MAX_REPEAT = 100_000  # longest string or list `*` may build
MAX_EXPONENT = 1_000
MAX_OUTPUT_CHARS = 1_000_000  # longest part, block of captured text or single value a render may build
MAX_BUILT_CHARS = 20_000_000  # all the text (and list items) one render may build, counted as it is built
MAX_INT_BITS = 100_000  # largest integer `*` and `**` may make (about 30,000 digits)


class RenderLimitError(SecurityError):
    """A render that ran out of time or would build too much text."""


class Budget:
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


BUDGET: ContextVar[Budget | None] = ContextVar("template_render_budget", default=None)
SHARED_DEADLINE: ContextVar[tuple[float, float] | None] = ContextVar("template_shared_deadline", default=None)


@contextmanager
def shared_time_limit(seconds: float) -> Iterator[None]:
    """Every render inside shares one deadline, `seconds` from now (besides each render's own
    `RENDER_SECONDS`): for work that renders many messages where it must not stall for long, such as
    an API request sending to many recipients on the event loop."""
    token = SHARED_DEADLINE.set((time.monotonic() + seconds, seconds))
    try:
        yield
    finally:
        SHARED_DEADLINE.reset(token)


def _check_size(size: int) -> None:
    if size > MAX_OUTPUT_CHARS:
        raise RenderLimitError(f"a text of {size:,} characters or items; the limit is {MAX_OUTPUT_CHARS:,}")


def sized(value: Any) -> Any:
    """`value`, counted against the running render's budget (or only size-checked outside a render)."""
    budget = BUDGET.get()
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


def check_format(text: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """Widths and precisions of a %- or {}-format string: written into it (`%999999999s`,
    `{:>999999999}`) or taken from the arguments (`%*d`, `{:>{}}`), whose numbers are then checked."""
    for value in (*args, *kwargs.values()):
        check_printable(value)  # "%s" % a_list prints the whole list
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


def check_printable(value: Any) -> None:
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
        check_format(value, args, kwargs)
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
    check_printable(value)
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
    {
        "capitalize",
        "center",
        "e",
        "escape",
        "forceescape",
        "indent",
        "lower",
        "replace",
        "safe",
        "striptags",
        "title",
        "trim",
        "truncate",
        "upper",
        "urlize",
        "wordcount",
        "wordwrap",
    }
)


# Filters that make a number, pick a value, or format one value in CLDR's short forms: none builds
# more than a few characters from what it is given, so they run without the guard's bookkeeping
# (the loops around them still count).
UNGUARDED_FILTERS = frozenset(
    {
        *FILTERS,
        "abs",
        "attr",
        "count",
        "d",
        "default",
        "first",
        "float",
        "int",
        "last",
        "length",
        "max",
        "min",
        "random",
        "round",
    }
)


def guard_filter(name: str, func: Any) -> Any:
    """`func` counted against the render's budget, its result sized, its arguments checked first."""
    check = _FILTER_CHECKS.get(name)
    printed = name in _TEXT_FILTERS
    skip = 0 if getattr(func, "jinja_pass_arg", None) is None else 1  # context / eval context / env

    @functools.wraps(func)  # keeps `jinja_pass_arg`
    def guarded(*args: Any, **kwargs: Any) -> Any:
        budget = BUDGET.get()
        if budget is not None:
            budget.tick()
        if len(args) > skip:
            if printed:
                check_printable(args[skip])
            if check is not None:
                value = check(*args[skip:], **kwargs)
                args = (*args[:skip], value, *args[skip + 1 :])
        return sized(func(*args, **kwargs))

    return guarded


def check_method(method: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[Any, ...]:
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
        check_format(owner, args, kwargs)
    elif name == "translate":
        raise RenderLimitError("str.translate is not available in templates")
    return args


def check_int_product(left: int, right: int) -> None:
    if left.bit_length() + right.bit_length() > MAX_INT_BITS:
        raise RenderLimitError(f"an integer larger than {MAX_INT_BITS:,} bits")


def ticking(iterable: Any, budget: Budget) -> Any:
    for item in iterable:
        budget.tick()
        yield item


class Buffer(list):
    """The text a block captures (`{% set %}...{% endset %}`, macros, call and filter blocks), counted
    as it is appended."""

    __slots__ = ("budget", "size")

    def __init__(self, budget: Budget | None) -> None:
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


class GuardedCodeGenerator(CodeGenerator):
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
