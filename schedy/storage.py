"""The storage contract: what the core asks of a backend.

A backend stores two kinds of JSON documents, experiments and jobs. Every read returns
the document with its ETag (an opaque version). Every write is conditional:

* ``create_*`` succeeds only if nothing is stored under that name
  (else ``ResourceExistsError``);
* ``update_*`` / ``delete_*`` with an ``etag`` succeed only if the stored version still
  has that ETag (else ``UnsafeUpdateError``); ``etag=None`` writes unconditionally;
* a write fully happens or does not, across processes and machines; every write gets
  a new ETag, even when the bytes are the same.

Jobs live under an experiment *reference* (name and uid): a deleted experiment's jobs
never show up in a new experiment of the same name.

Backends that coordinate workers through storage (files, S3) implement
:class:`IndexedStorage` on top of :class:`schedy.objects.ObjectStore`; the core claims
jobs over it. A backend that is a client of a Schedy service implements
:class:`ClaimingStorage` instead and lets the service claim.

Example (any backend):
    >>> from schedy.config import open_storage
    >>> storage = open_storage("memory-example-not-run")  # doctest: +SKIP
    >>> etag = storage.create_experiment({"name": "E", "status": "RUNNING",
    ...                                   "scheduler": {"Manual": None}, "uid": "0" * 32})  # doctest: +SKIP
    >>> storage.get_experiment("E").etag == etag  # doctest: +SKIP
    True
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Iterator, NamedTuple

from .errors import CorruptDocumentError


class ExperimentRef(NamedTuple):
    """Which experiment: its name and the uid of this incarnation of the name."""

    name: str
    uid: str


@dataclass(frozen=True)
class Versioned:
    """A document and its ETag."""

    doc: dict
    etag: str


@dataclass(frozen=True)
class Page:
    """One page of a listing; ``next`` is the cursor of the next page, None on the last.

    ``problems`` names documents of this page that could not be read (corrupt or
    invalid): they are left out of ``items`` so that the others can be read.
    """

    items: list[Versioned]
    next: str | None
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Lease:
    """A running job's lease, as the store's clock sees it."""

    job_id: str
    seconds: float
    age: float


class Storage(ABC):
    """Documents with ETags and conditional writes. See the module docstring."""

    #: The URL this storage was opened with.
    url: str = ""

    @abstractmethod
    def get_experiment(self, name: str) -> Versioned:
        """The experiment named ``name``; ResourceNotFoundError if there is none."""

    def heartbeat_ages(self, exp: ExperimentRef) -> dict[str, float] | None:
        """Seconds since each running job's lease was last renewed, by job id (the store's
        clock; a hint, stale as soon as read), or None if this store cannot tell."""
        return None

    def get_experiment_if_changed(self, name: str, etag: str | None) -> Versioned | None:
        """``get_experiment``, or None if its ETag is still ``etag`` (read before every
        claim: stores may skip copying a document the caller already holds)."""
        versioned = self.get_experiment(name)
        return None if versioned.etag == etag else versioned

    @abstractmethod
    def create_experiment(self, doc: dict) -> str:
        """Store a new experiment; return its ETag. ResourceExistsError if the name is taken."""

    @abstractmethod
    def update_experiment(self, doc: dict, etag: str | None) -> str:
        """Replace an experiment (If-Match ``etag``); return the new ETag."""

    @abstractmethod
    def delete_experiment(self, name: str, etag: str | None = None) -> None:
        """Delete an experiment and its jobs; ResourceNotFoundError if there is none."""

    @abstractmethod
    def list_experiments(self, cursor: str | None = None, limit: int = 100) -> Page:
        """A page of experiments, ordered by name encoding."""

    @abstractmethod
    def get_job(self, exp: ExperimentRef, job_id: str) -> Versioned:
        """A job; ResourceNotFoundError if there is none."""

    @abstractmethod
    def create_job(self, exp: ExperimentRef, doc: dict) -> str:
        """Store a new job; ResourceExistsError if its id is taken."""

    @abstractmethod
    def update_job(self, exp: ExperimentRef, doc: dict, etag: str | None) -> str:
        """Replace a job (If-Match ``etag``); return the new ETag."""

    @abstractmethod
    def delete_job(self, exp: ExperimentRef, job_id: str, etag: str | None = None) -> None:
        """Delete a job; ResourceNotFoundError if there is none."""

    @abstractmethod
    def list_jobs(
        self, exp: ExperimentRef, cursor: str | None = None, limit: int = 100, status: str | None = None
    ) -> Page:
        """A page of an experiment's jobs, in a stable order (by id, for ids of ASCII letters,
        digits, ``-`` and ``_``); ``status`` filters."""

    @abstractmethod
    def renew_lease(self, exp: ExperimentRef, job_id: str, seconds: float) -> None:
        """Heartbeat: the worker holding ``job_id`` is alive for ``seconds`` more."""

    def close(self) -> None:
        """Release connections; the storage must not be used afterwards."""

    def iter_experiments(self, page_size: int = 100) -> Iterator[Versioned | str]:
        """Every experiment, paging through storage; a string names a document that could not be read."""
        cursor = None
        while True:
            page = self.list_experiments(cursor, page_size)
            yield from page.problems
            yield from page.items
            cursor = page.next
            if cursor is None:
                return

    def iter_jobs(
        self, exp: ExperimentRef, status: str | None = None, page_size: int = 200
    ) -> Iterator[Versioned | str]:
        """Every job of ``exp``, paging through storage; a string names a document that could not be read."""
        cursor = None
        while True:
            page = self.list_jobs(exp, cursor, page_size, status)
            yield from page.problems
            yield from page.items
            cursor = page.next
            if cursor is None:
                return


class IndexedStorage(Storage):
    """Storage that keeps the indexes the core needs to claim jobs cheaply.

    The queue and the running leases are kept apart from the job documents so that
    claiming costs grow with the queue and the number of running jobs, never with the
    number of finished jobs.
    """

    @abstractmethod
    def queued(self, exp: ExperimentRef, limit: int) -> list[tuple[str, str | None]]:
        """Up to ``limit`` (marker, job id) of queued jobs, oldest first. A hint: may be
        stale. The job id is None for a marker that names no job (to be passed over)."""

    @abstractmethod
    def draw_queued(self, exp: ExperimentRef, among: int) -> Iterator[tuple[str, str | None]]:
        """(marker, job id) of the ``among`` oldest queued jobs in random order, drawn as
        the caller iterates (a claimer that lost a race takes the first that it wins). A
        hint: may be stale."""

    @abstractmethod
    def drop_queued(self, exp: ExperimentRef, marker: str, job_id: str | None = None) -> None:
        """Forget a queue marker (its job was claimed or is gone). With ``job_id``, the
        marker's job is read once the marker is deleted, and the marker put back if the job
        needs it: the job was queued again meanwhile, under the same marker (a marker is
        named by its job's creation time and id), by a writer that made the marker before
        this deletion."""

    def take_queued(self, exp: ExperimentRef, marker: str, job_id: str, seconds: float) -> bool | None:
        """Take a queued job for a claim with a lease of ``seconds`` before writing it: True
        if this caller took it (its lease has begun), False if another claimer is taking it.
        None (the default): this storage cannot, and the job's If-Match write decides alone.
        The job's If-Match write decides in every case; taking only spares most losers a write."""
        return None

    def untake_queued(self, exp: ExperimentRef, marker: str, job_id: str, seconds: float) -> None:
        """Undo a ``take_queued`` whose claim was not written (the job changed meanwhile)."""

    @abstractmethod
    def marker_modified(self, marker: str) -> float | None:
        """When a queue marker was written (store clock), or None if it is gone."""

    @abstractmethod
    def now(self) -> float:
        """The store's clock, seconds since the epoch."""

    @abstractmethod
    def leases(self, exp: ExperimentRef) -> list[Lease]:
        """The leases of running jobs, ages by the store's clock. A hint: may be stale."""

    def heartbeat_ages(self, exp: ExperimentRef) -> dict[str, float] | None:
        return {lease.job_id: lease.age for lease in self.leases(exp)}

    @abstractmethod
    def crash_expired(self, exp: ExperimentRef, doc: dict, etag: str) -> str:
        """Write ``doc``, a job CRASHED because its lease expired (If-Match ``etag``), and
        keep its lease marker: recovery drops it once the job's retry exists, so that a
        recoverer that dies in between leaves the marker for the next one."""

    @abstractmethod
    def lease_age(self, exp: ExperimentRef, job_id: str, seconds: float) -> float | None:
        """The age of one lease marker now (store clock), None if there is none: a listing's
        ages may be stale by the time a job is judged by them."""

    @abstractmethod
    def drop_lease(self, exp: ExperimentRef, job_id: str, seconds: float) -> None:
        """Forget a lease marker that its job no longer needs. The job is read once the
        marker is deleted, and the marker put back (as a fresh lease) if the job is RUNNING
        under a lease of ``seconds``: a claim under that same marker raced the caller's
        reading of the job."""

    @abstractmethod
    def get_state(self, exp: ExperimentRef, key: str) -> Versioned | None:
        """A scheduler's state document, or None."""

    @abstractmethod
    def put_state(self, exp: ExperimentRef, key: str, doc: dict, etag: str | None, create: bool = False) -> str:
        """Write a scheduler's state document: create-only if ``create``, else If-Match ``etag``."""


class ClaimingStorage(Storage):
    """Storage whose other end claims jobs itself (the Schedy service)."""

    @abstractmethod
    def claim(self, exp: ExperimentRef, worker: dict, lease_seconds: float | None) -> Versioned:
        """Claim the next job for ``worker``; NoJobError if there is none."""


def plain(doc: Any) -> Any:
    """A deep copy of JSON data (dict/list/scalars); CorruptDocumentError for data nested
    too deeply to copy (only a document written by hand can be: writes refuse them)."""
    try:
        return _plain(doc)
    except RecursionError:
        raise CorruptDocumentError("a stored document is nested too deeply to read") from None


def _plain(doc: Any) -> Any:
    if isinstance(doc, dict):
        return {k: _plain(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_plain(v) for v in doc]
    return doc
