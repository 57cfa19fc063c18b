"""Columns of job and experiment listings: which fields exist, how they are named, sorting.

A job's columns are its own fields (``id``, ``status``, ``created``...), then its
hyperparameters, then its results. A hyperparameter or result is named by its bare
name, or ``hyperparameter.x`` / ``result.x`` when the bare name would be ambiguous
(both have an ``x``, or ``x`` is also one of the job's own fields).

Example:
    >>> docs = [{"id": "a", "status": "DONE", "hyperparameters": {"x": 2}, "results": {"x": 4}}]
    >>> [c.label for c in job_columns(docs)]
    ['id', 'status', 'hyperparameter.x', 'result.x']
    >>> sort_rows(docs + [{"id": "b", "status": "QUEUED", "hyperparameters": {"x": 1}, "results": {}}],
    ...           [resolve("hyperparameter.x", JOB_FIELDS, docs)])[0]["id"]
    'b'
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ..errors import ValidationError
from .render import MISSING

#: A job's own fields that can be shown and sorted on, in display order.
JOB_FIELDS = ("id", "status", "created", "updated", "attempt", "seed", "error")
#: The job fields a table shows by default (then hyperparameters and results).
JOB_DEFAULT = ("id", "status")
#: An experiment's fields.
EXPERIMENT_FIELDS = ("name", "scheduler", "status", "created", "updated", "params")
EXPERIMENT_DEFAULT = ("name", "scheduler", "status", "created")
_GROUPS = {"hyperparameter": "hyperparameters", "hyperparameters": "hyperparameters",
           "result": "results", "results": "results"}


@dataclass(frozen=True)
class Column:
    """A named way to read one value (or MISSING) out of a document."""

    label: str
    get: Callable[[dict], Any]


def _own(field: str) -> Callable[[dict], Any]:
    if field == "scheduler":
        return lambda doc: next(iter(doc["scheduler"]))
    if field == "params":
        return lambda doc: next(iter(doc["scheduler"].values()))
    return lambda doc: doc.get(field, MISSING)


def _in(group: str, name: str) -> Callable[[dict], Any]:
    return lambda doc: doc.get(group, {}).get(name, MISSING)


def _names(docs: Sequence[dict], group: str) -> list[str]:
    seen: dict[str, None] = {}
    for doc in docs:
        seen.update(dict.fromkeys(doc.get(group, {})))
    return list(seen)


def job_columns(docs: Sequence[dict]) -> list[Column]:
    """The default table columns of these jobs: id, status, hyperparameters, results."""
    hps, results = _names(docs, "hyperparameters"), _names(docs, "results")
    taken = set(JOB_FIELDS)
    columns = [Column(f, _own(f)) for f in JOB_DEFAULT]
    for group, singular, names, others in (("hyperparameters", "hyperparameter", hps, results),
                                           ("results", "result", results, hps)):
        for name in names:
            label = f"{singular}.{name}" if name in taken or name in others else name
            columns.append(Column(label, _in(group, name)))
    return columns


def experiment_columns() -> list[Column]:
    """The default table columns of experiments."""
    return [Column(f, _own(f)) for f in EXPERIMENT_DEFAULT]


def resolve(field: str, own: Sequence[str], docs: Sequence[dict]) -> Column:
    """The column a user's FIELD means; ValidationError naming what exists otherwise."""
    if field in own:
        return Column(field, _own(field))
    if own is EXPERIMENT_FIELDS:  # (experiments have no hyperparameters or results)
        raise ValidationError(f"unknown field {field!r}; experiments have {', '.join(own)}")
    head, dot, rest = field.partition(".")
    if dot and head in _GROUPS and rest:
        return Column(field, _in(_GROUPS[head], rest))
    in_hps = any(field in doc.get("hyperparameters", {}) for doc in docs)
    in_results = any(field in doc.get("results", {}) for doc in docs)
    if in_hps and in_results:
        raise ValidationError(
            f"field {field!r} is both a hyperparameter and a result: say hyperparameter.{field} or result.{field}"
        )
    if in_hps or in_results:
        return Column(field, _in("hyperparameters" if in_hps else "results", field))
    if not docs:  # no job to tell a typo from a result still to come (`--status DONE -s loss` early on)
        return Column(field, _in("results", field))
    known = list(own) + [c.label for c in job_columns(docs)[len(JOB_DEFAULT):]]
    raise ValidationError(f"unknown field {field!r}; these jobs have {', '.join(known)}")


def _order(value: Any) -> tuple:
    # One order across JSON types: numbers, booleans, strings, then the rest as JSON text.
    if isinstance(value, bool):
        return (1, value)
    if isinstance(value, (int, float)):
        return (0, value)
    if isinstance(value, str):
        return (2, value)
    return (3, json.dumps(value, sort_keys=True))


def sort_rows(docs: list[dict], columns: Sequence[Column], descending: bool = False) -> list[dict]:
    """Sort by the first column, then the next...; rows missing a value come last either way."""
    rows = list(docs)
    for column in reversed(columns):
        present = [d for d in rows if column.get(d) is not MISSING]
        missing = [d for d in rows if column.get(d) is MISSING]
        rows = sorted(present, key=lambda d: _order(column.get(d)), reverse=descending) + missing
    return rows
