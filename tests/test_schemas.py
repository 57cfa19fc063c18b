"""The shipped JSON Schemas: valid 2020-12 schemas, used only with keywords the fast
checker applies, and judged the same by the checker and by jsonschema."""

from __future__ import annotations

import json

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

import schedy
from schedy import schema
from schedy.errors import ValidationError
from schedy.plugins import registry


def all_schemas():
    registry()  # plugins register their params schemas
    return schema.all_schemas()


def _keywords(node, found):
    if isinstance(node, dict):
        for key, value in node.items():
            found.add(key)
            if key in ("properties", "$defs"):
                for sub in value.values():
                    _keywords(sub, found)
            elif key not in ("enum", "const", "default", "examples"):
                _keywords(value, found)
    elif isinstance(node, list):
        for item in node:
            _keywords(item, found)


@pytest.mark.parametrize("schema_id", sorted(all_schemas()))
def test_schema_is_valid_2020_12(schema_id):
    jsonschema.Draft202012Validator.check_schema(all_schemas()[schema_id])


@pytest.mark.parametrize("schema_id", sorted(all_schemas()))
def test_schema_uses_only_keywords_the_checker_applies(schema_id):
    found: set[str] = set()
    _keywords(all_schemas()[schema_id], found)
    assert found <= schema.KEYWORDS | schema.ANNOTATIONS


def _reference_validator(schema_id):
    # Schemas registered by test plugins may not name their dialect: 2020-12 is the one Schedy uses.
    resources = [(sid, Resource.from_contents(s, default_specification=DRAFT202012)) for sid, s in all_schemas().items()]
    return jsonschema.Draft202012Validator(all_schemas()[schema_id], registry=Registry().with_resources(resources))


def _agree(instance, schema_id):
    ours = True
    try:
        schema.check(instance, schema_id, "doc")
    except ValidationError:
        ours = False
    theirs = _reference_validator(schema_id).is_valid(instance)
    assert ours == theirs, (instance, schema_id)
    return ours


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(-3, 3, allow_nan=False) | st.sampled_from(["", "x", "QUEUED", "DONE", "RUNNING"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(["low", "high", "mean", "std", "values", "weights", "value", "x"]), children, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(["uniform", "loguniform", "intuniform", "normal", "choice", "constant", "other"]),
    params=json_values,
)
def test_checker_agrees_with_jsonschema_on_distributions(name, params):
    _agree({name: params}, "urn:schedy:distribution")


job_fields = {
    "id": st.sampled_from(["a", "", "ok/..", "\x00"]),
    "experiment": st.sampled_from(["E", ""]),
    "status": st.sampled_from(["QUEUED", "RUNNING", "DONE", "CRASHED", "PRUNED", "done"]),
    "hyperparameters": json_values,
    "results": json_values,
    "attempt": st.sampled_from([0, 1, 2, 1.0, 1.5, "1"]),
    "worker": st.sampled_from([None, {"id": "w", "host": "h", "pid": 1}, {"id": "w"}, "w"]),
    "lease": st.sampled_from([None, {"seconds": 5}, {"seconds": 0}, {"seconds": 5, "claimed": "2026-01-01T00:00:00.000000Z"}, {"seconds": 5, "claimed": "yesterday"}]),
    "history": st.lists(st.fixed_dictionaries({"step": st.sampled_from([1, 2.5, "x"])}), max_size=2),
    "error": st.sampled_from([None, "boom", 3]),
    "created": st.sampled_from(["2026-01-01T00:00:00.000000Z", "2026-01-01 00:00"]),
    "schemaVersion": st.sampled_from([1, 2]),
}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.fixed_dictionaries({}, optional=job_fields))
def test_checker_agrees_with_jsonschema_on_jobs(doc):
    _agree(doc, "urn:schedy:job")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "name": st.sampled_from(["E", "", "x" * 201, "tab\there"]),
            "status": st.sampled_from(["RUNNING", "DONE", "QUEUED"]),
            "scheduler": st.sampled_from([{"Manual": None}, {}, {"A": 1, "B": 2}, {"": 1}]),
            "uid": st.sampled_from(["a" * 32, "xyz"]),
            "settings": st.sampled_from([{}, {"leaseSeconds": 5}, {"leaseSeconds": 0}, {"maxAttempts": 0}, {"other": 1}]),
            "extra": st.just(1),
        },
    )
)
def test_checker_agrees_with_jsonschema_on_experiments(doc):
    _agree(doc, "urn:schedy:experiment")


@pytest.mark.parametrize(
    ("node", "value", "problem"),
    [
        ({"type": "string", "enum": ["a"]}, 5, "must be string, not integer"),
        ({"enum": ["a"], "type": "string"}, 5, "must be one of"),
        ({"type": "string", "minLength": 2}, "x", "is shorter than 2"),
        ({"type": "object", "required": ["a"]}, [], "must be object, not array"),
        ({"type": "object", "required": ["a"]}, {}, "lacks a"),
        ({"type": ["string", "null"], "minLength": 1}, "", "must not be empty"),
    ],
)
def test_first_problem_follows_keyword_order(node, value, problem):
    # Typed nodes skip their type check for values of the exact class; the problem reported
    # must still be the one the keywords find first, in their order.
    with pytest.raises(ValidationError, match=problem):
        schema.check(value, {"$id": f"urn:test:order:{json.dumps(node, sort_keys=False)}", **node}, "v")


def test_references_resolve_eagerly_and_to_themselves():
    tree = {
        "$id": "urn:test:tree",
        "type": "object",
        "properties": {"name": {"$ref": "#/$defs/name"}, "children": {"type": "array", "items": {"$ref": "#"}}},
        "$defs": {"name": {"type": "string", "minLength": 1}},
    }
    schema.check({"name": "a", "children": [{"name": "b", "children": []}]}, tree, "tree")
    with pytest.raises(ValidationError, match=r"tree: children\[0\]\.children\[0\]\.name must not be empty"):
        schema.check({"name": "a", "children": [{"name": "b", "children": [{"name": ""}]}]}, tree, "tree")


def test_deeply_nested_schemas_are_checked_whole():
    # The generated check inlines nested nodes up to a depth, then calls a function of their
    # own: Python refuses more than 20 nested blocks in one function.
    node: dict = {"type": "integer", "minimum": 0}
    value: object = -1
    for level in range(40):
        node = {"type": "object", "properties": {f"l{level}": {"type": "array", "items": node}}}
        value = {f"l{level}": [value]}
    deep = {"$id": "urn:test:deep", **node}
    location = "".join(f"l{level}[0]." for level in reversed(range(40)))[:-1]
    with pytest.raises(ValidationError) as raised:
        schema.check(value, deep, "deep")
    assert str(raised.value) == f"deep: {location} must be >= 0"
    assert jsonschema.Draft202012Validator(deep).is_valid(value) is False
    fixed = json.loads(json.dumps(value).replace("-1", "1"))
    schema.check(fixed, deep, "deep")
    assert jsonschema.Draft202012Validator(deep).is_valid(fixed)


def test_original_map_definitions_are_read():
    """Documents in the original client's wire format are valid and keep their meaning."""
    experiment = {
        "name": "MinimizeRandom",
        "status": "RUNNING",
        "scheduler": {"RandomSearch": {"x": {"normal": {"mean": 0, "std": 5}}, "y": {"normal": {"mean": 0, "std": 2}}}},
    }
    schema.check(experiment, "urn:schedy:experiment", "experiment")
    params = experiment["scheduler"]["RandomSearch"]
    exp = registry().scheduler("RandomSearch").from_params("MinimizeRandom", "RUNNING", params)
    assert exp.distributions == {"x": schedy.random.Normal(0, 5), "y": schedy.random.Normal(0, 2)}
    assert exp.get_params() == params
    job = {"id": "ExhnhQ", "experiment": "MinimizeManual", "status": "DONE", "hyperparameters": {"x": 1, "y": 2}, "results": {"result": 5}}
    schema.check(job, "urn:schedy:job", "job")


@pytest.mark.parametrize(
    "dist",
    [
        schedy.random.Uniform(2.1, 5),
        schedy.random.LogUniform(1e-6, 0.1),
        schedy.random.IntUniform(1, 9),
        schedy.random.IntLogUniform(1, 1024),
        schedy.random.Normal(0, 5),
        schedy.random.Choice(range(1, 10)),
        schedy.random.Choice([2, "a", True, [1], {"k": None}], weights=[1, 2, 3, 4, 5]),
        schedy.random.Constant({"nested": [1, 2]}),
    ],
)
def test_distributions_round_trip_through_the_wire_format(dist):
    wire = json.loads(json.dumps(dist.to_wire()))
    _agree(wire, "urn:schedy:distribution")
    assert schedy.random.from_wire(wire) == dist


def test_error_schema_matches_service_errors():
    assert _agree({"error": "UnsafeUpdateError", "message": "changed", "status": 412}, "urn:schedy:error")
    assert not _agree({"error": "X", "message": "m", "status": 200}, "urn:schedy:error")


def test_stored_documents_of_the_original_format_are_used(tmp_path, capsys):
    """An experiment document with only name, status and scheduler (no uid, no
    schemaVersion) and a job of the original format, stored by hand, are read by the
    API and the CLI; the experiment's first write adds what it lacked."""
    from schedy.cli.app import run
    from schedy.names import encode_segment, original_uid
    from schedy_backends.files import FileObjectStore

    store = FileObjectStore(tmp_path)
    experiment = {"name": "Old", "status": "RUNNING",
                  "scheduler": {"RandomSearch": {"x": {"uniform": {"low": 0, "high": 1}}}}}
    store.put("experiments/Old", json.dumps(experiment).encode(), if_none_match=True)
    job = {"id": "ExhnhQ", "experiment": "Old", "status": "DONE", "hyperparameters": {"x": 0.5},
           "results": {"result": 5}}
    store.put(f"jobs/{encode_segment('Old')}/{original_uid('Old')}/{encode_segment('ExhnhQ')}",
              json.dumps(job).encode(), if_none_match=True)

    db = schedy.SchedyDB(db=str(tmp_path))
    assert [e.name for e in db.get_experiments()] == ["Old"]
    exp = db.get_experiment("Old")
    assert exp.get_job("ExhnhQ").results == {"result": 5}
    with exp.next_job() as fresh:
        fresh.results["result"] = 1
    assert sorted(j.job_id for j in exp.all_jobs()) == sorted(["ExhnhQ", fresh.job_id])

    assert run(["--db", str(tmp_path), "list", "Old"]) == 0
    assert set(capsys.readouterr().out.split()) == {"ExhnhQ", fresh.job_id}

    exp.status = schedy.Experiment.DONE
    exp.push_updates()
    stored = json.loads(store.get("experiments/Old").data)
    assert stored["uid"] == original_uid("Old") and stored["schemaVersion"] == 1
    assert db.get_experiment("Old").get_job("ExhnhQ").status == "DONE"

    assert run(["--db", str(tmp_path), "rm", "-f", "Old"]) == 0
    assert list(db.get_experiments()) == [] and not list((tmp_path / "jobs").rglob("*.json"))


@pytest.mark.parametrize("stamp", ["2026-99-99T99:99:99Z", "0000-00-00T00:00:00Z", "2026-01-31T24:00:00Z",
                                   "2026-01-31T12:60:00Z", "2026-01-31 12:00:00Z", "2026-01-31T12:00:00"])
def test_timestamps_out_of_range_are_refused(stamp):
    job = {"id": "j", "experiment": "E", "status": "QUEUED", "hyperparameters": {}, "results": {}, "created": stamp}
    with pytest.raises(ValidationError, match="created"):
        schema.check(job, "urn:schedy:job", "job")
    schema.check({**job, "created": "2026-12-31T23:59:60.123456Z"}, "urn:schedy:job", "job")


@pytest.mark.parametrize("field, value", [("id", "q\n"), ("experiment", "E\n"), ("created", "2026-01-31T12:00:00Z\n")])
def test_a_value_ending_in_a_newline_does_not_fit_a_pattern(field, value):
    # Python's "$" matches before a final newline; JSON Schema's does not.
    job = {"id": "j", "experiment": "E", "status": "QUEUED", "hyperparameters": {}, "results": {}, field: value}
    with pytest.raises(ValidationError, match=field):
        schema.check(job, "urn:schedy:job", "job")
    experiment = {"name": "E", "status": "RUNNING", "scheduler": {"Manual": None}, "uid": "a" * 32 + "\n"}
    with pytest.raises(ValidationError, match="uid"):
        schema.check(experiment, "urn:schedy:experiment", "experiment")
