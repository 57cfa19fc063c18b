"""The wire format's JSON Schemas and the checks made with them.

Schemas are JSON Schema (draft 2020-12) files shipped as package data in
``schedy/schemas/``; scheduler plugins add the schema of their params. Documents are
checked on every write and every read, so the check is on every claim's path: each
schema is compiled once into the source of a Python function (nested nodes and ``$ref``
targets inlined), with the keywords the schemas use (``KEYWORDS``), and a location is
spelled out only when a check fails. The
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

from .errors import ConfigError, ValidationError

SCHEMA_DIR = Path(__file__).parent / "schemas"
CORE_SCHEMAS = ("common", "distribution", "experiment", "job", "page", "leases", "error")
_CORE_IDS = frozenset(f"urn:schedy:{name}" for name in CORE_SCHEMAS)

#: Keywords the checker applies; a shipped schema may use no other (a test enforces it).
KEYWORDS = frozenset(
    """$ref type enum const minimum maximum exclusiveMinimum exclusiveMaximum
    minLength maxLength pattern items minItems maxItems properties required
    additionalProperties propertyNames minProperties maxProperties allOf anyOf oneOf not""".split()
)
#: Keywords that describe and never constrain (``format`` too, as draft 2020-12 has it by default).
ANNOTATIONS = frozenset(
    """$schema $id $defs $comment $anchor $vocabulary title description default examples deprecated
    format readOnly writeOnly contentMediaType contentEncoding""".split()
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
    """Make a schema (with an ``$id``) available to ``check`` and ``$ref``; the wire
    format's own schemas cannot be replaced."""
    if not isinstance(schema, dict) or not isinstance(schema.get("$id"), str):
        raise ConfigError("a schema to register must be a JSON object with an $id")
    if schema["$id"] in _CORE_IDS and _core_loaded and _registry.get(schema["$id"]) != schema:
        raise ConfigError(f"the schema {schema['$id']!r} is the wire format's own and cannot be replaced")
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
    try:
        checker = _compile(schema, schema)
    except Exception as e:  # a plugin's schema that the checker cannot apply
        raise ConfigError(f"{what}: its schema {schema.get('$id')!r} cannot be applied: {type(e).__name__}: {e}") from None
    try:
        problem = checker(instance) if checker is not None else None
    except KeyError as e:  # a $ref resolved on first use, to a schema nobody registered
        raise ConfigError(f"{what}: its schema {schema.get('$id')!r} cannot be applied: {e.args[0] if e.args else e}") from None
    if problem:
        raise ValidationError(f"{what}: {_at(problem[0])} {problem[1]}")


def compile_check(schema: dict) -> None:
    """Compile ``schema`` as ``check`` would, without registering it: raises if the checker
    cannot apply it (a type name it does not know, a ``$ref`` to nowhere...)."""
    _load_core()
    _Generator().compile(schema, schema)


# A compiled check takes a value and returns None when it fits, else a Problem: the path
# of what is wrong relative to the value checked (".a[2].b", "" for the value itself) and
# what is wrong with it. A check that can never fail compiles to None.
Problem = tuple[str, str]
Checker = Callable[[Any], "Problem | None"]

#: Nodes nested deeper than this are checked by a function of their own (Python limits nesting).
_MAX_INLINE_DEPTH = 10


def _compile(schema: Any, root: dict) -> Checker | None:
    """The check of ``schema``, a node of ``root``: Python source generated for the whole
    tree under it and compiled once. Nested nodes and ``$ref`` targets are inlined, so a
    value that fits runs through a few plain statements per keyword, with no call per
    node; each keyword's statements return the problem it finds, in keyword order."""
    if schema is True:
        return None
    cached = _compiled.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    checker = _Generator().compile(schema, root)
    _compiled[id(schema)] = (schema, checker)
    return checker


_MISSING = object()


class _Generator:
    """Writes the source of one compiled check: a function per node that needs one (the
    root, branches of anyOf/oneOf/not/propertyNames, nodes that refer to themselves)."""

    def __init__(self) -> None:
        self.namespace: dict[str, Any] = {
            "_json_type": _json_type, "_same": _same, "_dumps": json.dumps, "_length": _length, "_MISSING": _MISSING,
        }
        self.functions: dict[int, str] = {}  # id(node) -> its function's name
        self.empty: set[str] = set()  # functions that find no problem in any value
        self.sources: list[str] = []
        self.inlining: set[int] = set()  # nodes being inlined: a $ref back to one calls its function
        self.count = 0

    def compile(self, node: Any, root: dict) -> Checker | None:
        name = self.function(node, root)
        if name in self.empty:
            return None
        exec(compile("\n\n".join(self.sources), "<schema check>", "exec"), self.namespace)
        return self.namespace[name]

    def fresh(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def const(self, value: Any) -> str:
        name = self.fresh("k")
        self.namespace[name] = value
        return name

    def function(self, node: Any, root: dict) -> str:
        """The name of a function that checks ``node``, written if not yet."""
        name = self.functions.get(id(node))
        if name is None:
            name = self.functions[id(node)] = self.fresh("check")
            outer, self.inlining = self.inlining, set()
            try:
                body = self.block(node, root, "v", [], 1)
            finally:
                self.inlining = outer
            if not body:
                self.empty.add(name)
            self.sources.append("\n".join([f"def {name}(v):", *body, "    return None"]))
        return name

    def block(self, node: Any, root: dict, x: str, path: list[str], depth: int) -> list[str]:
        """Statements (indented ``depth`` levels) that return the first problem of the value
        in variable ``x`` against ``node``; ``path`` holds expressions of its location."""
        if node is True:
            return []
        if node is False:
            return [self.fail(depth, path, repr("is not allowed"))]
        if id(node) in self.inlining or depth > _MAX_INLINE_DEPTH:
            return self.call(self.function(node, root), x, path, depth)
        self.inlining.add(id(node))
        try:
            lines: list[str] = []
            for keyword, rule in node.items():
                emit = _EMITTERS.get(keyword)
                if emit is not None:
                    lines += emit(self, rule, root, node, x, path, depth)
                elif keyword not in ANNOTATIONS:
                    # Skipping it would accept what the schema's author meant to refuse (or refuse,
                    # through additionalProperties, what patternProperties would take).
                    raise ConfigError(f"the keyword {keyword!r} is not one the checker applies "
                                      f"(those are: {', '.join(sorted(KEYWORDS))})")
            return lines
        finally:
            self.inlining.discard(id(node))

    @staticmethod
    def fail(depth: int, path: list[str], message: str) -> str:
        return f"{'    ' * depth}return ({' + '.join(path) or repr('')}, {message})"

    def call(self, function: str, x: str, path: list[str], depth: int) -> list[str]:
        """Statements returning the problem ``function`` finds in ``x``, located under ``path``."""
        problem, pad = self.fresh("p"), "    " * depth
        return [f"{pad}{problem} = {function}({x})", f"{pad}if {problem}:", self.fail(depth + 1, [*path, f"{problem}[0]"], f"{problem}[1]")]

    def when(self, depth: int, condition: str, path: list[str], message: str) -> list[str]:
        """Statements returning ``message`` at ``path`` if ``condition`` holds."""
        return [f"{'    ' * depth}if {condition}:", self.fail(depth + 1, path, message)]


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


#: JSON types as Python expressions of ``{x}``, for the generated checks and ``_TYPES``.
_TYPE_TESTS = {
    "object": "isinstance({x}, dict)",
    "array": "isinstance({x}, list)",
    "string": "isinstance({x}, str)",
    "boolean": "isinstance({x}, bool)",
    "null": "{x} is None",
    "number": "(isinstance({x}, (int, float)) and not isinstance({x}, bool))",
    "integer": "((isinstance({x}, int) and not isinstance({x}, bool)) or (isinstance({x}, float) and {x}.is_integer()))",
}
_TYPES: dict[str, Callable[[Any], bool]] = {
    name: eval(f"lambda x: {test.format(x='x')}") for name, test in _TYPE_TESTS.items()  # noqa: S307 (our own source)
}
# Classes that settle a type at once; anything else goes through _TYPE_TESTS (bool is an int, 1.0 an integer).
_EXACT_TYPES = {"object": (dict,), "array": (list,), "string": (str,), "null": (type(None),)}


def _at(path: str) -> str:
    return path.lstrip(".") or "the document"


def _json_type(value: Any) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _TYPES[name](value):
            return name
    return type(value).__name__


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


def _lazy_ref(rule: str, root: dict) -> Checker:
    """A ``$ref`` whose target is not registered yet (or does not exist): resolved, and
    compiled, when first used; an error then if it still cannot be."""
    compiled: list = []

    def ref(value):
        if not compiled:
            target, target_root = _resolve(rule, root)
            compiled.append(_compile(target, target_root))
        return compiled[0](value) if compiled[0] is not None else None

    return ref


# Emitters: (generator, rule, root, node, x, path, depth) -> the keyword's statements.


def _e_ref(g: _Generator, rule, root, _node, x, path, depth):
    try:
        target, target_root = _resolve(rule, root)
    except (KeyError, IndexError, TypeError):
        return g.call(g.const(_lazy_ref(rule, root)), x, path, depth)
    return g.block(target, target_root, x, path, depth)


def _e_type(g: _Generator, rule, _root, _node, x, path, depth):
    names = [rule] if isinstance(rule, str) else list(rule)
    classes = tuple(cls for name in names for cls in _EXACT_TYPES.get(name, ()))
    tests = ([f"{x}.__class__ in {g.const(classes)}"] if classes else []) + [_TYPE_TESTS[n].format(x=x) for n in names]
    message = f"{g.const('must be ' + ' or '.join(names) + ', not ')} + _json_type({x})"
    return g.when(depth, f"not ({' or '.join(tests)})", path, message)


def _e_enum(g: _Generator, rule, _root, _node, x, path, depth):
    options = ", ".join(json.dumps(option) for option in rule)
    message = f"{g.const('must be one of ' + options + ', not ')} + _dumps({x})"
    if all(isinstance(option, str) for option in rule):
        return g.when(depth, f"not (isinstance({x}, str) and {x} in {g.const(frozenset(rule))})", path, message)
    return g.when(depth, f"not any(_same({x}, o) for o in {g.const(list(rule))})", path, message)


def _e_const(g: _Generator, rule, _root, _node, x, path, depth):
    return g.when(depth, f"not _same({x}, {g.const(rule)})", path, repr(f"must be {json.dumps(rule)}"))


def _bound(op: str):
    # ``op`` is both the comparison the value must pass and how the message says it.
    def emit(g: _Generator, rule, _root, _node, x, path, depth):
        fails = f"isinstance({x}, (int, float)) and {x}.__class__ is not bool and not ({x} {op} {g.const(rule)})"
        return g.when(depth, fails, path, repr(f"must be {op} {rule}"))

    return emit


def _sized(kind: str, compare: str, message: Callable[[int], str]):
    def emit(g: _Generator, rule, _root, _node, x, path, depth):
        return g.when(depth, f"isinstance({x}, {kind}) and len({x}) {compare} {g.const(rule)}", path, repr(message(rule)))

    return emit


def _e_pattern(g: _Generator, rule, _root, _node, x, path, depth):
    message = f"'has a form that is not allowed (' + _dumps({x})[:60] + ')'"
    return g.when(depth, f"isinstance({x}, str) and not {g.const(ecma_regex(rule).search)}({x})", path, message)


def ecma_regex(pattern: str) -> re.Pattern:
    """A schema's ``pattern`` compiled to mean what JSON Schema (ECMA-262) says: ``$`` only
    at the very end. Python's ``$`` also matches before a final newline, which let a name
    or a timestamp ending in one through (and into a store's keys).

    Example:
        >>> bool(ecma_regex("^[a-z]+$").search("name\\n"))
        False
    """
    out, escaped, in_class = [], False, False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "$":
            char = r"\Z"
        out.append(char)
    return re.compile("".join(out))


def _e_items(g: _Generator, rule, root, _node, x, path, depth):
    index, item = g.fresh("i"), g.fresh("y")
    inner = g.block(rule, root, item, [*path, f"f'[{{{index}}}]'"], depth + 2)
    if not inner:
        return []
    pad = "    " * depth
    return [f"{pad}if isinstance({x}, list):", f"{pad}    for {index}, {item} in enumerate({x}):", *inner]


def _e_properties(g: _Generator, rule, root, _node, x, path, depth):
    lines: list[str] = []
    pad = "    " * (depth + 1)
    for key, sub in rule.items():
        value = g.fresh("y")
        inner = g.block(sub, root, value, [*path, repr("." + key)], depth + 2)
        if inner:
            lines += [f"{pad}{value} = {x}.get({g.const(key)}, _MISSING)", f"{pad}if {value} is not _MISSING:", *inner]
    return [f"{'    ' * depth}if isinstance({x}, dict):", *lines] if lines else []


def _e_required(g: _Generator, rule, _root, _node, x, path, depth):
    missing = f"', '.join([k for k in {g.const(tuple(rule))} if k not in {x}])"
    return g.when(depth, f"isinstance({x}, dict) and not {g.const(frozenset(rule))} <= {x}.keys()", path, f"'lacks ' + {missing}")


def _e_additional(g: _Generator, rule, root, node, x, path, depth):
    known, key, value = g.const(frozenset(node.get("properties", {}))), g.fresh("n"), g.fresh("y")
    pad = "    " * depth
    if rule is False:
        return [
            f"{pad}if isinstance({x}, dict) and not {x}.keys() <= {known}:",
            f"{pad}    for {key} in {x}:",
            *g.when(depth + 2, f"{key} not in {known}", path, f"'has an unknown field ' + repr({key})"),
        ]
    inner = g.block(rule, root, value, [*path, f"'.' + {key}"], depth + 3)
    if not inner:
        return []
    return [f"{pad}if isinstance({x}, dict):", f"{pad}    for {key}, {value} in {x}.items():", f"{pad}        if {key} not in {known}:", *inner]


def _e_property_names(g: _Generator, rule, root, _node, x, path, depth):
    if rule is True:
        return []
    key, pad = g.fresh("n"), "    " * depth
    return [
        f"{pad}if isinstance({x}, dict):",
        f"{pad}    for {key} in {x}:",
        *g.when(depth + 2, f"{g.function(rule, root)}({key})", path, f"'has a field name that is not allowed: ' + repr({key})"),
    ]


def _e_all_of(g: _Generator, rule, root, _node, x, path, depth):
    return [line for sub in rule for line in g.block(sub, root, x, path, depth)]


def _e_any_of(g: _Generator, rule, root, _node, x, path, depth):
    if not rule:
        return []
    branch, problem, pad = g.fresh("f"), g.fresh("p"), "    " * depth
    branches = ", ".join(g.function(sub, root) for sub in rule)
    return [
        f"{pad}for {branch} in ({branches},):",
        f"{pad}    {problem} = {branch}({x})",
        f"{pad}    if not {problem}:",
        f"{pad}        break",
        f"{pad}else:",  # the last branch's problem, as the reference checker reports it
        g.fail(depth + 1, [*path, f"{problem}[0]"], f"{problem}[1]"),
    ]


def _e_one_of(g: _Generator, rule, root, _node, x, path, depth):
    # Count the fits first, skipping branches of another type (most oneOfs here are "null
    # or an object"); spell out why only when the value fits none: the closest miss.
    count, problem, pad = g.fresh("c"), g.fresh("p"), "    " * depth
    names = [g.function(sub, root) for sub in rule]
    lines = [f"{pad}{count} = 0"]
    for sub, name in zip(rule, names):
        guard = _type_guard(sub)
        fits = f"{name}({x}) is None" if guard is None else f"isinstance({x}, {g.const(guard)}) and {name}({x}) is None"
        lines += [f"{pad}if {fits}:", f"{pad}    {count} += 1"]
    closest = f"min([{', '.join(f'{name}({x})' for name in names)}], key=_length)"
    return lines + [
        f"{pad}if {count} != 1:",
        f"{pad}    {problem} = {closest} if {count} == 0 else ('', 'fits more than one of the allowed forms')",
        g.fail(depth + 1, [*path, f"{problem}[0]"], f"{problem}[1]"),
    ]


def _e_not(g: _Generator, rule, root, _node, x, path, depth):
    return g.when(depth, f"{g.function(rule, root)}({x}) is None", path, repr("has a form that is not allowed"))


def _plural(word: str):
    return lambda n: f"{word}{'s' * (n != 1)}"


_EMITTERS = {
    "$ref": _e_ref,
    "type": _e_type,
    "enum": _e_enum,
    "const": _e_const,
    "minimum": _bound(">="),
    "maximum": _bound("<="),
    "exclusiveMinimum": _bound(">"),
    "exclusiveMaximum": _bound("<"),
    "minLength": _sized("str", "<", lambda n: "must not be empty" if n == 1 else f"is shorter than {n} characters"),
    "maxLength": _sized("str", ">", lambda n: f"is longer than {n} characters"),
    "pattern": _e_pattern,
    "items": _e_items,
    "minItems": _sized("list", "<", lambda n: f"must have at least {n} {_plural('item')(n)}"),
    "maxItems": _sized("list", ">", lambda n: f"must have at most {n} items"),
    "properties": _e_properties,
    "required": _e_required,
    "additionalProperties": _e_additional,
    "propertyNames": _e_property_names,
    "minProperties": _sized("dict", "<", lambda n: f"must have at least {n} {_plural('field')(n)}"),
    "maxProperties": _sized("dict", ">", lambda n: f"must have at most {n} {_plural('field')(n)}"),
    "allOf": _e_all_of,
    "anyOf": _e_any_of,
    "oneOf": _e_one_of,
    "not": _e_not,
}
assert set(_EMITTERS) == KEYWORDS
