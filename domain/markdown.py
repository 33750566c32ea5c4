"""Markdown tables for the metadata that assets and checks show in the Dagster UI."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table: a header row, the separator, one line per row. A None cell is empty and a
    `|` inside a cell is escaped, so a value cannot break the table's columns."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += [
        "| " + " | ".join("" if v is None else str(v).replace("|", "\\|") for v in row) + " |" for row in rows
    ]
    return "\n".join(lines)
