"""The wire format's JSON Schemas and the checks made with them.

Schemas are JSON Schema (draft 2020-12) files shipped as package data in
``schedy/schemas/``; scheduler plugins add the schema of their params. Documents are
checked on every write and every read, so the check is on every claim's path: each
schema is compiled once into nested closures, with the keywords the schemas use
(``KEYWORDS``), and a location is spelled out only when a check fails. The
``jsonschema`` package costs more to import than a whole ``schedy push`` and checks
several times slower, so it is kept for the tests, which prove that both agree on the
shipped schemas.

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
#: id(schema node) -> (the node, its compiled check); the node is kept so that its id stays its own.
_compiled: dict[int, tuple[Any, Any]] = {}
_core_loaded = False


def _load_core() -> None:
    global _core_loaded
    if not _core_loaded:
        for name in CORE_SCHEMAS:
            register(json.loads((SCHEMA_DIR / f"{name}.json").read_text("utf-8")))
        _core_loaded = True


def register(schema: dict) -> None:
    """Make a schema (with an ``$id``) available to ``check`` and ``$ref``."""
    old = _registry.get(schema["$id"])
    if old is not None and old is not schema and old != schema:
        _compiled.clear()  # compiled checks may have inlined the old one through a $ref
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
    checker = _compile(schema, schema)
    problem = checker(instance) if checker is not None else None
    if problem:
        raise ValidationError(f"{what}: {_at(problem[0])} {problem[1]}")


# A compiled check takes a value and returns None when it fits, else a Problem: the path
# of what is wrong relative to the value checked (".a[2].b", "" for the value itself) and
# what is wrong with it. A check that can never fail compiles to None.
Problem = tuple[str, str]
Checker = Callable[[Any], "Problem | None"]


def _compile(schema: Any, root: dict) -> Checker | None:
    if schema is True:
        return None
    if schema is False:
        return _not_allowed
    cached = _compiled.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    _compiling.add(id(schema))
    try:
        type_check, checks = None, []
        for keyword, rule in schema.items():
            compiler = _COMPILERS.get(keyword)
            if compiler is not None:
                compiled = compiler(rule, root, schema)
                if compiled is None:
                    continue
                if keyword == "type":
                    type_check = compiled
                checks.append(compiled)
    finally:
        _compiling.discard(id(schema))
    guard = _type_guard(schema)
    if guard is not None and len(checks) > 1 and checks[0] is type_check:
        checker = _guarded(guard, type_check, checks[1:])
    else:
        checker = _chain(checks)
    _compiled[id(schema)] = (schema, checker)
    return checker


#: ids of the schema nodes being compiled: a $ref to one of them must wait for its first use.
_compiling: set[int] = set()


def _guarded(classes: tuple[type, ...], type_check: Checker, others: list[Checker]) -> Checker:
    """The checks of a schema whose first keyword is a "type" of exact classes (string,
    object, array, null): a value of such a class skips the type check, which it passes;
    any other value has its type checked first, as in keyword order."""
    rest = _chain(others)

    def guarded(value):
        if value.__class__ not in classes:
            problem = type_check(value)
            if problem:
                return problem
        return rest(value)

    return guarded


def _chain(checks: list[Checker]) -> Checker | None:
    if not checks:
        return None
    if len(checks) == 1:
        return checks[0]

    def chained(value):
        for one in checks:
            problem = one(value)
            if problem:
                return problem
        return None

    return chained


def _not_allowed(value: Any) -> Problem:
    return ("", "is not allowed")


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
# Classes that settle a type at once; anything else goes through _TYPES (bool is an int, 1.0 an integer).
_EXACT_TYPES = {"object": (dict,), "array": (list,), "string": (str,), "null": (type(None),)}


def _at(path: str) -> str:
    return path.lstrip(".") or "the document"


def _json_type(value: Any) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _TYPES[name](value):
            return name
    return type(value).__name__


def _c_ref(rule, root, _s):
    # The target's own check, unless the target is being compiled (a schema that refers to
    # itself) or not registered yet: then it is compiled on first use.
    try:
        target, target_root = _resolve(rule, root)
    except (KeyError, IndexError, TypeError):  # reported when the check is used
        target = None
    if target is not None and id(target) not in _compiling:
        return _compile(target, target_root)
    compiled: list = []

    def ref(value):
        if not compiled:
            target, target_root = _resolve(rule, root)
            compiled.append(_compile(target, target_root))
        return compiled[0](value) if compiled[0] is not None else None

    return ref


def _c_type(rule, _r, _s):
    names = [rule] if isinstance(rule, str) else list(rule)
    words = " or ".join(names)
    classes = tuple(cls for name in names for cls in _EXACT_TYPES.get(name, ()))
    tests = [_TYPES[name] for name in names]

    def typed(value):
        if value.__class__ in classes:
            return None
        for test in tests:
            if test(value):
                return None
        return ("", f"must be {words}, not {_json_type(value)}")

    return typed


def _c_enum(rule, _r, _s):
    message = f"must be one of {', '.join(json.dumps(o) for o in rule)}, not "
    if all(isinstance(option, str) for option in rule):
        allowed = frozenset(rule)

        def strings(value):
            if isinstance(value, str) and value in allowed:
                return None
            return ("", message + json.dumps(value))

        return strings

    def enum(value):
        for option in rule:
            if _same(value, option):
                return None
        return ("", message + json.dumps(value))

    return enum


def _c_const(rule, _r, _s):
    def const(value):
        return None if _same(value, rule) else ("", f"must be {json.dumps(rule)}")

    return const


def _number_rule(op: Callable[[float, float], bool], words: str):
    def compiler(rule, _r, _s):
        def bound(value):
            if isinstance(value, (int, float)) and value.__class__ is not bool and not op(value, rule):
                return ("", f"must be {words} {rule}")
            return None

        return bound

    return compiler


def _c_min_length(rule, _r, _s):
    message = "must not be empty" if rule == 1 else f"is shorter than {rule} characters"

    def min_length(value):
        return ("", message) if isinstance(value, str) and len(value) < rule else None

    return min_length


def _c_max_length(rule, _r, _s):
    def max_length(value):
        if isinstance(value, str) and len(value) > rule:
            return ("", f"is longer than {rule} characters")
        return None

    return max_length


def _c_pattern(rule, _r, _s):
    search = re.compile(rule).search

    def pattern(value):
        if isinstance(value, str) and not search(value):
            return ("", f"has a form that is not allowed ({json.dumps(value)[:60]})")
        return None

    return pattern


def _c_items(rule, root, _s):
    item_check = _compile(rule, root)
    if item_check is None:
        return None

    def items(value):
        if isinstance(value, list):
            for index, item in enumerate(value):
                problem = item_check(item)
                if problem:
                    return (f"[{index}]{problem[0]}", problem[1])
        return None

    return items


def _c_min_items(rule, _r, _s):
    def min_items(value):
        if isinstance(value, list) and len(value) < rule:
            return ("", f"must have at least {rule} item{'s' * (rule != 1)}")
        return None

    return min_items


def _c_max_items(rule, _r, _s):
    def max_items(value):
        if isinstance(value, list) and len(value) > rule:
            return ("", f"must have at most {rule} items")
        return None

    return max_items


def _c_properties(rule, root, _s):
    checks = [(key, compiled) for key, sub in rule.items() if (compiled := _compile(sub, root)) is not None]
    if not checks:
        return None

    def properties(value):
        if isinstance(value, dict):
            for key, one in checks:
                if key in value:
                    problem = one(value[key])
                    if problem:
                        return (f".{key}{problem[0]}", problem[1])
        return None

    return properties


def _c_required(rule, _r, _s):
    def required(value):
        if isinstance(value, dict):
            missing = [key for key in rule if key not in value]
            if missing:
                return ("", f"lacks {', '.join(missing)}")
        return None

    return required


def _c_additional(rule, root, schema):
    known = frozenset(schema.get("properties", {}))
    extra = None if rule is False else _compile(rule, root)
    if rule is not False and extra is None:
        return None

    def additional(value):
        if isinstance(value, dict):
            for key in value:
                if key not in known:
                    if extra is None:
                        return ("", f"has an unknown field {key!r}")
                    problem = extra(value[key])
                    if problem:
                        return (f".{key}{problem[0]}", problem[1])
        return None

    return additional


def _c_property_names(rule, root, _s):
    name_check = _compile(rule, root)
    if name_check is None:
        return None

    def property_names(value):
        if isinstance(value, dict):
            for key in value:
                if name_check(key):
                    return ("", f"has a field name that is not allowed: {key!r}")
        return None

    return property_names


def _c_min_properties(rule, _r, _s):
    def min_properties(value):
        if isinstance(value, dict) and len(value) < rule:
            return ("", f"must have at least {rule} field{'s' * (rule != 1)}")
        return None

    return min_properties


def _c_max_properties(rule, _r, _s):
    def max_properties(value):
        if isinstance(value, dict) and len(value) > rule:
            return ("", f"must have at most {rule} field{'s' * (rule != 1)}")
        return None

    return max_properties


def _c_all_of(rule, root, _s):
    return _chain([compiled for sub in rule if (compiled := _compile(sub, root)) is not None])


def _branches(rule, root) -> list[Checker]:
    return [_compile(sub, root) or _fits for sub in rule]


def _fits(value: Any) -> None:
    return None


def _c_any_of(rule, root, _s):
    branches = _branches(rule, root)

    def any_of(value):
        problem = None
        for branch in branches:
            problem = branch(value)
            if not problem:
                return None
        return problem  # the last branch's, as the reference checker reports it

    return any_of


def _length(problem: Problem) -> int:
    return len(_at(problem[0])) + 1 + len(problem[1])


def _type_guard(schema: Any) -> tuple[type, ...] | None:
    """Classes outside of which ``schema`` surely fails (from its "type"), or None."""
    if not isinstance(schema, dict) or "type" not in schema:
        return None
    names = [schema["type"]] if isinstance(schema["type"], str) else schema["type"]
    if not all(name in _EXACT_TYPES for name in names):
        return None  # numbers: ints, floats, their subclasses, integral floats...
    return tuple(cls for name in names for cls in _EXACT_TYPES[name])


def _c_one_of(rule, root, _s):
    branches = _branches(rule, root)
    guarded = list(zip([_type_guard(sub) for sub in rule], branches))

    def one_of(value):
        # Count the fits first, skipping branches of another type (most oneOfs here are
        # "null or an object"); spell out why only when the value fits none.
        passing = 0
        for guard, branch in guarded:
            if (guard is None or isinstance(value, guard)) and branch(value) is None:
                passing += 1
        if passing == 1:
            return None
        if passing == 0:
            return min((branch(value) for branch in branches), key=_length)  # the closest miss
        return ("", "fits more than one of the allowed forms")

    return one_of


def _c_not(rule, root, _s):
    inner = _compile(rule, root) or _fits

    def not_(value):
        return ("", "has a form that is not allowed") if inner(value) is None else None

    return not_


_COMPILERS = {
    "$ref": _c_ref,
    "type": _c_type,
    "enum": _c_enum,
    "const": _c_const,
    "minimum": _number_rule(lambda v, r: v >= r, ">="),
    "maximum": _number_rule(lambda v, r: v <= r, "<="),
    "exclusiveMinimum": _number_rule(lambda v, r: v > r, ">"),
    "exclusiveMaximum": _number_rule(lambda v, r: v < r, "<"),
    "minLength": _c_min_length,
    "maxLength": _c_max_length,
    "pattern": _c_pattern,
    "items": _c_items,
    "minItems": _c_min_items,
    "maxItems": _c_max_items,
    "properties": _c_properties,
    "required": _c_required,
    "additionalProperties": _c_additional,
    "propertyNames": _c_property_names,
    "minProperties": _c_min_properties,
    "maxProperties": _c_max_properties,
    "allOf": _c_all_of,
    "anyOf": _c_any_of,
    "oneOf": _c_one_of,
    "not": _c_not,
}
assert set(_COMPILERS) == KEYWORDS
