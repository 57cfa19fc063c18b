"""Strict JSON: what Schedy stores is standard JSON any language can read.

NaN and Infinity are refused (they are not JSON); numpy scalars and arrays are
converted with ``.item()`` / ``.tolist()`` so that training code can store them directly.

Example:
    >>> dumps({"loss": 0.5})
    b'{"loss":0.5}'
    >>> dumps({"loss": float("nan")}, what="results")
    Traceback (most recent call last):
    ...
    schedy.errors.ValidationError: results.loss is NaN, which JSON cannot store: store null or a string instead
"""

from __future__ import annotations

import json
import math
from typing import Any

from .errors import CorruptDocumentError, ValidationError


def _default(obj: Any) -> Any:
    # numpy scalars have .item(), arrays .tolist(); importing numpy here would slow start-up.
    for name in ("tolist", "item"):
        method = getattr(obj, name, None)
        if callable(method):
            return method()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(type(obj).__name__)


def _find_bad_value(value: Any, path: str) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        label = "NaN" if math.isnan(value) else "Infinity"
        return f"{path} is {label}, which JSON cannot store: store null or a string instead"
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path} has a key {key!r} that is not a string"
            found = _find_bad_value(item, f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = _find_bad_value(item, f"{path}[{index}]")
            if found:
                return found
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return None
    try:
        converted = _default(value)
    except TypeError:
        return f"{path} is a {type(value).__name__}, which JSON cannot store"
    return _find_bad_value(converted, path)


def to_plain(value: Any, what: str = "value") -> Any:
    """Return ``value`` as plain JSON data (dict/list/str/int/float/bool/None), a copy.

    Raises ValidationError naming the first part of ``value`` that JSON cannot hold.

    >>> to_plain({"step": (1, 2)})
    {'step': [1, 2]}
    """
    try:
        return _copy_plain(value)
    except (_NotPlain, RecursionError):  # tuples, numpy values, NaN, cycles...: as JSON has them
        return json.loads(dumps(value, what=what))


class _NotPlain(Exception):
    pass


_SCALARS = frozenset({str, int, bool, type(None)})


def _copy_plain(value: Any) -> Any:
    # A copy of data that is JSON already (the usual results and hyperparameters), a few
    # times cheaper than a round trip through the encoder; anything else is _NotPlain.
    cls = value.__class__
    if cls in _SCALARS:
        return value
    if cls is float:
        if value - value == 0.0:  # finite: inf - inf and nan - nan are nan
            return value
        raise _NotPlain
    if cls is dict:
        copy = {}
        for key, item in value.items():
            if key.__class__ is not str:
                raise _NotPlain
            copy[key] = _copy_plain(item)
        return copy
    if cls is list:
        return [_copy_plain(item) for item in value]
    raise _NotPlain


def _encoder(indent: int | None) -> json.JSONEncoder:
    return json.JSONEncoder(
        allow_nan=False,
        ensure_ascii=False,
        default=_default,
        indent=indent,
        separators=None if indent else (",", ":"),
    )


_COMPACT = _encoder(None)  # made once: every write encodes a document


def dumps(value: Any, what: str = "document", indent: int | None = None) -> bytes:
    """Serialize ``value`` to strict JSON bytes (UTF-8)."""
    try:
        text = (_COMPACT if indent is None else _encoder(indent)).encode(value)
    except RecursionError:
        raise ValidationError(f"{what} contains itself or is nested too deeply for JSON") from None
    except (ValueError, TypeError) as e:
        try:
            problem = _find_bad_value(value, what)
        except RecursionError:  # the encoder's "Circular reference detected"
            problem = f"{what} contains itself, which JSON cannot store ({e})"
        raise ValidationError(problem or f"{what} is not valid JSON") from None
    return text.encode("utf-8")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads(data: bytes | str, what: str = "document") -> Any:
    """Parse strict JSON (NaN/Infinity refused); errors name ``what``."""
    try:
        return json.loads(data, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as e:
        raise CorruptDocumentError(f"{what} is not valid JSON: {e}") from None
