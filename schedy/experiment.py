"""Experiments: a name, a status and a scheduler that decides what runs next.

Each scheduler is a subclass of :class:`Experiment` registered by a plugin (built-in:
``ManualSearch``, ``RandomSearch``, ``PopulationBasedTraining``). A subclass names
itself (``SCHEDULER_NAME``, ``CLI_NAME``), turns its params to and from the wire format
(``get_params`` / ``from_params``, checked against ``PARAMS_SCHEMA``) and decides
(``suggest``). Claiming and leases live in :mod:`schedy.claims`, written once for all.

Example:
    >>> import schedy
    >>> db = schedy.SchedyDB(config_override={"db": getfixture("tmp_path")})
    >>> exp = schedy.ManualSearch("TestExperiment")
    >>> db.add_experiment(exp)
    >>> job = exp.add_job(hyperparameters={"x": 1})
    >>> exp.next_job().job_id == job.job_id
    True
"""

from __future__ import annotations

import contextlib
import hashlib
import random as _random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Iterator

from . import jsonio, schema
from .errors import (
    ConfigError,
    CorruptDocumentError,
    ResourceNotFoundError,
    SchedulerError,
    SchedyError,
    UnsafeUpdateError,
    ValidationError,
)
from .names import check_name, new_uid, suffixed_id, utcnow
from .storage import ExperimentRef, Versioned

if TYPE_CHECKING:
    from .db import SchedyDB
    from .job import Job
    from .storage import IndexedStorage

DEFAULT_LEASE_SECONDS = 60.0
DEFAULT_MAX_ATTEMPTS = 3


def plugin_failure(scheduler: "type[Experiment] | Experiment", hook: str, error: BaseException) -> str:
    """How the failure of a scheduler's own code is told: scheduler, plugin, hook, error.

    Example:
        >>> from schedy import ManualSearch
        >>> print(plugin_failure(ManualSearch("E"), "suggest", KeyError("x")))
        the scheduler Manual (plugin 'schedy_schedulers.manual') failed in suggest: KeyError: 'x'
    """
    cls = scheduler if isinstance(scheduler, type) else type(scheduler)
    plugin = getattr(cls, "_schedy_plugin", None)
    by = f" (plugin {plugin!r})" if plugin else ""
    return f"the scheduler {cls.SCHEDULER_NAME}{by} failed in {hook}: {type(error).__name__}: {error}"


@contextlib.contextmanager
def scheduler_code(scheduler: "type[Experiment] | Experiment", hook: str) -> Iterator[None]:
    """Run a scheduler plugin's ``hook``: an error that is not a SchedyError (the plugin's
    bug) becomes a SchedulerError naming scheduler, plugin and hook, so that a user knows
    whose code failed; a SchedyError it raises on purpose goes through as it is."""
    try:
        yield
    except SchedyError:
        raise
    except Exception as e:
        raise SchedulerError(plugin_failure(scheduler, hook, e)) from e


@dataclass
class Proposal:
    """What a scheduler proposes to run next.

    ``job_id`` may be deterministic (e.g. from a member and generation): creating a job
    is create-only, so when two workers propose the same id only one job is made.
    """

    hyperparameters: dict
    job_id: str | None = None
    results: dict = field(default_factory=dict)
    lineage: dict = field(default_factory=dict)
    seed: int | None = None
    status: str = "RUNNING"
    attempt: int = 1


class SchedulerContext:
    """What a scheduler may read when it decides: the experiment's jobs and its own state.

    ``new_job_id`` is the id a fresh random job will get; ``rng(job_id)`` is the random
    generator seeded for that job, so a run can be reproduced.
    """

    def __init__(self, experiment: "Experiment", storage: "IndexedStorage", new_job_id: str):
        self.experiment = experiment
        self.storage = storage
        self.ref = experiment._ref()
        self.new_job_id = new_job_id

    def seed(self, job_id: str) -> int:
        """The seed of ``job_id``: derived from the experiment's uid and the job id."""
        digest = hashlib.sha256(f"{self.ref.uid}/{job_id}".encode()).digest()
        return int.from_bytes(digest[:6], "big")

    def rng(self, job_id: str) -> _random.Random:
        """A random generator seeded for ``job_id``."""
        return _random.Random(self.seed(job_id))

    def jobs(self, status: str | None = None) -> Iterator[Versioned]:
        """Every readable job of the experiment (pages through storage: costs grow with history)."""
        for item in self.storage.iter_jobs(self.ref, status):
            if not isinstance(item, str):
                yield item


class Experiment:
    """Base class of all experiments (one subclass per scheduler).

    Args:
        name: unique name of the experiment (1-200 characters, any Unicode but control characters).
        status: ``Experiment.RUNNING`` or ``Experiment.DONE`` (done or paused: no job is handed out).

    Settings (attributes, stored with the experiment): ``lease_seconds`` (how long a
    claimed job stays with a worker without a heartbeat; ``SCHEDY_LEASE_SECONDS``
    overrides it per worker) and ``max_attempts`` (how often a job whose worker died is
    tried in all).
    """

    #: Status of a running experiment.
    RUNNING: ClassVar[str] = "RUNNING"
    #: Status of a completed (or paused) experiment.
    DONE: ClassVar[str] = "DONE"
    STATUSES: ClassVar[tuple[str, ...]] = ("RUNNING", "DONE")

    #: Wire name of the scheduler, e.g. "RandomSearch".
    SCHEDULER_NAME: ClassVar[str] = ""
    #: Other wire names read as this scheduler.
    SCHEDULER_ALIASES: ClassVar[tuple[str, ...]] = ()
    #: Name in ``schedy add NAME <CLI_NAME> ...``.
    CLI_NAME: ClassVar[str | None] = None
    #: Usage of the CLI arguments after ``CLI_NAME``.
    CLI_USAGE: ClassVar[str] = ""
    #: JSON Schema (with an ``$id``) of ``get_params()``.
    PARAMS_SCHEMA: ClassVar[dict | None] = None

    def __init__(self, name: str, status: str = RUNNING):
        self.name = check_name("experiment name", name)
        if status not in self.STATUSES:
            raise ValidationError(f"experiment status must be one of {', '.join(self.STATUSES)}, not {status!r}")
        self.status = status
        self.lease_seconds: float | None = None
        self.max_attempts: int = DEFAULT_MAX_ATTEMPTS
        self._db: SchedyDB | None = None
        self._uid: str | None = None
        self._etag: str | None = None
        self._created: str | None = None
        self._stored_state: tuple | None = None  # _state() as last read or written

    # -- what a scheduler plugin provides
    def get_params(self) -> Any:
        """The scheduler's params in the wire format (JSON)."""
        return None

    @classmethod
    def from_params(cls, name: str, status: str, params: Any) -> "Experiment":
        """Make the experiment from wire-format params (already checked against PARAMS_SCHEMA)."""
        return cls(name, status=status)

    @classmethod
    def from_cli(cls, name: str, status: str, args: list[str]) -> "Experiment":
        """Make the experiment from ``schedy add NAME CLI_NAME ARGS...``."""
        if args:
            raise ValidationError(f"{cls.CLI_NAME} takes no arguments, got {' '.join(args)}")
        return cls(name, status=status)

    def suggest(self, ctx: SchedulerContext) -> Proposal | None:
        """Propose a new job when the queue is empty, or None (then ``next_job`` raises NoJobError)."""
        return None

    def check_hyperparameters(self, hyperparameters: dict) -> None:
        """Raise ValidationError if jobs of this experiment cannot have ``hyperparameters``."""

    def check_job_id(self, job_id: str) -> None:
        """Raise ValidationError if a hand-made job of this experiment cannot have ``job_id``:
        a scheduler that names its own jobs deterministically keeps those names to itself."""

    def _check_hand_made(self, job_id: str, hyperparameters: dict) -> None:
        """``check_job_id`` and ``check_hyperparameters``: what a job not made by the scheduler needs."""
        with scheduler_code(self, "check_job_id"):
            self.check_job_id(job_id)
        with scheduler_code(self, "check_hyperparameters"):
            self.check_hyperparameters(hyperparameters)

    def _check_new_job(self, storage: "IndexedStorage", job_id: str, hyperparameters: dict) -> None:
        """``_check_hand_made`` for a job a write may create, whoever writes it (a client, or
        the service for a raw REST call). A job stored under that id already is no new job:
        overwriting it (or refusing to) is the write's to decide."""
        try:
            self._check_hand_made(job_id, hyperparameters)
            return
        except ValidationError as e:
            refused = e
        try:
            storage.get_job(self._ref(), job_id)
        except ResourceNotFoundError:
            raise refused from None
        except CorruptDocumentError:
            pass  # stored, if unreadable

    def retry(self, ctx: SchedulerContext, crashed: dict) -> Proposal | None:
        """What to queue when a job's worker died (its lease expired): by default the same
        hyperparameters again, until ``max_attempts`` tries were made."""
        attempt = crashed.get("attempt", 1)
        if attempt >= self.max_attempts:
            return None
        root = crashed.get("lineage", {}).get("retryOf", crashed["id"])
        return Proposal(
            hyperparameters=crashed["hyperparameters"],
            job_id=suffixed_id(root, f"-{attempt + 1}"),
            lineage={**crashed.get("lineage", {}), "retryOf": root},
            seed=crashed.get("seed"),
            status="QUEUED",
            attempt=attempt + 1,
        )

    def should_stop(self, ctx: SchedulerContext, job: "Job") -> bool:
        """Whether ``job`` should stop early (early-stopping schedulers override this)."""
        return False

    def on_job_finished(self, ctx: SchedulerContext, doc: dict) -> None:
        """Called after a job was stored DONE, CRASHED or PRUNED by ``Job.put`` (a worker
        ending ``with job:``, or ``add_job`` of a finished job), with the stored document.

        Schedulers that keep state documents update them here; the job is stored
        already, so an error raised here is only a warning. Only stores that keep
        scheduler state (files, S3) call it.
        """

    # -- wire format
    def _params_checked(self) -> Any:
        what = f"experiment {self.name!r}: {self.SCHEDULER_NAME} params"
        try:
            params = self.get_params()
        except ValidationError as e:
            raise ValidationError(f"{what}: {e}") from None
        except (AttributeError, TypeError, ValueError, KeyError) as e:  # an attribute set to the wrong kind of thing
            raise ValidationError(f"{what} cannot be made from this object: {type(e).__name__}: {e}") from None
        if self.PARAMS_SCHEMA is not None:
            schema.check(params, self.PARAMS_SCHEMA, what)
        jsonio.check(params, what)  # what the schema cannot say: numbers beyond the float range...
        return params

    def _to_doc(self) -> dict:
        check_name("experiment name", self.name)  # it may have been set since
        now = utcnow()
        settings: dict[str, Any] = {"maxAttempts": self.max_attempts}
        if self.lease_seconds is not None:
            settings["leaseSeconds"] = self.lease_seconds
        return {
            "schemaVersion": 1,
            "name": self.name,
            "status": self.status,
            "scheduler": {self.SCHEDULER_NAME: self._params_checked()},
            "uid": self._uid or new_uid(),
            "created": self._created or now,
            "updated": now,
            "settings": settings,
        }

    @staticmethod
    def _from_versioned(db: "SchedyDB", versioned: Versioned) -> "Experiment":
        from .plugins import registry

        doc = versioned.doc
        name = doc["name"]
        (scheduler_name, params), = doc["scheduler"].items()
        cls = None
        try:
            cls = registry().scheduler(scheduler_name)
            if cls.PARAMS_SCHEMA is not None:
                schema.check(params, cls.PARAMS_SCHEMA, f"{scheduler_name} params")
            exp = cls.from_params(name, doc["status"], params)
        except (ValidationError, ConfigError) as e:
            raise CorruptDocumentError(f"experiment {name!r} cannot be read: {e}") from None
        except Exception as e:  # the scheduler plugin's own bug: named, and the other experiments still read
            what = plugin_failure(cls, "from_params", e) if cls is not None else f"{type(e).__name__}: {e}"
            raise CorruptDocumentError(f"experiment {name!r} cannot be read: {what}") from None
        exp._attach(db, doc, versioned.etag)
        return exp

    def _attach(self, db: "SchedyDB", doc: dict, etag: str) -> None:
        self._db = db
        self._uid = doc["uid"]
        self._etag = etag
        self._created = doc.get("created")
        settings = doc.get("settings", {})
        self.lease_seconds = settings.get("leaseSeconds")
        self.max_attempts = settings.get("maxAttempts", DEFAULT_MAX_ATTEMPTS)
        self._stored_state = self._state()

    def _state(self) -> tuple:
        """What ``push_updates`` stores of this object, to tell whether it was changed since."""
        try:
            params = self.get_params()
        except Exception as e:  # params broken by hand: a change, which push_updates reports
            params = e
        return (self.status, params, self.max_attempts, self.lease_seconds)

    def _require_db(self) -> "SchedyDB":
        if self._db is None:
            raise ConfigError(f"experiment {self.name!r} was not added to a database (use SchedyDB.add_experiment)")
        return self._db

    def _ref(self) -> ExperimentRef:
        self._require_db()
        return ExperimentRef(self.name, self._uid)

    def _refresh(self) -> None:
        """Re-read status, params and settings (another process may have changed them).

        Nothing is rebuilt while the stored version is the one this object was read from or
        last wrote (every claim refreshes: rebuilding a scheduler's params costs more than
        reading the document).
        """
        db = self._require_db()
        versioned = db.storage.get_experiment_if_changed(self.name, self._etag)
        if versioned is None:
            return
        fresh = Experiment._from_versioned(db, versioned)
        if fresh._uid != self._uid:
            raise ResourceNotFoundError(f"experiment {self.name!r} was deleted", 404)
        if self._state() != self._stored_state:
            # Changed here and not pushed yet: kept (and used), not overwritten; since this
            # object's version is no longer the stored one, push_updates will be refused.
            return
        self.__dict__.update({k: v for k, v in fresh.__dict__.items() if k != "_db"})

    # -- the documented API
    def add_job(self, **kwargs: Any) -> "Job":
        """Add a job to this experiment and return it.

        Args:
            hyperparameters (dict): hyperparameter values (any JSON).
            status (str): job status; default ``Job.QUEUED`` (queued jobs are handed out first, oldest first).
            results (dict): result values; default none.
            job_id (str): the job's id; default a fresh random id.

        Example:
            >>> job = exp.add_job(status=schedy.Job.DONE, hyperparameters={"x": 1, "y": 2},
            ...                   results={"result": 5})  # doctest: +SKIP
        """
        from .job import Job

        unknown = set(kwargs) - {"hyperparameters", "status", "results", "job_id"}
        if unknown:
            raise TypeError(f"add_job() got unexpected keyword arguments: {', '.join(sorted(unknown))}")
        for key in ("hyperparameters", "results"):
            if kwargs.get(key) is not None and not isinstance(kwargs[key], dict):
                raise ValidationError(f"{key} must be a dict, not {type(kwargs[key]).__name__}")
        self._refresh()  # a deleted experiment takes no new jobs (they would be stored out of sight)
        job = Job(
            job_id=kwargs.get("job_id"),
            experiment=self,
            hyperparameters=kwargs.get("hyperparameters") or {},
            status=kwargs.get("status", Job.QUEUED),
            results=kwargs.get("results") or {},
        )
        job.put()  # (which checks the id and hyperparameters of a job it creates)
        return job

    def next_job(self) -> "Job":
        """Claim the next job: a RUNNING job that this worker alone holds.

        Queued jobs come first (oldest first), then the scheduler's suggestion. Raises
        ``schedy.errors.NoJobError`` when nothing can be handed out.
        """
        from .claims import next_job

        return next_job(self)

    def all_jobs(self) -> Iterator["Job"]:
        """Iterate over all jobs of this experiment, in a stable order (by id, for ids of ASCII letters,
        digits, ``-`` and ``_``), paging through storage.

        A job whose stored document cannot be read is skipped with a warning.
        """
        from .job import Job

        db = self._require_db()
        for item in db.storage.iter_jobs(self._ref()):
            if isinstance(item, str):
                db._warn(item)
            else:
                yield Job._from_versioned(self, item)

    def get_job(self, job_id: str) -> "Job":
        """The job with id ``job_id``; ``ResourceNotFoundError`` if there is none."""
        from .job import Job

        db = self._require_db()
        check_name("job id", job_id)
        return Job._from_versioned(self, db.storage.get_job(self._ref(), job_id))

    def push_updates(self) -> None:
        """Store the changes made to this object (status, params, settings).

        Raises UnsafeUpdateError if the stored experiment changed since it was read.
        """
        db = self._require_db()
        state = self._state()
        self._etag = db.storage.update_experiment(self._to_doc(), self._etag)
        self._stored_state = state

    def delete(self, ensure: bool = True) -> None:
        """Delete this experiment and all its jobs.

        Args:
            ensure: raise ``ResourceNotFoundError`` if it was deleted before this call.
        """
        db = self._require_db()
        while True:
            try:
                current = db.storage.get_experiment(self.name)
                if current.doc.get("uid") != self._uid:
                    raise ResourceNotFoundError(f"experiment {self.name!r} does not exist", 404)
                db.storage.delete_experiment(self.name, current.etag)
                return
            except ResourceNotFoundError:
                if ensure:
                    raise
                return
            except UnsafeUpdateError:
                continue  # changed while we deleted it: look again

    def __str__(self) -> str:
        try:
            params = self.get_params()
        except Exception as e:  # shown, not raised: printing an object must not fail
            params = f"<cannot be made: {type(e).__name__}: {e}>"
        return f"{type(self).__name__}(name={self.name!r}, params={params})"

    def __repr__(self) -> str:
        return str(self)
