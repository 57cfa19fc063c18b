"""Turning values and documents into text: table cells, psql-style tables, paragraphs.

Tables are drawn here rather than with tabulate, whose import alone costs more than
the rest of ``schedy list`` on a small experiment.

Example:
    >>> print(table(["id", "x", "name"], [["a1", 1, "adam"], ["b2", 15.05421, None]]))
    +----+---------+------+
    | id |       x | name |
    |----+---------+------|
    | a1 |       1 | adam |
    | b2 | 15.0542 | null |
    +----+---------+------+
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterable, Sequence

#: Marks a value that a row does not have (shown as an empty cell, sorted last).
MISSING = object()


def is_number(value: Any) -> bool:
    """True for ints and floats, not for booleans."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with its control characters escaped as Python writes them: a name or value
    printed to a terminal can neither break the line nor move the cursor.

    >>> printable("a\\nb\\x1b[31m")
    'a\\\\nb\\\\x1b[31m'
    """
    return _CONTROL.sub(lambda match: repr(match.group())[1:-1], text)


def clipped(text: str, limit: int = 60) -> str:
    """``text`` printable and cut to about ``limit`` characters, saying how long it was: an
    error quoting what was typed stays a line a person can read.

    >>> clipped("9" * 5000, 10)
    '9999999999... (5000 characters)'
    """
    if len(text) > limit:
        return f"{printable(text[:limit])}... ({len(text)} characters)"
    return printable(text)


def cell(value: Any) -> str:
    """A value as one line of text: floats with 6 significant digits, JSON for the rest.

    >>> [cell(v) for v in (0.1 + 0.2, 3, True, None, "adam", [1, "a"], MISSING)]
    ['0.3', '3', 'true', 'null', 'adam', '[1, "a"]', '']
    """
    if value is MISSING:
        return ""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, float):
        return format(value, "g")
    if is_number(value):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def full(value: Any) -> str:
    """A value in full (no rounding), as in paragraphs and CSV: strings bare, the rest JSON.

    >>> full(0.1 + 0.2), full("adam"), full({"a": 1})
    ('0.30000000000000004', 'adam', '{"a": 1}')
    """
    if value is MISSING:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A psql-style table; columns holding only numbers are right-aligned."""
    rows = [list(row) for row in rows]
    headers = [printable(h) for h in headers]
    texts = [[cell(v) for v in row] for row in rows]
    right = [
        any(row[i] is not MISSING for row in rows) and all(is_number(row[i]) or row[i] is MISSING for row in rows)
        for i in range(len(headers))
    ]
    widths = [max([len(h)] + [len(t[i]) for t in texts]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        parts = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right)]
        return "| " + " | ".join(parts) + " |"

    border = "+-" + "-+-".join("-" * w for w in widths) + "-+"
    under_header = "|-" + "-+-".join("-" * w for w in widths) + "-|"
    return "\n".join([border, line(headers), under_header, *(line(t) for t in texts), border])


def paragraph(title: str, fields: Sequence[tuple[str, Any]], indent: str = "  ") -> str:
    """A titled block of ``name: value`` lines; a dict value becomes an indented sub-block.

    >>> print(paragraph("Job a1", [("status", "DONE"), ("hyperparameters", {"x": 1}), ("results", {})]))
    Job a1
      status: DONE
      hyperparameters:
        x: 1
      results: (none)
    """
    lines = [title]
    for name, value in fields:
        if isinstance(value, dict):
            if not value:
                lines.append(f"{indent}{name}: (none)")
                continue
            lines.append(f"{indent}{name}:")
            lines.extend(f"{indent * 2}{printable(key)}: {printable(full(item))}" for key, item in value.items())
        else:
            lines.append(f"{indent}{name}: {printable(full(value))}")
    return "\n".join(lines)
