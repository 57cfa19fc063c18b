"""Values typed on the command line: ``NAME VALUE`` pairs whose values are JSON.

A value is read as JSON (``1``, ``2.5``, ``true``, ``'"text"'``, ``'["stuff", true, 6]'``,
``'{"key": 42}'``). A bare word that is not JSON, such as ``adam``, is taken as a
string, so ``-p optimizer adam`` works without quoting. Text that starts like a JSON
string, array or object (``"``, ``[``, ``{``) must be valid JSON: a typo there is an
error, not a surprising string. So is a number JSON cannot hold, in any spelling Python
prints or reads (``NaN``, ``nan``, ``inf``, ``-Infinity``): a script that printed a NaN
loss must not leave the string ``"nan"`` among numbers. Quote it (``'"nan"'``) to store
the string.

Example:
    >>> parse_pairs(["x", "1", "optimizer", "adam", "layers", "[64, 32]"], "hyperparameter")
    {'x': 1, 'optimizer': 'adam', 'layers': [64, 32]}
"""

from __future__ import annotations

import math
from typing import Any

from .. import jsonio
from ..errors import CorruptDocumentError, ValidationError
from ..names import check_name
from .render import clipped

_JSON_OPENERS = ('"', "[", "{")


def parse_value(text: str, what: str = "value") -> Any:
    """One value: JSON, or a bare word taken as a string.

    >>> parse_value("-1e-3"), parse_value("adam"), parse_value('"1"')
    (-0.001, 'adam', '1')
    """
    try:
        return jsonio.loads(text, what, unique_keys=True)
    except CorruptDocumentError as e:
        if text.lstrip().startswith(_JSON_OPENERS):
            raise ValidationError(f"{what} is not valid JSON: {clipped(text)} ({str(e).split(': ', 1)[-1]})") from None
        if _non_finite(text):
            shown = clipped(text.strip())
            quoted = f" ('\"{shown}\"')" if shown == text.strip() else ""
            raise ValidationError(
                f"{what} is {shown}, a number JSON cannot hold: give null, or quote it{quoted} to store the text"
            ) from None
        return text


def _non_finite(text: str) -> bool:
    try:
        return not math.isfinite(float(text))
    except ValueError:
        return False


def parse_pairs(words: list[str], kind: str) -> dict[str, Any]:
    """``[name, value, name, value, ...]`` as a dict; ``kind`` names them in errors."""
    if len(words) % 2:
        raise ValidationError(
            f"{kind}s come in NAME VALUE pairs; got {len(words)} word(s): {' '.join(words)}"
        )
    pairs: dict[str, Any] = {}
    for name, text in zip(words[0::2], words[1::2]):
        check_name(f"{kind} name", name)  # as experiment names and job ids: a name is typed and printed
        if name in pairs:
            raise ValidationError(f"{kind} {name!r} is given twice")
        pairs[name] = parse_value(text, f"{kind} {name!r}")
    return pairs
