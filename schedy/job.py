"""Jobs: one set of hyperparameters of an experiment, and its results.

Example:
    >>> with experiment.next_job() as job:  # doctest: +SKIP
    ...     job.results["loss"] = train(**job.hyperparameters)

The job is DONE when the block ends normally, CRASHED (with the error) when it raises;
either way its results are stored. KeyboardInterrupt and SIGTERM end it CRASHED too.
"""

from __future__ import annotations

import signal
import threading
import traceback
from typing import Any, ClassVar

from . import jsonio
from .errors import (
    LeaseLostError,
    ResourceExistsError,
    SchedyError,
    ResourceNotFoundError,
    UnsafeUpdateError,
    ValidationError,
)
from .experiment import Experiment, SchedulerContext, plugin_failure, scheduler_code
from .lease import keeper
from .names import check_name, new_job_id, utcnow, worker_identity
from .storage import IndexedStorage, Versioned, plain

try:  # signal.signal's conversions to and from enums cost more than setting the handler
    from _signal import signal as _set_handler
except ImportError:  # not CPython
    _set_handler = signal.signal
_SIGTERM = int(signal.SIGTERM)

HISTORY_LIMIT = 1000
_FINISHED = ("DONE", "CRASHED", "PRUNED")
_ERROR_LIMIT = 4000


class Job:
    """A job of an experiment. Get jobs from ``Experiment.add_job``, ``get_job``,
    ``all_jobs`` or ``next_job`` rather than making them by hand.

    Args:
        job_id: unique id of the job in its experiment.
        experiment: the experiment it belongs to.
        hyperparameters: hyperparameter values.
        status: job status (``Job.QUEUED`` ...).
        results: result values.
        etag: version of the stored job this object was read from.
    """

    #: Waiting to be handed out by ``next_job``.
    QUEUED: ClassVar[str] = "QUEUED"
    #: Held by a worker.
    RUNNING: ClassVar[str] = "RUNNING"
    #: Finished.
    DONE: ClassVar[str] = "DONE"
    #: Its worker failed or died before finishing.
    CRASHED: ClassVar[str] = "CRASHED"
    #: Abandoned because it was not worth working on.
    PRUNED: ClassVar[str] = "PRUNED"
    STATUSES: ClassVar[tuple[str, ...]] = ("QUEUED", "RUNNING", "DONE", "CRASHED", "PRUNED")

    def __init__(
        self,
        job_id: str | None,
        experiment: "Experiment",
        hyperparameters: dict,
        status: str = "QUEUED",
        results: dict | None = None,
        etag: str | None = None,
    ):
        self.job_id = new_job_id() if job_id is None else check_name("job id", job_id)
        self.experiment = experiment
        if not isinstance(hyperparameters, dict):
            raise ValidationError("hyperparameters must be a dict of name: value")
        if results is not None and not isinstance(results, dict):
            raise ValidationError("results must be a dict of name: value")
        if status not in self.STATUSES:
            raise ValidationError(f"job status must be one of {', '.join(self.STATUSES)}, not {status!r}")
        self.hyperparameters = dict(hyperparameters)
        self.status = status
        self.results = dict(results or {})
        self.etag = etag
        self.attempt = 1
        self.worker: dict | None = None
        self.lease: dict | None = None
        self.seed: int | None = None
        self.lineage: dict = {}
        self.history: list[dict] = []
        self.error: str | None = None
        self.created: str | None = None
        self.updated: str | None = None
        self._new_locks()
        self._lost = False
        self._lost_why: str | None = None  # what _lost_error says, when not a lease taken over
        self._claimed = False  # this object's claim: kept by a process forked from the claimer
        self._stored_status: str | None = None
        self._previous_sigterm: Any = None

    def _new_locks(self) -> None:
        self._lock = threading.RLock()

    @property
    def id(self) -> str:
        """Alias of ``job_id``."""
        return self.job_id

    # -- wire format
    def to_doc(self) -> dict:
        """The job as a wire-format document."""
        check_name("job id", self.job_id)  # it may have been set since
        doc = {
            "schemaVersion": 1,
            "id": self.job_id,
            "experiment": self.experiment.name,
            "status": self.status,
            "hyperparameters": jsonio.to_plain(self.hyperparameters, "hyperparameters"),
            "results": jsonio.to_plain(self.results, "results"),
            "created": self.created or utcnow(),
            "updated": utcnow(),
            "attempt": self.attempt,
            "worker": self.worker,
            "lease": self.lease,
            "seed": self.seed,
            "lineage": self.lineage,
            "history": self.history,
            "error": self.error,
        }
        return doc

    def _load(self, doc: dict, etag: str) -> None:
        self.job_id = doc["id"]
        self.status = doc["status"]
        self.hyperparameters = plain(doc["hyperparameters"])
        self.results = plain(doc["results"])
        self.attempt = doc.get("attempt", 1)
        self.worker = doc.get("worker")
        self.lease = doc.get("lease")
        self.seed = doc.get("seed")
        self.lineage = plain(doc.get("lineage", {}))
        self.history = plain(doc.get("history", []))
        self.error = doc.get("error")
        self.created = doc.get("created")
        self.updated = doc.get("updated")
        self.etag = etag
        self._stored_status = self.status

    @classmethod
    def _from_versioned(cls, experiment: "Experiment", versioned: Versioned) -> "Job":
        job = cls(versioned.doc["id"], experiment, {}, versioned.doc["status"])
        job._load(versioned.doc, versioned.etag)
        return job

    @classmethod
    def _from_claim(cls, experiment: "Experiment", versioned: Versioned) -> "Job":
        """The job a claim for this process returned, held (its lease renewed)."""
        job = cls._from_versioned(experiment, versioned)
        job._claimed = True
        keeper.hold(job)
        return job

    def _storage(self):
        return self.experiment._require_db().storage

    def _lease_seconds(self) -> float:
        return float((self.lease or {}).get("seconds") or 60.0)

    # -- the documented API
    def put(self, safe: bool = True) -> None:
        """Store this job: create it, or update it.

        Args:
            safe: refuse to overwrite changes stored by someone else since this job was
                read (``UnsafeUpdateError``; ``LeaseLostError`` when another worker took
                the job over). With ``safe=False`` the write is unconditional.
        """
        storage = self._storage()
        ref = self.experiment._ref()
        with self._lock:
            if self._lost and safe:
                raise self._lost_error()
            if self.created is None:
                self.created = utcnow()
            doc = self.to_doc()
            if self.etag is None:
                self.experiment._check_new_job(storage, self.job_id, self.hyperparameters)
            try:
                if self.etag is None:
                    try:
                        etag = storage.create_job(ref, doc)
                    except ResourceExistsError:
                        if safe:
                            raise
                        etag = storage.update_job(ref, doc, None)
                else:
                    etag = storage.update_job(ref, doc, self.etag if safe else None)
            except UnsafeUpdateError:
                if self.worker and self.worker.get("id") == worker_identity()["id"] and not self._still_held():
                    self._lost = True
                    keeper.release(self)
                    raise self._lost_error() from None
                raise  # changed by someone else (another Job object of it, say), still held here
            self.etag = etag
            self.updated = doc["updated"]
            finished = self.status in _FINISHED and self._stored_status != self.status
            self._stored_status = self.status
            if self.status != self.RUNNING:
                keeper.release(self)
        if finished:
            self._tell_scheduler(doc)

    def _tell_scheduler(self, doc: dict) -> None:
        if getattr(self.experiment.on_job_finished, "__func__", None) is Experiment.on_job_finished:
            return  # the scheduler keeps no state: nothing to tell it
        storage = self._storage()
        if not isinstance(storage, IndexedStorage):
            return
        try:
            self.experiment.on_job_finished(SchedulerContext(self.experiment, storage, self.job_id), doc)
        except Exception as e:  # (a plugin's bug too: the job is stored, which is what the caller asked)
            import warnings

            if isinstance(e, SchedyError):
                message = f"job {self.job_id!r}: the scheduler {self.experiment.SCHEDULER_NAME} could not record it: {e}"
            else:
                message = f"job {self.job_id!r} is stored, but {plugin_failure(self.experiment, 'on_job_finished', e)}"
            warnings.warn(message, stacklevel=3)

    def _lost_error(self) -> LeaseLostError:
        why = self._lost_why or "was taken over by another worker (its lease expired)"
        return LeaseLostError(f"job {self.job_id!r} of experiment {self.experiment.name!r} {why}: not overwriting it", 412)

    def try_run(self) -> None:
        """Claim this job: set it RUNNING for this worker, or raise ``UnsafeUpdateError``
        if another worker changed it first or is running it.

        Example:
            >>> job = exp.get_job("a1")  # doctest: +SKIP
            >>> job.try_run()  # doctest: +SKIP
        """
        from .claims import claim_doc

        storage = self._storage()
        with self._lock:
            if self._lost:
                raise self._lost_error()
            if self._stored_status == self.RUNNING and not self._held_here():
                # Its worker holds a lease on it; if that worker died, recovery marks it
                # CRASHED and queues its retry once the lease expires.
                worker = self.worker or {}
                raise UnsafeUpdateError(
                    f"job {self.job_id!r} of experiment {self.experiment.name!r} is RUNNING on worker "
                    f"{worker.get('host', '?')}:{worker.get('pid', '?')}: not taking it over",
                    412,
                )
            doc = claim_doc(self.to_doc(), self.experiment)
            if self.etag is None:
                self.experiment._check_new_job(storage, self.job_id, self.hyperparameters)
                etag = storage.create_job(self.experiment._ref(), doc)
            else:
                etag = storage.update_job(self.experiment._ref(), doc, self.etag)
            values = self.hyperparameters, self.results
            self._load(doc, etag)
            # Stored as they are: the dicts stay the job's, for code that holds them already.
            self.hyperparameters, self.results = values
            self._lost, self._lost_why = False, None
            self._claimed = True
        keeper.hold(self)

    def delete(self, ensure: bool = True) -> None:
        """Delete this job.

        Args:
            ensure: raise ``ResourceNotFoundError`` if it was deleted before this call.
        """
        try:
            self._storage().delete_job(self.experiment._ref(), self.job_id)
        except ResourceNotFoundError:
            if ensure:
                raise
        keeper.release(self)

    def report(self, step: float, **metrics: Any) -> None:
        """Record progress (e.g. the loss after an epoch) and store it.

        The job keeps the last 1000 reports in ``job.history``; early-stopping schedulers
        read them.

        Example:
            >>> job.report(3, loss=0.25)  # doctest: +SKIP
        """
        if isinstance(step, bool) or not isinstance(step, (int, float)):
            raise ValidationError(f"step must be a number, not {step!r}")
        entry = jsonio.to_plain({"step": step, **metrics}, "report")
        with self._lock:
            self.history.append(entry)
            del self.history[:-HISTORY_LIMIT]
            self.put()

    def should_stop(self) -> bool:
        """True when this worker should stop working on the job: it lost the job to
        another worker, or the scheduler prunes it."""
        if self._lost:
            return True
        ctx = SchedulerContext(self.experiment, self._storage(), self.job_id)
        with scheduler_code(self.experiment, "should_stop"):
            return bool(self.experiment.should_stop(ctx, self))

    # -- heartbeats
    def _heartbeat(self) -> bool:
        """Renew the lease; False when this job no longer needs (or may not have) one."""
        with self._lock:
            if self.status != self.RUNNING or self._lost:
                return False
            storage = self._storage()
            ref = self.experiment._ref()
            try:
                storage.renew_lease(ref, self.job_id, self._lease_seconds())
                current = storage.get_job(ref, self.job_id)
            except ResourceNotFoundError:
                self._lost, self._lost_why = True, "was deleted (or its experiment was) while this worker ran it"
                if isinstance(storage, IndexedStorage):
                    storage.drop_lease(ref, self.job_id, self._lease_seconds())  # the renewal just made its marker again
                return False
            except UnsafeUpdateError:  # (the service checks before it renews)
                self._lost = True
                return False
            if current.etag != self.etag and not self._held_by(current.doc):
                self._lost = True
                return False
            return True

    def _held_by(self, doc: dict) -> bool:
        """Whether the stored ``doc`` is still this object's claim: RUNNING for its worker,
        under the lease it claimed (another write may have changed the rest)."""
        return (
            doc["status"] == self.RUNNING
            and (doc.get("worker") or {}).get("id") == (self.worker or {}).get("id")
            and (doc.get("lease") or {}).get("claimed") == (self.lease or {}).get("claimed")
        )

    def _still_held(self) -> bool:
        try:
            return self._held_by(self._storage().get_job(self.experiment._ref(), self.job_id).doc)
        except ResourceNotFoundError:
            return False

    def _held_here(self) -> bool:
        """Whether the job as read is RUNNING for this process: this object's claim (also in a
        process forked after it), or a claim this process made (the job read again)."""
        return self._stored_status == self.RUNNING and (
            self._claimed or (self.worker or {}).get("id") == worker_identity()["id"]
        )

    # -- context manager
    def __enter__(self) -> "Job":
        """Claim the job unless this process runs it already (``next_job`` returns RUNNING
        jobs); a job another worker runs is refused (``UnsafeUpdateError``)."""
        if self._lost or not self._held_here():
            self.try_run()
        if threading.current_thread() is threading.main_thread():
            self._previous_sigterm = _set_handler(_SIGTERM, _raise_on_sigterm)
        return self

    def __exit__(self, exc_type, exc_value, tb) -> bool:
        """DONE if the block ended normally, unless it ended the job itself (CRASHED or
        PRUNED: ``if job.should_stop(): job.status = job.PRUNED``); CRASHED with the error
        if it raised; store the job.

        Results that cannot be stored (NaN, say) make it CRASHED, with the results that
        can be and an error naming the others, rather than leave it RUNNING for its lease
        to expire; the ValidationError is raised after that is stored."""
        try:
            if exc_type is None:
                if self.status not in (self.CRASHED, self.PRUNED):
                    self.status = self.DONE
            else:
                self.status = self.CRASHED
                text = jsonio.storable_text("".join(traceback.format_exception_only(exc_type, exc_value)).strip())
                self.error = text[-_ERROR_LIMIT:] or exc_type.__name__
            try:
                try:
                    self.put()
                except ValidationError as e:
                    self._crash_with_storable_results(e)
                    if exc_type is None:
                        raise
            except Exception:
                if exc_type is None:
                    raise
                import logging

                logging.getLogger(__name__).warning("job %s: could not store CRASHED status", self.job_id, exc_info=True)
        finally:
            keeper.release(self)
            if self._previous_sigterm is not None:
                _set_handler(_SIGTERM, self._previous_sigterm)
                self._previous_sigterm = None
        return False

    def _crash_with_storable_results(self, problem: ValidationError) -> None:
        """Store the job CRASHED, keeping the results that can be stored: those that are
        JSON, or none if the store refuses even those (more than a service takes, say).
        Hyperparameters, lineage or history changed into something no store can hold are
        stored as they were before (the error names the problem)."""
        kept = {}
        for name, value in self.results.items() if isinstance(self.results, dict) else ():
            try:
                kept[name] = jsonio.to_plain({name: value}, "results")[name]
            except ValidationError:
                pass
        self.status = self.CRASHED
        earlier = f"{self.error}; " if self.error else ""
        self.error = jsonio.storable_text(f"{earlier}could not store the job: {problem}")[-_ERROR_LIMIT:]
        self._restore_unstorable()
        for results in (kept, {}) if kept else ({},):
            self.results = results
            try:
                self.put()
                return
            except ValidationError:
                if not results:
                    raise

    def _restore_unstorable(self) -> None:
        stored = None
        for field, empty in (("hyperparameters", {}), ("lineage", {}), ("history", [])):
            value = getattr(self, field)
            try:
                if isinstance(value, type(empty)):
                    jsonio.to_plain(value, field)
                    continue
            except ValidationError:
                pass
            if stored is None:
                stored = self._storage().get_job(self.experiment._ref(), self.job_id).doc
            setattr(self, field, plain(stored.get(field, empty)))

    def __repr__(self) -> str:
        return f"Job(job_id={self.job_id!r}, status={self.status!r}, hyperparameters={self.hyperparameters!r}, results={self.results!r})"


class Terminated(SystemExit):
    """Raised in the main thread when the process gets SIGTERM while it runs a job."""

    def __str__(self) -> str:
        return "terminated by SIGTERM"


def _raise_on_sigterm(signum, frame):
    raise Terminated(128 + signal.SIGTERM)
