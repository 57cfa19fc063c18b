"""Handing out jobs: exactly one worker per job, nothing lost when a worker dies.

``next_job`` is written once against the storage contract and serves every backend
that keeps indexes (files, S3); the Schedy service runs this same code for its
clients. It:

1. finds RUNNING jobs whose lease expired (their worker stopped sending heartbeats),
   marks them CRASHED and lets the scheduler queue a retry (``Experiment.retry``);
   each process looks at most once a second, and again before it gives up (step 4);
2. claims the oldest queued job by an If-Match update (QUEUED -> RUNNING): of several
   workers racing for one job, exactly one update succeeds (a files store first takes
   the job's queue marker with a rename, so that the losers write nothing);
3. else asks the scheduler for a proposal and creates it directly as RUNNING with a
   create-only write (deterministic ids make a duplicate proposal a refused write);
4. else raises NoJobError.

Costs grow with the queue and the number of running jobs, never with finished jobs.
"""

from __future__ import annotations

import os
import time
import warnings
from typing import TYPE_CHECKING, NamedTuple

from . import jsonio
from .errors import (
    ConfigError,
    CorruptDocumentError,
    NoJobError,
    ResourceExistsError,
    ResourceNotFoundError,
    SchedyError,
    UnsafeUpdateError,
    ValidationError,
)
from .experiment import DEFAULT_LEASE_SECONDS, Proposal, SchedulerContext, plugin_failure, scheduler_code
from .job import Job
from .names import new_job_id, utcnow, worker_identity
from .storage import ClaimingStorage, IndexedStorage, Versioned

if TYPE_CHECKING:
    from .experiment import Experiment

#: After losing a race lately, a claimer draws the job it tries among this many of the oldest queued.
QUEUE_WINDOW = 32
#: A queue marker whose job does not exist is left alone this long (its job may be being written).
ORPHAN_MARKER_SECONDS = 60.0
#: A claim gives up after losing this many races (and asks the scheduler, then says NoJobError).
_MAX_ROUNDS = 64
#: ... or after passing over this many markers it leaves in place (each pass lists them all again).
_MAX_SKIPPED = 256
#: How often a process looks for expired leases while it finds jobs to claim.
RECOVERY_SECONDS = 1.0
_last_recovery: dict[tuple[str, str | None], float] = {}
#: After losing a race for a queued job, a worker draws among the oldest at random this long.
CONTENTION_SECONDS = 1.0
_contended_until = 0.0  # monotonic clock
#: How the ``error`` of a job that recovery marked CRASHED begins.
LEASE_EXPIRED = "lease expired: "


def lease_seconds(experiment: "Experiment") -> float:
    """``SCHEDY_LEASE_SECONDS``, else the experiment's setting, else the default (60 s)."""
    seconds = _env_lease_seconds()
    return seconds if seconds is not None else float(experiment.lease_seconds or DEFAULT_LEASE_SECONDS)


def _env_lease_seconds() -> float | None:
    value = os.environ.get("SCHEDY_LEASE_SECONDS")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        raise ConfigError(f"SCHEDY_LEASE_SECONDS must be a number of seconds, not {value!r}") from None
    if not 0 < seconds <= 1e9:
        raise ConfigError("SCHEDY_LEASE_SECONDS must be > 0 and at most 1e9")
    return seconds


class Holder(NamedTuple):
    """Who claims: the worker, its lease length and the claim's time (wire format).

    A worker claims for itself; the Schedy service claims for the worker that asked it.
    """

    worker: dict
    seconds: float
    claimed: str


def this_worker(experiment: "Experiment") -> Holder:
    """This process as the holder of a claim."""
    return Holder(worker_identity(), lease_seconds(experiment), utcnow())


def claim_doc(doc: dict, experiment: "Experiment", holder: Holder | None = None) -> dict:
    """``doc`` as claimed by ``holder`` (default: this worker): RUNNING, with a fresh lease."""
    holder = holder or this_worker(experiment)
    return {
        **doc,
        "status": "RUNNING",
        "worker": holder.worker,
        "lease": {"seconds": holder.seconds, "claimed": holder.claimed},
        "error": None,
        "updated": utcnow(),
    }


def new_doc(experiment: "Experiment", ctx: SchedulerContext, proposal: Proposal, holder: Holder | None = None) -> dict:
    """A new job document from a scheduler's proposal."""
    job_id = proposal.job_id or ctx.new_job_id
    now = utcnow()
    doc = {
        "schemaVersion": 1,
        "id": job_id,
        "experiment": experiment.name,
        "status": proposal.status,
        # As they will be stored (tuples as lists, numpy values as numbers): what the worker gets.
        "hyperparameters": jsonio.to_plain(proposal.hyperparameters, "hyperparameters"),
        "results": jsonio.to_plain(proposal.results, "results"),
        "created": now,
        "updated": now,
        "attempt": proposal.attempt,
        "worker": None,
        "lease": None,
        # A retry (attempt > 1) keeps its job's seed, none for a job queued by hand.
        "seed": proposal.seed if proposal.seed is not None or proposal.attempt > 1 else ctx.seed(job_id),
        "lineage": proposal.lineage,
        "history": [],
        "error": None,
    }
    return claim_doc(doc, experiment, holder) if proposal.status == "RUNNING" else doc


def next_job(experiment: "Experiment") -> "Job":
    """Claim the next job of ``experiment``. See the module docstring."""
    db = experiment._require_db()
    storage = db.storage
    if isinstance(storage, ClaimingStorage):
        versioned = storage.claim(experiment._ref(), worker_identity(), _env_lease_seconds())
        return Job._from_claim(experiment, versioned)
    if not isinstance(storage, IndexedStorage):
        raise ConfigError(f"the store at {storage.url} cannot hand out jobs")
    return Job._from_claim(experiment, claim_next(experiment, storage))


def claim_next(experiment: "Experiment", storage: IndexedStorage, holder: Holder | None = None):
    """Steps 1-4 of the module docstring for ``holder`` (default: this worker); the claimed job's Versioned."""
    experiment._refresh()
    scanned = _recovery_due(experiment, storage)
    if experiment.status == experiment.DONE:
        # Nothing is handed out, but a job whose worker died is still marked CRASHED (its
        # retry waits in the queue in case the experiment runs again), never left RUNNING.
        if scanned:
            recover_expired(experiment, storage)
        raise NoJobError(f"No job left for experiment {experiment.name}: it is DONE.", None)
    if scanned:
        recover_expired(experiment, storage)
    versioned = claim_queued(experiment, storage, holder) or claim_proposal(experiment, storage, holder)
    if versioned is None and not scanned and recover_expired(experiment, storage):
        versioned = claim_queued(experiment, storage, holder) or claim_proposal(experiment, storage, holder)
    if versioned is None:
        raise NoJobError(f"No job left for experiment {experiment.name}.", None)
    return versioned


def _recovery_due(experiment: "Experiment", storage: IndexedStorage) -> bool:
    """Whether this process should look for expired leases now: at most every
    RECOVERY_SECONDS (a quarter of the lease if shorter) per experiment, since every
    claim looking would make claims cost more as workers are added. A claim that finds
    nothing else to do looks anyway (see claim_next)."""
    key = (storage.url, experiment._uid)
    now = time.monotonic()
    if now - _last_recovery.get(key, float("-inf")) < min(RECOVERY_SECONDS, lease_seconds(experiment) / 4):
        return False
    _last_recovery[key] = now
    return True


def recover_expired(experiment: "Experiment", storage: IndexedStorage) -> int:
    """Mark jobs whose lease expired CRASHED and queue their retries, queue again the jobs
    whose claim was never written; return how many."""
    ref = experiment._ref()
    recovered = 0
    for lease in storage.leases(ref):
        if lease.age <= lease.seconds:
            continue
        try:
            current = storage.get_job(ref, lease.job_id)
        except ResourceNotFoundError:
            storage.drop_lease(ref, lease.job_id, lease.seconds)
            continue
        except CorruptDocumentError as e:
            warnings.warn(f"skipped expired lease: {e}", stacklevel=2)  # left for a person, as in claim_queued
            continue
        doc = current.doc
        if doc["status"] == "QUEUED":
            # A claim that never got written: its claimer died between taking the job's queue
            # marker and writing the job, or a crash undid the job write (its lease marker
            # was durable, the job write not). Writing the job again queues it again.
            try:
                storage.update_job(ref, {**doc, "updated": utcnow()}, current.etag)
            except (UnsafeUpdateError, ResourceNotFoundError):
                # Changed meanwhile: its claimer wrote the claim after all (late, and the
                # lease it renewed is its own now), or another process requeued or deleted
                # it. The next look judges the lease afresh.
                continue
            recovered += 1
            storage.drop_lease(ref, lease.job_id, lease.seconds)
            continue
        if (doc.get("lease") or {}).get("seconds") != lease.seconds:
            storage.drop_lease(ref, lease.job_id, lease.seconds)
            continue
        if doc["status"] == "CRASHED" and str(doc.get("error")).startswith(LEASE_EXPIRED):
            # Marked by a recoverer that may have died before queueing the retry.
            _queue_retry(experiment, storage, doc)
            storage.drop_lease(ref, lease.job_id, lease.seconds)
            continue
        if doc["status"] != "RUNNING":
            storage.drop_lease(ref, lease.job_id, lease.seconds)
            continue
        # Judged by its marker as it is now, not as listed: a job QUEUED under the expired
        # marker of a dead claimer may have been claimed since, under a marker of that name.
        age = storage.lease_age(ref, lease.job_id, lease.seconds)
        if age is None or age <= lease.seconds:
            continue
        worker = doc.get("worker") or {}
        crashed = {
            **doc,
            "status": "CRASHED",
            "updated": utcnow(),
            "error": (
                f"{LEASE_EXPIRED}no heartbeat for {age:.1f}s (lease {lease.seconds:g}s) "
                f"from worker {worker.get('host', '?')}:{worker.get('pid', '?')}"
            ),
        }
        try:
            storage.crash_expired(ref, crashed, current.etag)
        except (UnsafeUpdateError, ResourceNotFoundError):
            continue  # its worker finished, or another worker recovered it first
        recovered += 1
        _queue_retry(experiment, storage, crashed)
        storage.drop_lease(ref, lease.job_id, lease.seconds)
    return recovered


def _queue_retry(experiment: "Experiment", storage: IndexedStorage, crashed: dict) -> None:
    """Create the retry the scheduler wants for ``crashed`` unless it exists (its id is
    deterministic, so recoverers racing or coming again create one)."""
    ctx = SchedulerContext(experiment, storage, new_job_id())
    try:
        proposal = experiment.retry(ctx, crashed)
    except SchedyError:
        raise  # the store failed: the lease marker stays, and the next recoverer tries again
    except Exception as e:  # a scheduler's bug: not a reason to stop every claim of the experiment
        warnings.warn(f"job {crashed['id']!r} is not retried: {plugin_failure(experiment, 'retry', e)}", stacklevel=3)
        return
    if proposal is not None:
        try:
            storage.create_job(experiment._ref(), new_doc(experiment, ctx, proposal))
        except ResourceExistsError:
            pass


def claim_queued(experiment: "Experiment", storage: IndexedStorage, holder: Holder | None = None):
    """Claim the oldest queued job, or return None when the queue is empty."""
    ref = experiment._ref()
    holder = holder or this_worker(experiment)
    skipped: set[str] = set()  # markers left in place, passed over by this claim
    # Only lost races count against the claim: stale markers dropped on the way (jobs
    # ended or deleted by hand while queued) do not, or a worker would give up with
    # NoJobError in front of a queue that still holds jobs.
    lost = 0
    while lost < _MAX_ROUNDS and len(skipped) < _MAX_SKIPPED:
        # Strict FIFO while uncontended: the oldest job. Workers that lost a race lately
        # spread out over the window: all starting from the oldest job, they would keep colliding.
        if time.monotonic() < _contended_until:
            candidates = storage.draw_queued(ref, QUEUE_WINDOW + len(skipped))
        else:
            candidates = storage.queued(ref, 1 + len(skipped))
        offered = False
        for marker, job_id in candidates:
            if marker in skipped:
                continue
            offered = True
            if job_id is None:  # a marker that names no job (the store warned)
                skipped.add(marker)
                continue
            try:
                current = storage.get_job(ref, job_id)
            except ResourceNotFoundError:
                if not _drop_orphan_marker(storage, ref, marker, job_id):
                    skipped.add(marker)
                continue
            except CorruptDocumentError as e:
                # Left in place for a person to look at; the rest of the queue goes on.
                warnings.warn(f"skipped queued job: {e}", stacklevel=2)
                skipped.add(marker)
                continue
            if current.doc["status"] != "QUEUED":
                storage.drop_queued(ref, marker, job_id)
                continue
            took = storage.take_queued(ref, marker, job_id, holder.seconds)
            if took is False:
                lost += 1
                _contended()
                continue
            claimed = claim_doc(current.doc, experiment, holder)
            try:
                etag = storage.update_job(ref, claimed, current.etag)
            except (UnsafeUpdateError, ResourceNotFoundError):
                if took:
                    storage.untake_queued(ref, marker, job_id, holder.seconds)
                lost += 1
                _contended()
                continue
            if not took:  # a taken marker is the lease marker now
                storage.drop_queued(ref, marker)
            return Versioned(claimed, etag)
        if not offered:
            return None  # nothing queued but what this claim passed over
    return None


def _contended() -> None:
    global _contended_until
    _contended_until = time.monotonic() + CONTENTION_SECONDS


def _drop_orphan_marker(storage: IndexedStorage, ref, marker: str, job_id: str) -> bool:
    """Drop a queue marker whose job does not exist, once it is old enough; True if it is gone."""
    modified = storage.marker_modified(marker)
    if modified is None:
        return True
    if storage.now() - modified > ORPHAN_MARKER_SECONDS:
        storage.drop_queued(ref, marker, job_id)
        return True
    return False


def claim_proposal(experiment: "Experiment", storage: IndexedStorage, holder: Holder | None = None):
    """Create the scheduler's proposal as a RUNNING job, or return None if it has none."""
    for _ in range(_MAX_ROUNDS):
        ctx = SchedulerContext(experiment, storage, new_job_id())
        with scheduler_code(experiment, "suggest"):
            proposal = experiment.suggest(ctx)
        if proposal is None:
            return None
        if proposal.status not in ("RUNNING", "QUEUED"):
            # A finished job would be made again at every round, and no claim would end.
            raise ValidationError(f"the scheduler {experiment.SCHEDULER_NAME} proposed a job with status "
                                  f"{proposal.status!r}: a proposal is RUNNING or QUEUED")
        doc = new_doc(experiment, ctx, proposal, holder)
        try:
            etag = storage.create_job(experiment._ref(), doc)
        except ResourceExistsError:
            continue  # another worker made this job first: ask again
        if doc["status"] == "RUNNING":
            return Versioned(doc, etag)
        queued = claim_queued(experiment, storage, holder)
        if queued is not None:
            return queued
    return None
