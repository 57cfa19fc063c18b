"""The REST resources of the Schedy service, apart from the web framework.

Each handler takes a :class:`Call` (path parameters, query, headers, body) and returns a
:class:`Reply`; :mod:`schedy.server.app` routes requests to them and runs them in a
thread pool, because storage calls block. Handlers call the storage contract and the
core's claim code (:func:`schedy.claims.claim_next`), never a backend directly.

Routes (under ``/api/v1``; ``E`` an experiment name, ``J`` a job id, each one
percent-encoded path segment)::

    GET    health                        liveness (no token needed)
    GET    openapi.json                  the OpenAPI 3.1 document
    GET    experiments                   page of experiments (?cursor=&limit=)
    POST   experiments                   create an experiment
    GET|PUT|DELETE  experiments/E        read, create (If-None-Match: *) or update (If-Match), delete
    GET    experiments/E/jobs            page of jobs (?cursor=&limit=&status=)
    POST   experiments/E/jobs            create a job
    GET|PUT|DELETE  experiments/E/jobs/J read, create or update, delete
    PUT    experiments/E/jobs/J/lease    heartbeat: {"seconds": 60}
    POST   experiments/E/nextjob         claim the next job for a worker
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from .. import jsonio, schema
from ..claims import Holder, claim_next
from ..errors import (
    AuthenticationError,
    CorruptDocumentError,
    NoJobError,
    ResourceExistsError,
    ResourceNotFoundError,
    SchedyError,
    SchedulerError,
    StorageError,
    UnsafeUpdateError,
    ValidationError,
)
from ..experiment import DEFAULT_LEASE_SECONDS, Experiment
from ..names import new_uid, utcnow
from ..objects import EXPERIMENT_SCHEMA, JOB_SCHEMA
from ..storage import ExperimentRef, IndexedStorage, Page, Versioned

log = logging.getLogger("schedy.server")

API_PREFIX = "/api/v1"
MAX_PAGE = 1000
STATUSES = ("QUEUED", "RUNNING", "DONE", "CRASHED", "PRUNED")
_UID_CHARS = frozenset("0123456789abcdef")


@dataclass
class Call:
    """One request, as the handlers see it."""

    params: list[str]
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass
class Reply:
    """One response: status, JSON body (None for no body) and ETag."""

    status: int
    body: Any = None
    etag: str | None = None


def status_of(error: SchedyError) -> int:
    """The HTTP status of a Schedy error."""
    if isinstance(error, (UnsafeUpdateError, ResourceExistsError)):
        return 412
    if isinstance(error, (ResourceNotFoundError, NoJobError)):
        return 404
    if isinstance(error, AuthenticationError):
        return 401
    if isinstance(error, (CorruptDocumentError, SchedulerError)):
        return 500
    if isinstance(error, StorageError):
        return 503
    return 400


def error_body(error_name: str, message: str, status: int) -> dict:
    """An error document (it validates against ``urn:schedy:error``)."""
    return {"error": error_name, "message": message or error_name, "status": status}


def quote_etag(etag: str) -> str:
    """An ETag as an HTTP header value."""
    return f'"{etag}"'


def unquote_etag(value: str | None) -> str | None:
    """The ETag of an If-Match header (quotes and a weak marker removed), or None."""
    if value is None:
        return None
    value = value.strip()
    if value.startswith("W/"):
        value = value[2:]
    etag = value.strip('"')
    if not etag:
        raise ValidationError("If-Match must hold an ETag")  # not read as no condition at all
    if value == "*":
        raise ValidationError("If-Match: * is not taken: give the ETag of the version read (or no If-Match)")
    return etag


class API:
    """The handlers over one opened storage."""

    def __init__(self, storage: IndexedStorage):
        from ..db import SchedyDB

        self.storage = storage
        # Experiments are read as their scheduler's class through a SchedyDB on this storage.
        self.db = SchedyDB(db=storage.url)
        self.db._storage = storage

    # -- helpers
    def _json(self, call: Call, what: str) -> dict:
        try:
            doc = jsonio.loads(call.body, what)
        except CorruptDocumentError as e:
            raise ValidationError(str(e)) from None
        if not isinstance(doc, dict):
            raise ValidationError(f"{what} must be a JSON object")
        return doc

    def _limit(self, call: Call) -> int:
        text = call.query.get("limit", "100")
        if not (text.isascii() and text.isdigit()):  # int() also takes " 10", "1_0" and "١٠"
            raise ValidationError(f"limit must be an integer, not {text!r}")
        limit = int(text)
        if not 1 <= limit <= MAX_PAGE:
            raise ValidationError(f"limit must be between 1 and {MAX_PAGE}")
        return limit

    def _uid(self, call: Call) -> str | None:
        uid = call.query.get("uid")
        if uid is not None and (len(uid) != 32 or not set(uid) <= _UID_CHARS):
            raise ValidationError("uid must be 32 lowercase hex digits")
        return uid

    def _ref(self, call: Call) -> ExperimentRef:
        """The experiment of a job route that reads: the given uid, else the current one."""
        uid = self._uid(call)
        return ExperimentRef(call.params[0], uid) if uid else self._writing(call)[0]

    def _writing(self, call: Call) -> tuple[ExperimentRef, Versioned]:
        """The experiment of a job route that writes, and its document: the current
        experiment of that name (the uid, when given, must be its): jobs of a deleted
        experiment are read-only leftovers, and its scheduler state belongs to the new one."""
        name, uid = call.params[0], self._uid(call)
        current = self.storage.get_experiment(name)
        if uid not in (None, current.doc["uid"]):
            raise ResourceNotFoundError(f"experiment {name!r} was deleted", 404)
        return ExperimentRef(name, current.doc["uid"]), current

    @staticmethod
    def _page(page: Page) -> dict:
        return {
            "items": [{"etag": v.etag, "document": v.doc} for v in page.items],
            "next": page.next,
            "problems": page.problems,
        }

    def _conditions(self, call: Call) -> tuple[str | None, bool]:
        if_match = unquote_etag(call.headers.get("if-match"))
        create = call.headers.get("if-none-match", "").strip() == "*"
        if if_match and create:
            raise ValidationError("send If-Match or If-None-Match, not both")
        if "if-none-match" in call.headers and not create:
            raise ValidationError("If-None-Match must be *")
        return if_match, create

    # -- service
    def health(self, call: Call) -> Reply:
        return Reply(200, {"status": "ok", "time": utcnow()})

    # -- experiments
    def _experiment_doc(self, call: Call, name: str | None, create: bool) -> dict:
        doc = self._json(call, "experiment")
        if name is not None and doc.get("name") != name:
            raise ValidationError(f"the experiment document names {doc.get('name')!r}, not {name!r}")
        if create:
            doc.setdefault("uid", new_uid())
        else:
            # An update keeps the experiment's uid: a new one would cut it off from its jobs.
            current = self.storage.get_experiment(name).doc["uid"]
            if doc.setdefault("uid", current) != current:
                raise ValidationError(f"an update cannot change the experiment's uid (it is {current})")
        schema.check(doc, EXPERIMENT_SCHEMA, f"experiment {doc.get('name')!r}")
        jsonio.check(doc, f"experiment {doc.get('name')!r}")
        try:  # refuse what no worker could read: an unknown scheduler or bad params
            Experiment._from_versioned(self.db, Versioned(doc, ""))
        except CorruptDocumentError as e:
            raise ValidationError(str(e)) from None
        return doc

    def list_experiments(self, call: Call) -> Reply:
        page = self.storage.list_experiments(call.query.get("cursor") or None, self._limit(call))
        return Reply(200, self._page(page))

    def create_experiment(self, call: Call) -> Reply:
        if call.headers.get("if-none-match", "*").strip() != "*":
            raise ValidationError("If-None-Match must be *")
        doc = self._experiment_doc(call, None, create=True)
        return Reply(201, doc, self.storage.create_experiment(doc))

    def get_experiment(self, call: Call) -> Reply:
        stored = self.storage.get_experiment(call.params[0])
        return Reply(200, stored.doc, stored.etag)

    def put_experiment(self, call: Call) -> Reply:
        if_match, create = self._conditions(call)
        doc = self._experiment_doc(call, call.params[0], create)
        if create:
            return Reply(201, doc, self.storage.create_experiment(doc))
        return Reply(200, doc, self.storage.update_experiment(doc, if_match))

    def delete_experiment(self, call: Call) -> Reply:
        if_match, _ = self._conditions(call)
        self.storage.delete_experiment(call.params[0], if_match)
        return Reply(204)

    # -- jobs
    def _job_doc(self, call: Call, job_id: str | None) -> dict:
        doc = self._json(call, "job")
        if job_id is not None and doc.get("id") != job_id:
            raise ValidationError(f"the job document has id {doc.get('id')!r}, not {job_id!r}")
        now = utcnow()
        doc.setdefault("created", now)
        doc.setdefault("updated", now)
        schema.check(doc, JOB_SCHEMA, f"job {doc.get('id')!r}")
        jsonio.check(doc, f"job {doc.get('id')!r}")
        return doc

    def list_jobs(self, call: Call) -> Reply:
        status = call.query.get("status") or None
        if status is not None and status not in STATUSES:
            raise ValidationError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
        limit = self._limit(call)
        page = self.storage.list_jobs(self._ref(call), call.query.get("cursor") or None, limit, status)
        return Reply(200, self._page(page))

    def list_leases(self, call: Call) -> Reply:
        leases = self.storage.leases(self._ref(call))
        return Reply(200, {"leases": [{"job": lease.job_id, "seconds": lease.seconds, "age": lease.age}
                                      for lease in sorted(leases, key=lambda lease: lease.job_id)]})

    def create_job(self, call: Call) -> Reply:
        if call.headers.get("if-none-match", "*").strip() != "*":
            raise ValidationError("If-None-Match must be *")
        ref, experiment = self._writing(call)
        doc = self._job_doc(call, None)
        scheduler = Experiment._from_versioned(self.db, experiment)
        scheduler._check_new_job(self.storage, doc["id"], doc["hyperparameters"])
        reply = Reply(201, doc, self.storage.create_job(ref, doc))
        self._tell_scheduler(experiment, doc, scheduler)
        return reply

    def _tell_scheduler(self, stored: Versioned, doc: dict, experiment: Experiment | None = None) -> None:
        """A finished job written through the service reaches the scheduler of ``stored``
        (its experiment, as read for the write; ``experiment`` when already built from it)
        as it would from a worker; if the scheduler fails, the service logs it and the
        write is still answered as the success it was (as a worker only warns)."""
        if doc["status"] not in ("DONE", "CRASHED", "PRUNED"):
            return
        from ..experiment import SchedulerContext

        try:
            experiment = experiment or Experiment._from_versioned(self.db, stored)
            experiment.on_job_finished(SchedulerContext(experiment, self.storage, doc["id"]), doc)
        # The job is written: an error reply would tell the client that it was not.
        except SchedyError as e:
            log.warning("job %r of experiment %r: the scheduler could not record it: %s", doc["id"], doc["experiment"], e)
        except Exception:  # a bug of the scheduler's: its traceback goes to the log
            log.exception("job %r of experiment %r: the scheduler could not record it", doc["id"], doc["experiment"])

    def get_job(self, call: Call) -> Reply:
        stored = self.storage.get_job(self._ref(call), call.params[1])
        return Reply(200, stored.doc, stored.etag)

    def put_job(self, call: Call) -> Reply:
        if_match, create = self._conditions(call)
        ref, experiment = self._writing(call)
        doc = self._job_doc(call, call.params[1])
        scheduler = None
        if if_match is None:  # a write that may create the job
            scheduler = Experiment._from_versioned(self.db, experiment)
            scheduler._check_new_job(self.storage, doc["id"], doc["hyperparameters"])
        if create:
            reply = Reply(201, doc, self.storage.create_job(ref, doc))
        else:
            reply = Reply(200, doc, self.storage.update_job(ref, doc, if_match))
        self._tell_scheduler(experiment, doc, scheduler)
        return reply

    def delete_job(self, call: Call) -> Reply:
        if_match, _ = self._conditions(call)
        self.storage.delete_job(self._writing(call)[0], call.params[1], if_match)
        return Reply(204)

    def renew_lease(self, call: Call) -> Reply:
        if_match, create = self._conditions(call)
        if create:
            raise ValidationError("a lease renewal takes If-Match, not If-None-Match")
        body = self._json(call, "lease")
        seconds = body.get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds <= 1e9:
            raise ValidationError("lease seconds must be a number > 0")
        ref, _ = self._writing(call)
        job_id = call.params[1]
        current = self.storage.get_job(ref, job_id)  # no lease marker for a job that is not there
        if if_match is not None and current.etag != if_match:
            raise UnsafeUpdateError(f"job {job_id!r} was changed by someone else since it was read", 412)
        # Only the lease the job is under: a marker for any other would be recovered as a lost claim.
        doc = current.doc
        if doc["status"] != "RUNNING" or (doc.get("lease") or {}).get("seconds") != seconds:
            raise UnsafeUpdateError(f"job {job_id!r} is {doc['status']}, not RUNNING under a {seconds:g} s lease", 412)
        self.storage.renew_lease(ref, job_id, float(seconds))
        return Reply(204)

    # -- claims
    def next_job(self, call: Call) -> Reply:
        body = self._json(call, "claim request")
        schema.check(body, CLAIM_SCHEMA, "claim request")
        jsonio.check(body, "claim request")  # before the claim: its job write would refuse the worker
        name = call.params[0]
        experiment = Experiment._from_versioned(self.db, self.storage.get_experiment(name))
        if body.get("uid") not in (None, experiment._uid):
            raise ResourceNotFoundError(f"experiment {name!r} was deleted", 404)
        seconds = body.get("leaseSeconds") or float(experiment.lease_seconds or DEFAULT_LEASE_SECONDS)
        holder = Holder(body["worker"], float(seconds), body.get("claimed") or utcnow())
        if body.get("retry"):
            earlier = self._earlier_claim(experiment._ref(), holder)
            if earlier is not None:
                return Reply(200, earlier.doc, earlier.etag)
        versioned = claim_next(experiment, self.storage, holder)
        return Reply(200, versioned.doc, versioned.etag)

    def _earlier_claim(self, ref: ExperimentRef, holder: Holder) -> Versioned | None:
        # A retried claim whose first attempt was written before the connection broke:
        # find it by its holder (worker id and claim time) among the running jobs.
        for lease in self.storage.leases(ref):
            try:
                current = self.storage.get_job(ref, lease.job_id)
            except ResourceNotFoundError:
                continue
            doc = current.doc
            if (
                doc["status"] == "RUNNING"
                and (doc.get("worker") or {}).get("id") == holder.worker["id"]
                and (doc.get("lease") or {}).get("claimed") == holder.claimed
            ):
                return current
        return None


#: The body of POST .../nextjob.
CLAIM_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "urn:schedy:claim-request",
    "title": "Claim request",
    "description": "Who asks for a job. A retry of a request whose answer was lost sets retry: the service "
    "then returns the job it claimed for the same worker id and claim time, if any.",
    "type": "object",
    "required": ["worker"],
    "additionalProperties": False,
    "properties": {
        "worker": {
            "type": "object",
            "required": ["id", "host", "pid"],
            "additionalProperties": False,
            "properties": {
                "id": {"type": "string", "minLength": 1},
                "host": {"type": "string"},
                "pid": {"type": "integer"},
            },
        },
        "leaseSeconds": {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 1e9},
        "claimed": {"$ref": "urn:schedy:common#/$defs/timestamp"},
        "uid": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
        "retry": {"type": "boolean"},
    },
}

#: (method, path pattern, handler name); "{}" matches one path segment.
ROUTES: list[tuple[str, tuple[str, ...], str]] = [
    ("GET", ("health",), "health"),
    ("GET", ("experiments",), "list_experiments"),
    ("POST", ("experiments",), "create_experiment"),
    ("GET", ("experiments", "{}"), "get_experiment"),
    ("PUT", ("experiments", "{}"), "put_experiment"),
    ("DELETE", ("experiments", "{}"), "delete_experiment"),
    ("GET", ("experiments", "{}", "jobs"), "list_jobs"),
    ("POST", ("experiments", "{}", "jobs"), "create_job"),
    ("GET", ("experiments", "{}", "jobs", "{}"), "get_job"),
    ("PUT", ("experiments", "{}", "jobs", "{}"), "put_job"),
    ("DELETE", ("experiments", "{}", "jobs", "{}"), "delete_job"),
    ("PUT", ("experiments", "{}", "jobs", "{}", "lease"), "renew_lease"),
    ("GET", ("experiments", "{}", "leases"), "list_leases"),
    ("POST", ("experiments", "{}", "nextjob"), "next_job"),
]


def match(method: str, segments: list[str]) -> tuple[str | None, list[str], list[str]]:
    """(handler name or None, path parameters, methods allowed on this path).

    >>> match("GET", ["experiments", "a/b", "jobs", ".."])
    ('get_job', ['a/b', '..'], ['GET', 'PUT', 'DELETE'])
    """
    allowed, found, found_params = [], None, []
    for route_method, pattern, name in ROUTES:
        if len(pattern) != len(segments):
            continue
        params = []
        for part, segment in zip(pattern, segments):
            if part == "{}":
                params.append(segment)
            elif part != segment:
                break
        else:
            allowed.append(route_method)
            if route_method == method:
                found, found_params = name, params
    return found, found_params, allowed


def call_handler(api: API, name: str, call: Call) -> Reply:
    """Run a handler, turning Schedy errors into error replies."""
    handler: Callable[[Call], Reply] = getattr(api, name)
    try:
        return handler(call)
    except SchedyError as e:
        status = status_of(e)
        return Reply(status, error_body(type(e).__name__, " ".join(str(e).split()), status))


schema.register(CLAIM_SCHEMA)
