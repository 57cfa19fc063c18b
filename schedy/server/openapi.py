"""The OpenAPI 3.1 document of the service, built from the shipped JSON Schemas.

OpenAPI 3.1 speaks JSON Schema 2020-12, so the wire-format schemas are used as they
are; only their ``$ref`` targets are rewritten from ``urn:schedy:...`` ids to
``#/components/schemas/...`` and their ``$defs`` lifted into components.

Example:
    >>> doc = build()
    >>> doc["openapi"], doc["components"]["schemas"]["Job"]["properties"]["id"]
    ('3.1.0', {'$ref': '#/components/schemas/Common_name'})
"""

from __future__ import annotations

import copy
from typing import Any

from .. import __version__, schema
from .api import API_PREFIX, CLAIM_SCHEMA, MAX_PAGE, STATUSES

#: Shipped schema id -> component name.
COMPONENTS = {
    "urn:schedy:common": "Common",
    "urn:schedy:distribution": "Distribution",
    "urn:schedy:experiment": "Experiment",
    "urn:schedy:job": "Job",
    "urn:schedy:leases": "Leases",
    "urn:schedy:error": "Error",
    "urn:schedy:claim-request": "ClaimRequest",
}


def _ref_target(ref: str, owner: str) -> str:
    base, _, fragment = ref.partition("#")
    name = COMPONENTS[base] if base else owner
    if fragment.startswith("/$defs/"):
        return f"#/components/schemas/{name}_{fragment[len('/$defs/'):]}"
    return f"#/components/schemas/{name}"


def _rewrite(node: Any, owner: str) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in ("$id", "$schema", "$defs"):
                continue
            out[key] = _ref_target(value, owner) if key == "$ref" else _rewrite(value, owner)
        return out
    if isinstance(node, list):
        return [_rewrite(item, owner) for item in node]
    return node


def _components() -> dict:
    shipped = schema.all_schemas()
    shipped.setdefault(CLAIM_SCHEMA["$id"], CLAIM_SCHEMA)
    components: dict[str, Any] = {}
    for schema_id, name in COMPONENTS.items():
        source = copy.deepcopy(shipped[schema_id])
        for def_name, definition in source.get("$defs", {}).items():
            components[f"{name}_{def_name}"] = _rewrite(definition, name)
        if schema_id != "urn:schedy:common":
            components[name] = _rewrite(source, name)
    for kind in ("Experiment", "Job"):
        components[f"{kind}Page"] = {
            "type": "object",
            "description": "One page of a listing; pass next as cursor to get the next page (null on the last).",
            "required": ["items", "next"],
            "additionalProperties": False,
            "properties": {
                "items": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["etag", "document"],
                        "additionalProperties": False,
                        "properties": {"etag": {"type": "string"}, "document": {"$ref": f"#/components/schemas/{kind}"}},
                    },
                },
                "next": {"type": ["string", "null"]},
                "problems": {"type": "array", "items": {"type": "string"}},
            },
        }
    components["Lease"] = {
        "type": "object",
        "required": ["seconds"],
        "properties": {"seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 1e9}},
    }
    components["Health"] = {"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}}
    return components


def _json(ref: str) -> dict:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}


def _ok(status: str, ref: str, description: str, etag: bool = True) -> dict:
    response: dict[str, Any] = {"description": description, "content": _json(ref)}
    if etag:
        response["headers"] = {"ETag": {"description": "Version of the document.", "schema": {"type": "string"}}}
    return {status: response, "default": {"description": "An error.", "content": _json("Error")}}


def _no_content(description: str) -> dict:
    return {"204": {"description": description}, "default": {"description": "An error.", "content": _json("Error")}}


NAME = {"$ref": "#/components/schemas/Common_name"}
EXPERIMENT = {"name": "experiment", "in": "path", "required": True, "schema": NAME,
              "description": "Experiment name (any Unicode but control characters, percent-encoded)."}
JOB = {"name": "job", "in": "path", "required": True, "schema": NAME, "description": "Job id."}
UID = {"name": "uid", "in": "query", "required": False, "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
       "description": "The experiment's uid: refers to this incarnation of the name (looked up when absent)."}
IF_MATCH = {"name": "If-Match", "in": "header", "required": False, "schema": {"type": "string"},
            "description": "Write only if the stored document still has this ETag (else 412)."}
IF_NONE_MATCH = {"name": "If-None-Match", "in": "header", "required": False, "schema": {"const": "*"},
                 "description": "*: create only (else 412)."}
PAGING = [
    {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"}},
    {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}},
]


def build() -> dict:
    """The OpenAPI document served at ``/api/v1/openapi.json``."""
    body = lambda ref: {"required": True, "content": _json(ref)}  # noqa: E731
    paths = {
        "/health": {"get": {"operationId": "health", "security": [], "summary": "Liveness.",
                            "responses": _ok("200", "Health", "The service is up.", etag=False)}},
        "/experiments": {
            "get": {"operationId": "listExperiments", "parameters": PAGING,
                    "responses": _ok("200", "ExperimentPage", "A page of experiments.", etag=False)},
            "post": {"operationId": "createExperiment", "requestBody": body("Experiment"),
                     "responses": _ok("201", "Experiment", "Created.")},
        },
        "/experiments/{experiment}": {
            "parameters": [EXPERIMENT],
            "get": {"operationId": "getExperiment", "responses": _ok("200", "Experiment", "The experiment.")},
            "put": {"operationId": "putExperiment", "parameters": [IF_MATCH, IF_NONE_MATCH],
                    "requestBody": body("Experiment"),
                    "responses": {**_ok("200", "Experiment", "Updated."), **{"201": _ok("201", "Experiment", "Created.")["201"]}}},
            "delete": {"operationId": "deleteExperiment", "parameters": [IF_MATCH],
                       "responses": _no_content("Deleted, with its jobs.")},
        },
        "/experiments/{experiment}/jobs": {
            "parameters": [EXPERIMENT, UID],
            "get": {"operationId": "listJobs",
                    "parameters": PAGING + [{"name": "status", "in": "query", "required": False,
                                             "schema": {"enum": list(STATUSES)}}],
                    "responses": _ok("200", "JobPage", "A page of jobs, in a stable order (by id for ids of "
                                     "ASCII letters, digits, - and _).", etag=False)},
            "post": {"operationId": "createJob", "requestBody": body("Job"), "responses": _ok("201", "Job", "Created.")},
        },
        "/experiments/{experiment}/jobs/{job}": {
            "parameters": [EXPERIMENT, JOB, UID],
            "get": {"operationId": "getJob", "responses": _ok("200", "Job", "The job.")},
            "put": {"operationId": "putJob", "parameters": [IF_MATCH, IF_NONE_MATCH], "requestBody": body("Job"),
                    "responses": {**_ok("200", "Job", "Updated."), **{"201": _ok("201", "Job", "Created.")["201"]}}},
            "delete": {"operationId": "deleteJob", "parameters": [IF_MATCH], "responses": _no_content("Deleted.")},
        },
        "/experiments/{experiment}/jobs/{job}/lease": {
            "parameters": [EXPERIMENT, JOB, UID],
            "put": {"operationId": "renewLease", "parameters": [IF_MATCH], "requestBody": body("Lease"),
                    "summary": "Renew the lease of a RUNNING job under a lease of these seconds (else 412).",
                    "responses": _no_content("Renewed.")},
        },
        "/experiments/{experiment}/leases": {
            "parameters": [EXPERIMENT, UID],
            "get": {"operationId": "listLeases",
                    "summary": "The leases of the running jobs, with the age of each one's last renewal.",
                    "responses": _ok("200", "Leases", "The leases, by job id.", etag=False)},
        },
        "/experiments/{experiment}/nextjob": {
            "parameters": [EXPERIMENT],
            "post": {"operationId": "nextJob", "requestBody": body("ClaimRequest"),
                     "summary": "Claim the next job (queued first, then the scheduler's proposal); 404 NoJobError if none.",
                     "responses": _ok("200", "Job", "The claimed job, RUNNING for this worker.")},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Schedy service", "version": __version__,
                 "description": "Experiments and jobs with ETags and conditional writes; errors are Error documents."},
        "servers": [{"url": API_PREFIX}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": _components(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
