"""Strict JSON: what Schedy stores is standard JSON any language can read.

NaN and Infinity are refused (they are not JSON); numpy scalars and arrays are
converted with ``.item()`` / ``.tolist()`` so that training code can store them directly.
Number keys become strings, as ``json.dumps`` makes them. Also refused, since other
readers (and Schedy's own schedulers) could not use them: other kinds of keys, keys that
would become the same string (``1`` and ``"1"``), strings that are not valid Unicode
(lone surrogates, as ``os.fsdecode`` makes of an undecodable file name), integers too
large for a 64-bit float, and values nested more than ``MAX_DEPTH`` levels deep.

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
import numbers
import re
import sys
from typing import Any

from .errors import CorruptDocumentError, ValidationError

#: How deep objects and arrays may be nested in a stored value.
MAX_DEPTH = 64
_MAX_INT = int(sys.float_info.max)


def _default(obj: Any) -> Any:
    # numpy scalars have .item(), arrays .tolist(); importing numpy here would slow start-up.
    for name in ("tolist", "item"):
        method = getattr(obj, name, None)
        if callable(method):
            converted = method()
            if converted is obj:  # not numpy's kind of .item()
                break
            if type(converted) is type(obj):
                # numpy's long double: .item() gives one back, as no Python number holds it.
                if isinstance(obj, numbers.Real):
                    return float(obj)
                break
            return converted
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(type(obj).__name__)


def valid_unicode(text: str) -> bool:
    """Whether ``text`` can be written as UTF-8: False if it holds a lone surrogate.

    >>> valid_unicode("héllo"), valid_unicode("data\\udcff.csv")
    (True, False)
    """
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def storable_text(text: str) -> str:
    """``text`` with lone surrogates written as escapes, so that it can be stored.

    >>> storable_text("cannot open data\\udcff.csv")
    'cannot open data\\\\udcff.csv'
    """
    return text if valid_unicode(text) else text.encode("utf-8", "backslashreplace").decode("utf-8")


def _find_bad_value(value: Any, path: str, depth: int = 0, inside: frozenset = frozenset()) -> str | None:
    """What about ``value`` JSON (or a reader of it) cannot take, or None. ``inside``:
    the ids of the containers ``value`` is in."""
    if isinstance(value, float) and not math.isfinite(value):
        label = "NaN" if math.isnan(value) else "Infinity"
        return f"{path} is {label}, which JSON cannot store: store null or a string instead"
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int) and not -_MAX_INT <= value <= _MAX_INT:
        return f"{path} is an integer too large for a JSON number (more than 1.8e308): store it as a string"
    if isinstance(value, str):
        if not valid_unicode(value):
            return f"{path} is not valid Unicode (it has a lone surrogate, as an undecodable file name gives)"
        return None
    if isinstance(value, (dict, list, tuple)):
        if id(value) in inside:
            return f"{path} contains itself, which JSON cannot store"
        if depth >= MAX_DEPTH:
            shown = path if len(path) <= 80 else f"{path[:80]}..."
            return f"{shown} is nested more than {MAX_DEPTH} levels deep"
        inside = inside | {id(value)}
    if isinstance(value, dict):
        names: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, (str, int, float)) and key is not None:  # json.dumps turns those into strings
                return f"{path} has a key {key!r} that is not a string"
            name = key if isinstance(key, str) else json.dumps(key)
            if name in names:
                return f"{path} has the keys {names[name]!r} and {key!r}, which JSON stores as one key {name!r}"
            names[name] = key
            if isinstance(key, str) and not valid_unicode(key):
                return f"{path} has a key {key!r} that is not valid Unicode (a lone surrogate)"
            found = _find_bad_value(item, f"{path}.{key}", depth + 1, inside)
            if found:
                return found
        return None
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = _find_bad_value(item, f"{path}[{index}]", depth + 1, inside)
            if found:
                return found
        return None
    if isinstance(value, (int, float)):
        return None
    try:
        converted = _default(value)
    except TypeError:
        return f"{path} is a {type(value).__name__}, which JSON cannot store"
    return _find_bad_value(converted, path, depth, inside)


def finite_number(value: Any) -> bool:
    """Whether ``value`` is a number (not a bool) that a 64-bit float holds, finite.

    >>> finite_number(1.5), finite_number(10**400), finite_number(float("nan")), finite_number(True)
    (True, False, False, False)
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond the float range
        return False


def short_repr(value: Any) -> str:
    """``repr(value)`` for error messages, but a huge int by its size (repr refuses ints
    over 4,300 digits, and a message should not hold 400 of them)."""
    if isinstance(value, int) and value.bit_length() > 1024:
        return f"an integer of {value.bit_length()} bits"
    return repr(value)


def check(value: Any, what: str = "value") -> None:
    """Raise ValidationError naming the first part of ``value`` that is not storable JSON
    (see the module docstring); for documents that come from elsewhere (the service).

    >>> check({"x": [1, 2.5, "a"]})
    >>> check({"x": 10**400}, "results")
    Traceback (most recent call last):
    ...
    schedy.errors.ValidationError: results.x is an integer too large for a JSON number (more than 1.8e308): store it as a string
    """
    problem = _find_bad_value(value, what)
    if problem:
        raise ValidationError(problem)


def to_plain(value: Any, what: str = "value") -> Any:
    """Return ``value`` as plain JSON data (dict/list/str/int/float/bool/None), a copy.

    Raises ValidationError naming the first part of ``value`` that JSON cannot hold.

    >>> to_plain({"step": (1, 2)})
    {'step': [1, 2]}
    """
    try:
        return _copy_plain(value, 0)
    except (_NotPlain, RecursionError):  # tuples, numpy values, NaN, cycles...: as JSON has them
        pass
    check(value, what)  # (outside the except: its error is the user's, not chained to ours)
    return json.loads(dumps(value, what=what))


class _NotPlain(Exception):
    pass


def _copy_plain(value: Any, depth: int) -> Any:
    # A copy of data that is JSON already (the usual results and hyperparameters), a few
    # times cheaper than a round trip through the encoder; anything else is _NotPlain.
    cls = value.__class__
    if cls is str:
        if valid_unicode(value):
            return value
        raise _NotPlain
    if cls is bool or value is None:
        return value
    if cls is int:
        if -_MAX_INT <= value <= _MAX_INT:
            return value
        raise _NotPlain
    if cls is float:
        if value - value == 0.0:  # finite: inf - inf and nan - nan are nan
            return value
        raise _NotPlain
    if depth >= MAX_DEPTH:
        raise _NotPlain
    if cls is dict:
        copy = {}
        for key, item in value.items():
            if key.__class__ is not str or not valid_unicode(key):
                raise _NotPlain
            copy[key] = _copy_plain(item, depth + 1)
        return copy
    if cls is list:
        return [_copy_plain(item, depth + 1) for item in value]
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
        return (_COMPACT if indent is None else _encoder(indent)).encode(value).encode("utf-8")
    except RecursionError:
        raise ValidationError(f"{what} contains itself or is nested too deeply for JSON") from None
    except (ValueError, TypeError, UnicodeEncodeError):
        raise ValidationError(_find_bad_value(value, what) or f"{what} is not valid JSON") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DIGIT_LIMIT = re.compile(r"Exceeds the limit \(\d+ digits\) for integer string conversion: value has (\d+) digits")


def _unique_keys(pairs: list) -> dict:
    doc: dict = {}
    for key, value in pairs:
        if key in doc:
            raise ValueError(f"the key {key!r} is there twice")
        doc[key] = value
    return doc


def loads(data: bytes | str, what: str = "document", unique_keys: bool = False) -> Any:
    """Parse strict JSON (NaN/Infinity refused); errors name ``what``. With ``unique_keys``
    (what a person typed), an object with a key twice is refused too, not read as the
    last one."""
    try:
        return json.loads(data, parse_constant=_reject_constant, object_pairs_hook=_unique_keys if unique_keys else None)
    except (ValueError, UnicodeDecodeError) as e:
        # An integer past Python's digit limit: its message would point at interpreter settings.
        digits = _DIGIT_LIMIT.match(str(e))
        problem = f"an integer of {digits[1]} digits is too large for a JSON number (more than 1.8e308)" if digits else e
        raise CorruptDocumentError(f"{what} is not valid JSON: {problem}") from None
    except RecursionError:
        raise CorruptDocumentError(f"{what} is nested too deeply to read") from None
