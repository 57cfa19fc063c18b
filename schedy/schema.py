"""The wire format's JSON Schemas and the checks made with them.

Schemas are JSON Schema (draft 2020-12) files shipped as package data in
``schedy/schemas/``; scheduler plugins add the schema of their params. Documents are
checked on every write and every read. The check interprets the schemas directly,
with the keywords they use (``KEYWORDS``): the ``jsonschema`` package costs more to
import than a whole ``schedy push``, so it is kept for the tests, which prove that both
agree on the shipped schemas.

Example:
    >>> check({"normal": {"mean": 0, "std": -1}}, "urn:schedy:distribution", "x")
    Traceback (most recent call last):
    ...
    schedy.errors.ValidationError: x: normal.std must be > 0
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable

from .errors import ValidationError

SCHEMA_DIR = Path(__file__).parent / "schemas"
CORE_SCHEMAS = ("common", "distribution", "experiment", "job", "page", "error")

#: Keywords the checker applies; a shipped schema may use no other (a test enforces it).
KEYWORDS = frozenset(
    """$ref type enum const minimum maximum exclusiveMinimum exclusiveMaximum
    minLength maxLength pattern items minItems maxItems properties required
    additionalProperties propertyNames minProperties maxProperties allOf anyOf oneOf not""".split()
)
#: Keywords that describe and never constrain.
ANNOTATIONS = frozenset(
    "$schema $id $defs $comment title description default examples deprecated".split()
)

_registry: dict[str, Any] = {}
_core_loaded = False


def _load_core() -> None:
    global _core_loaded
    if not _core_loaded:
        for name in CORE_SCHEMAS:
            register(json.loads((SCHEMA_DIR / f"{name}.json").read_text("utf-8")))
        _core_loaded = True


def register(schema: dict) -> None:
    """Make a schema (with an ``$id``) available to ``check`` and ``$ref``."""
    _registry[schema["$id"]] = schema


def get(schema_id: str) -> dict:
    """Return a registered schema by ``$id``."""
    _load_core()
    try:
        return _registry[schema_id]
    except KeyError:
        raise KeyError(f"no schema {schema_id!r}") from None


def all_schemas() -> dict[str, dict]:
    """Every registered schema, by ``$id``."""
    _load_core()
    return dict(_registry)


def check(instance: Any, schema_id: str | dict, what: str) -> None:
    """Raise ValidationError("<what>: <where>: <problem>") unless ``instance`` fits.

    ``schema_id`` is a registered schema's ``$id``, or a schema (which gets registered).
    """
    if isinstance(schema_id, dict):
        _load_core()
        register(schema_id)
        schema = schema_id
    else:
        schema = get(schema_id)
    problem = _check(instance, schema, "", schema)
    if problem:
        raise ValidationError(f"{what}: {problem}")


def _resolve(ref: str, root: dict) -> tuple[Any, dict]:
    base, _, pointer = ref.partition("#")
    target_root = get(base) if base else root
    node: Any = target_root
    for part in filter(None, pointer.split("/")):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node, target_root


def _same(a: Any, b: Any) -> bool:
    # JSON equality: True is not 1, 1.0 is 1.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool))
    or (isinstance(v, float) and v.is_integer()),
}


def _at(path: str) -> str:
    return path.lstrip(".") or "the document"


def _check(value: Any, schema: Any, path: str, root: dict) -> str | None:
    if schema is True:
        return None
    if schema is False:
        return f"{_at(path)} is not allowed"
    for keyword, rule in schema.items():
        problem = _KEYWORD_CHECKS.get(keyword, _ignore)(value, rule, path, root, schema)
        if problem:
            return problem
    return None


def _ignore(*_: Any) -> None:
    return None


def _k_ref(value, rule, path, root, _s):
    target, target_root = _resolve(rule, root)
    return _check(value, target, path, target_root)


def _k_type(value, rule, path, _r, _s):
    names = [rule] if isinstance(rule, str) else rule
    if not any(_TYPES[name](value) for name in names):
        return f"{_at(path)} must be {' or '.join(names)}, not {_json_type(value)}"
    return None


def _json_type(value: Any) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _TYPES[name](value):
            return name
    return type(value).__name__


def _k_enum(value, rule, path, _r, _s):
    if not any(_same(value, option) for option in rule):
        return f"{_at(path)} must be one of {', '.join(json.dumps(o) for o in rule)}, not {json.dumps(value)}"
    return None


def _k_const(value, rule, path, _r, _s):
    if not _same(value, rule):
        return f"{_at(path)} must be {json.dumps(rule)}"
    return None


def _number_rule(op: Callable[[float, float], bool], words: str):
    def checker(value, rule, path, _r, _s):
        if _TYPES["number"](value) and not op(value, rule):
            return f"{_at(path)} must be {words} {rule}"
        return None

    return checker


def _k_min_length(value, rule, path, _r, _s):
    if isinstance(value, str) and len(value) < rule:
        return f"{_at(path)} must not be empty" if rule == 1 else f"{_at(path)} is shorter than {rule} characters"
    return None


def _k_max_length(value, rule, path, _r, _s):
    if isinstance(value, str) and len(value) > rule:
        return f"{_at(path)} is longer than {rule} characters"
    return None


_patterns: dict[str, re.Pattern] = {}


def _k_pattern(value, rule, path, _r, _s):
    if isinstance(value, str):
        compiled = _patterns.get(rule) or _patterns.setdefault(rule, re.compile(rule))
        if not compiled.search(value):
            return f"{_at(path)} has a form that is not allowed ({json.dumps(value)[:60]})"
    return None


def _k_items(value, rule, path, root, _s):
    if isinstance(value, list):
        for index, item in enumerate(value):
            problem = _check(item, rule, f"{path}[{index}]", root)
            if problem:
                return problem
    return None


def _k_min_items(value, rule, path, _r, _s):
    if isinstance(value, list) and len(value) < rule:
        return f"{_at(path)} must have at least {rule} item{'s' * (rule != 1)}"
    return None


def _k_max_items(value, rule, path, _r, _s):
    if isinstance(value, list) and len(value) > rule:
        return f"{_at(path)} must have at most {rule} items"
    return None


def _k_properties(value, rule, path, root, _s):
    if isinstance(value, dict):
        for key, subschema in rule.items():
            if key in value:
                problem = _check(value[key], subschema, f"{path}.{key}", root)
                if problem:
                    return problem
    return None


def _k_required(value, rule, path, _r, _s):
    if isinstance(value, dict):
        missing = [key for key in rule if key not in value]
        if missing:
            return f"{_at(path)} lacks {', '.join(missing)}"
    return None


def _k_additional(value, rule, path, root, schema):
    if isinstance(value, dict):
        known = schema.get("properties", {})
        for key in value:
            if key not in known:
                if rule is False:
                    return f"{_at(path)} has an unknown field {key!r}"
                problem = _check(value[key], rule, f"{path}.{key}", root)
                if problem:
                    return problem
    return None


def _k_property_names(value, rule, path, root, _s):
    if isinstance(value, dict):
        for key in value:
            if _check(key, rule, "", root):
                return f"{_at(path)} has a field name that is not allowed: {key!r}"
    return None


def _k_min_properties(value, rule, path, _r, _s):
    if isinstance(value, dict) and len(value) < rule:
        return f"{_at(path)} must have at least {rule} field{'s' * (rule != 1)}"
    return None


def _k_max_properties(value, rule, path, _r, _s):
    if isinstance(value, dict) and len(value) > rule:
        return f"{_at(path)} must have at most {rule} field{'s' * (rule != 1)}"
    return None


def _k_all_of(value, rule, path, root, _s):
    for subschema in rule:
        problem = _check(value, subschema, path, root)
        if problem:
            return problem
    return None


def _k_any_of(value, rule, path, root, _s):
    problems = [_check(value, subschema, path, root) for subschema in rule]
    if all(problems):
        return problems[-1]
    return None


def _k_one_of(value, rule, path, root, _s):
    problems = [_check(value, subschema, path, root) for subschema in rule]
    passing = problems.count(None)
    if passing == 1:
        return None
    if passing == 0:
        return min(problems, key=len)
    return f"{_at(path)} fits more than one of the allowed forms"


def _k_not(value, rule, path, root, _s):
    if _check(value, rule, path, root) is None:
        return f"{_at(path)} has a form that is not allowed"
    return None


_KEYWORD_CHECKS = {
    "$ref": _k_ref,
    "type": _k_type,
    "enum": _k_enum,
    "const": _k_const,
    "minimum": _number_rule(lambda v, r: v >= r, ">="),
    "maximum": _number_rule(lambda v, r: v <= r, "<="),
    "exclusiveMinimum": _number_rule(lambda v, r: v > r, ">"),
    "exclusiveMaximum": _number_rule(lambda v, r: v < r, "<"),
    "minLength": _k_min_length,
    "maxLength": _k_max_length,
    "pattern": _k_pattern,
    "items": _k_items,
    "minItems": _k_min_items,
    "maxItems": _k_max_items,
    "properties": _k_properties,
    "required": _k_required,
    "additionalProperties": _k_additional,
    "propertyNames": _k_property_names,
    "minProperties": _k_min_properties,
    "maxProperties": _k_max_properties,
    "allOf": _k_all_of,
    "anyOf": _k_any_of,
    "oneOf": _k_one_of,
    "not": _k_not,
}
assert set(_KEYWORD_CHECKS) == KEYWORDS
