"""Schedy's storage on a plain object store (a directory, an S3 bucket).

:class:`ObjectStore` is the small contract a files or S3 backend implements: bytes at
keys, ETags, create-only and If-Match writes, sorted listing of a prefix.
:class:`ObjectStorage` builds the whole storage contract on it, with this key layout
(``E`` an encoded experiment name, ``U`` the experiment's uid, ``J`` an encoded job id)::

    experiments/E                   experiment document
    jobs/E/U/J                      job documents
    queue/E/U/<created>-J           one marker per queued job, oldest first
    running/E/U/J@<lease seconds>   one marker per running job; its age is the lease's age
    state/E/U/<key>                 schedulers' own documents

The markers are hints, written before the job document they point to, so that a crash
between the two writes leaves a marker without a job (cleaned up when met) rather than
a queued or running job nobody can find.

Example:
    >>> from schedy_backends.files import FileObjectStore
    >>> import tempfile
    >>> storage = ObjectStorage(FileObjectStore(tempfile.mkdtemp()))
    >>> etag = storage.create_experiment({"name": "E", "status": "RUNNING",
    ...                                   "scheduler": {"Manual": None}, "uid": "0" * 32})
    >>> storage.get_experiment("E").etag == etag
    True
"""

from __future__ import annotations

import contextlib
import random
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, ContextManager, Iterable, Iterator

from . import jsonio, schema
from .errors import (
    CorruptDocumentError,
    ResourceExistsError,
    ResourceNotFoundError,
    UnsafeUpdateError,
    ValidationError,
)
from .names import decode_segment, encode_segment, new_revision, order_key, original_uid
from .storage import ExperimentRef, IndexedStorage, Lease, Page, Versioned, plain

#: A claim takes milliseconds between taking a queue marker and writing its job: if its
#: claimer dies in between, the job goes back to the queue this long after.
TAKE_SECONDS = 2.0
EXPERIMENT_SCHEMA = "urn:schedy:experiment"
JOB_SCHEMA = "urn:schedy:job"


@dataclass(frozen=True)
class StoredObject:
    """Bytes read from an object store, their ETag and last-modified time (store clock)."""

    data: bytes
    etag: str
    modified: float


@dataclass(frozen=True)
class ObjectInfo:
    """A listed key and its last-modified time (store clock, seconds since the epoch)."""

    key: str
    modified: float


class PreconditionFailed(Exception):
    """A conditional write was refused; ``missing`` when the key does not exist."""

    def __init__(self, key: str, missing: bool = False):
        super().__init__(key)
        self.key = key
        self.missing = missing


class ObjectStore(ABC):
    """Bytes at keys with ETags and conditional writes. Keys are '/'-separated safe segments.

    Every put changes the ETag when the bytes change; :class:`ObjectStorage` puts a fresh
    revision in every document so that every write changes the bytes.
    """

    url: str = ""
    #: Whether :meth:`locked` holds a real lock, under which :meth:`put` calls
    #: ``before_write`` and writes (a files store); without one, ObjectStorage may write a
    #: job's marker again after the job (see ObjectStorage._write_job).
    has_locks: bool = False
    #: How much older than it is an object's modification time may make it look (S3 dates
    #: objects and answers to the second): lease ages are taken this much younger, so that
    #: a lease renewed in time is never judged expired.
    clock_resolution: float = 0.0

    @abstractmethod
    def get(self, key: str) -> StoredObject | None:
        """The object at ``key``, or None."""

    @abstractmethod
    def put(
        self,
        key: str,
        data: bytes,
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
        sync_name: bool = True,
        before_write: Callable[[StoredObject | None], None] | None = None,
    ) -> str:
        """Write ``data``; return its ETag. Raise PreconditionFailed when a condition fails.

        With ``sync_name=False`` the write may be undone by a crash (the key then holds
        its previous version or nothing), but never torn: stores that make each write
        durable ignore it; a files store skips one directory fsync.

        ``before_write`` is called just before the write, once ``if_match`` is known to
        hold: under the store's lock where it has one, else after a read, so that a write
        sure to be refused does not call it. It is given the version that an If-Match
        write replaces (read to compare), None for other writes. (ObjectStorage writes
        index markers in it.)
        """

    @abstractmethod
    def delete(self, key: str, *, if_match: str | None = None) -> None:
        """Delete ``key`` (no error if missing, unless ``if_match`` is given)."""

    @abstractmethod
    def list(self, prefix: str, *, start_after: str | None = None, limit: int = 1000) -> list[ObjectInfo]:
        """Objects directly under ``prefix`` (which ends in '/'), sorted by key, at most ``limit``."""

    @abstractmethod
    def now(self) -> float:
        """The store's clock, seconds since the epoch, comparable with ``modified``."""

    def delete_marker(self, key: str) -> None:
        """Delete an index marker, whose coming back after a crash is harmless (it is
        dropped when met): stores may skip making this delete durable."""
        self.delete(key)

    def put_marker(self, key: str, data: bytes) -> None:
        """Write an index marker (unconditionally, durably): no one compares markers, so
        stores with locks need not take one, and it may be called within ``before_write``
        (under another key's lock)."""
        self.put(key, data)

    def take(self, src: str, dst: str, age: float = 0.0) -> bool | None:
        """Move the marker ``src`` to ``dst`` (replacing it), atomically and durably, with a
        modified time ``age`` seconds before the store's now: True for the one caller that
        moved it, False if it was gone. None (the default): this store cannot, and callers
        go another way."""
        return None

    def first_keys(self, prefix: str, limit: int) -> list[str]:
        """Up to ``limit`` of the first keys under ``prefix``, in order: a hint, which may
        miss keys written in the last moments. Stores whose listings are not sorted
        (a directory) override it to avoid sorting a long listing on every call."""
        return [info.key for info in self.list(prefix, limit=limit)]

    def draw_first_keys(self, prefix: str, among: int) -> Iterator[str]:
        """The first ``among`` keys under ``prefix`` in random order, drawn as the caller
        iterates: a hint, as ``first_keys``. Stores that check each key they hand out
        (a directory's snapshot) check only those drawn.

        Example: ``next(store.draw_first_keys("queue/E/", 32))`` spreads racing claimers
        over the 32 oldest queued jobs."""
        keys = self.first_keys(prefix, among)
        random.shuffle(keys)
        return iter(keys)

    def locked(self, key: str) -> ContextManager:
        """Hold the lock under which ``key``'s conditional writes compare and write, where
        the store has one (a files store); the default has none and holds nothing.

        Example: ``with store.locked("jobs/E/j"): ...`` sees no If-Match write of that
        key begin and end (nor the markers its ``before_write`` makes)."""
        return contextlib.nullcontext()

    def get_many(self, keys: Iterable[str]) -> list[StoredObject | None]:
        """``get`` for several keys; stores with latency override it to fetch in parallel."""
        return [self.get(key) for key in keys]

    def close(self) -> None:
        """Release resources."""


class ObjectStorage(IndexedStorage):
    """The storage contract on an :class:`ObjectStore`. See the module docstring."""

    def __init__(self, store: ObjectStore):
        self.store = store
        self.url = store.url
        # Experiment documents are read before every claim and rarely change: a document
        # already checked is not parsed and checked again while its ETag stays the same.
        self._checked_experiments: dict[str, tuple[str, dict]] = {}
        # Lease markers this process took from the queue (take_queued) and has not written
        # the claim of yet: dated to expire soon, they are renewed only once the job is written.
        self._taken: set[str] = set()

    # -- keys
    @staticmethod
    def _experiment_key(name: str) -> str:
        return f"experiments/{encode_segment(name)}"

    @staticmethod
    def _prefix(kind: str, exp: ExperimentRef) -> str:
        return f"{kind}/{encode_segment(exp.name)}/{exp.uid}/"

    def _job_key(self, exp: ExperimentRef, job_id: str) -> str:
        return self._prefix("jobs", exp) + encode_segment(job_id)

    def _lease_key(self, exp: ExperimentRef, job_id: str, seconds: float) -> str:
        return f"{self._prefix('running', exp)}{encode_segment(job_id)}@{float(seconds)!r}"

    def _queue_key(self, exp: ExperimentRef, doc: dict) -> str:
        return f"{self._prefix('queue', exp)}{order_key(doc['created'])}-{encode_segment(doc['id'])}"

    # -- documents
    def _decode(self, data: bytes, schema_id: str, what: str) -> dict:
        doc = jsonio.loads(data, what)
        try:
            schema.check(doc, schema_id, what)
        except ValidationError as e:
            raise CorruptDocumentError(f"stored {e}") from None
        if schema_id == EXPERIMENT_SCHEMA and "uid" not in doc:
            doc["uid"] = original_uid(doc["name"])  # written back with the next update
        return doc

    def _read(self, key: str, schema_id: str, what: str) -> Versioned:
        obj = self.store.get(key)
        if obj is None:
            raise ResourceNotFoundError(f"{what} does not exist", 404)
        return Versioned(self._decode(obj.data, schema_id, what), obj.etag)

    def _write(
        self,
        key: str,
        doc: dict,
        schema_id: str,
        what: str,
        etag: str | None,
        create: bool,
        sync_name: bool = True,
        before_write: Callable[[StoredObject | None], None] | None = None,
    ) -> str:
        doc["revision"] = new_revision()
        schema.check(doc, schema_id, what)
        data = jsonio.dumps(doc, what)
        try:
            return self.store.put(
                key, data, if_match=etag, if_none_match=create, sync_name=sync_name, before_write=before_write
            )
        except PreconditionFailed as e:
            if create:
                raise ResourceExistsError(f"{what} exists already", 409) from None
            if e.missing:
                raise ResourceNotFoundError(f"{what} does not exist", 404) from None
            raise UnsafeUpdateError(f"{what} was changed by someone else since it was read", 412) from None

    def _delete(self, key: str, etag: str | None, what: str) -> None:
        if etag is None and self.store.get(key) is None:
            raise ResourceNotFoundError(f"{what} does not exist", 404)
        try:
            self.store.delete(key, if_match=etag)
        except PreconditionFailed as e:
            if e.missing:
                raise ResourceNotFoundError(f"{what} does not exist", 404) from None
            raise UnsafeUpdateError(f"{what} was changed by someone else since it was read", 412) from None

    def _page(
        self, prefix: str, cursor: str | None, limit: int, schema_id: str, kind: str,
        misplaced: Callable[[str, dict], str | None] | None = None,
    ) -> tuple[list, list, str | None, list]:
        """A page of documents; ``misplaced(key, doc)`` names what is wrong with a valid
        document that does not belong under its key (it goes to the problems)."""
        if cursor is not None and not (cursor.startswith(prefix) and "/" not in cursor[len(prefix):]):
            # A key of another listing: a store would page from somewhere else (or from the start).
            raise ValidationError(f"cursor {cursor!r} is not one of this listing's")
        infos = self.store.list(prefix, start_after=cursor, limit=limit)
        objects = self.store.get_many(info.key for info in infos)
        items, problems = [], []
        for info, obj in zip(infos, objects):
            if obj is None:  # deleted between listing and reading
                continue
            what = f"{kind} {decode_segment(info.key[len(prefix):])!r}"
            try:
                doc = self._decode(obj.data, schema_id, what)
            except CorruptDocumentError as e:
                problems.append(str(e))
                continue
            problem = misplaced(info.key, doc) if misplaced else None
            if problem:
                problems.append(problem)
            else:
                items.append(Versioned(doc, obj.etag))
        next_cursor = infos[-1].key if len(infos) == limit else None
        return items, problems, next_cursor, infos

    # -- experiments
    def get_experiment(self, name: str) -> Versioned:
        versioned = self.get_experiment_if_changed(name, None)
        assert versioned is not None
        return versioned

    def get_experiment_if_changed(self, name: str, etag: str | None) -> Versioned | None:
        key = self._experiment_key(name)
        obj = self.store.get(key)
        if obj is None:
            raise ResourceNotFoundError(f"experiment {name!r} does not exist", 404)
        if obj.etag == etag:
            return None
        checked = self._checked_experiments.get(key)
        if checked is None or checked[0] != obj.etag:
            checked = (obj.etag, self._decode(obj.data, EXPERIMENT_SCHEMA, f"experiment {name!r}"))
            problem = self._misplaced_experiment(key, checked[1])
            if problem:
                raise CorruptDocumentError(problem)
            if len(self._checked_experiments) > 256:
                self._checked_experiments.clear()
            self._checked_experiments[key] = checked
        return Versioned(plain(checked[1]), obj.etag)

    def create_experiment(self, doc: dict) -> str:
        name = doc["name"]
        return self._write(self._experiment_key(name), doc, EXPERIMENT_SCHEMA, f"experiment {name!r}", None, True)

    def update_experiment(self, doc: dict, etag: str | None) -> str:
        name = doc["name"]
        return self._write(self._experiment_key(name), doc, EXPERIMENT_SCHEMA, f"experiment {name!r}", etag, False)

    def delete_experiment(self, name: str, etag: str | None = None) -> None:
        what = f"experiment {name!r}"
        current = self._read(self._experiment_key(name), EXPERIMENT_SCHEMA, what)
        problem = self._misplaced_experiment(self._experiment_key(name), current.doc)
        if problem:
            raise CorruptDocumentError(problem)
        self._delete(self._experiment_key(name), etag or current.etag, what)
        exp = ExperimentRef(name, current.doc["uid"])
        for kind in ("queue", "running", "jobs", "state"):
            self._purge(self._prefix(kind, exp))

    def _purge(self, prefix: str) -> None:
        while True:
            infos = self.store.list(prefix, limit=1000)
            if not infos:
                return
            for info in infos:
                self.store.delete(info.key)

    def list_experiments(self, cursor: str | None = None, limit: int = 100) -> Page:
        items, problems, next_cursor, _ = self._page(
            "experiments/", cursor, limit, EXPERIMENT_SCHEMA, "experiment", self._misplaced_experiment
        )
        return Page(items, next_cursor, problems)

    def _misplaced_experiment(self, key: str, doc: dict) -> str | None:
        """What is wrong with an experiment document stored under ``key`` that names another
        experiment (a file copied by hand): acting on it would act on the other one."""
        if self._experiment_key(doc["name"]) == key:
            return None
        return f"stored experiment {decode_segment(key.rsplit('/', 1)[1])!r} is experiment {doc['name']!r}"

    # -- jobs
    def _job_what(self, exp: ExperimentRef, job_id: str) -> str:
        return f"job {job_id!r} of experiment {exp.name!r}"

    def get_job(self, exp: ExperimentRef, job_id: str) -> Versioned:
        key, what = self._job_key(exp, job_id), self._job_what(exp, job_id)
        versioned = self._read(key, JOB_SCHEMA, what)
        problem = self._misplaced(exp, key, versioned.doc)
        if problem:
            raise CorruptDocumentError(problem)
        return versioned

    def _misplaced(self, exp: ExperimentRef, key: str, doc: dict) -> str | None:
        """What is wrong with a job document stored under ``key`` that names another job or
        experiment (a file copied by hand, say): acting on it would act on another job."""
        if doc["experiment"] == exp.name and self._job_key(exp, doc["id"]) == key:
            return None
        return f"stored {self._job_what(exp, decode_segment(key.rsplit('/', 1)[1]))} is job {doc['id']!r} of experiment {doc['experiment']!r}"

    @staticmethod
    def _marker_body(job_id: str) -> bytes:
        # Empty unless the job id was too long for a key segment and had to be shortened:
        # an empty object is the cheapest to create (a files store need not fsync its content).
        return jsonio.dumps({"job": job_id}) if "~~" in encode_segment(job_id) else b""

    def _mark(self, exp: ExperimentRef, doc: dict) -> None:
        marker = self._marker_body(doc["id"])
        if doc["status"] == "QUEUED":
            self.store.put_marker(self._queue_key(exp, doc), marker)
        elif doc["status"] == "RUNNING":
            self.store.put_marker(self._lease_key(exp, doc["id"], doc["lease"]["seconds"]), marker)

    def _unmark(self, exp: ExperimentRef, doc: dict) -> None:
        if doc["status"] != "RUNNING" and doc.get("lease"):
            if doc["status"] == "QUEUED":
                # Handed back (a worker stopped while claiming): another worker may claim it,
                # under the same lease length, before this deletion.
                self.drop_lease(exp, doc["id"], doc["lease"]["seconds"])
            else:
                # Ended by its holder: only a job queued again by someone else and claimed,
                # both between this write and the next line, could need the marker.
                self.store.delete_marker(self._lease_key(exp, doc["id"], doc["lease"]["seconds"]))

    def _check_job(self, exp: ExperimentRef, doc: dict) -> None:
        if doc.get("experiment") != exp.name:
            raise ValidationError(f"job {doc.get('id')!r} names experiment {doc.get('experiment')!r}, not {exp.name!r}")
        if doc.get("status") == "RUNNING" and not doc.get("lease"):
            raise ValidationError(f"job {doc.get('id')!r} is RUNNING without a lease")

    def _marker_key(self, exp: ExperimentRef, doc: dict) -> str | None:
        if doc.get("status") == "QUEUED":
            return self._queue_key(exp, doc)
        if doc.get("status") == "RUNNING":
            return self._lease_key(exp, doc["id"], doc["lease"]["seconds"])
        return None

    def _write_job(self, exp: ExperimentRef, doc: dict, etag: str | None, create: bool, keep_lease: bool = False) -> str:
        self._check_job(exp, doc)
        key, what = self._job_key(exp, doc["id"]), self._job_what(exp, doc["id"])
        marked, mark_again = [], []
        taken = self._lease_key(exp, doc["id"], doc["lease"]["seconds"]) if doc["status"] == "RUNNING" else None
        if taken not in self._taken:
            taken = None

        def mark(replaced: StoredObject | None) -> None:
            # Markers first: a crash before the job write leaves a marker without a job,
            # never the reverse. The store calls this only once If-Match holds, so a claim
            # that lost its race writes no lease marker (it would stand for the holder's lease).
            # A taken claim has its marker already, dated to expire soon if the job write
            # never comes: it is renewed after the write, not before.
            if taken is None:
                self._mark(exp, doc)
                marked.append(True)
                # Another process dropping a stale marker of the same name (this job's
                # earlier queueing or claim) deletes it, then reads the job to put it back
                # if needed. Where no lock holds that drop off (S3) and both fall between
                # this marker write and the job write, the job it reads is the one this
                # write replaces: if that job did not need the marker too (or is not
                # known), the marker is made again after the write. (A files store must
                # not: a claimer may take the job's queue marker in between, and a marker
                # made again would be a stale one, whose take would replace the claimer's
                # lease marker with one about to expire.)
                if not self.store.has_locks and (
                    etag is None or self._needed_marker(exp, replaced, None) != self._marker_key(exp, doc)
                ):
                    mark_again.append(True)

        # A RUNNING job's own writes need not survive a crash: its lease marker, made
        # durable first, lets recovery find it. If a crash undoes a claim's write, the lease
        # expires on a job still QUEUED, which recovery queues again; a job whose worker
        # went down with the machine is CRASHED and retried. A job's end (DONE, CRASHED,
        # PRUNED) is always durable.
        running = doc["status"] == "RUNNING"
        try:
            new_etag = self._write(key, doc, JOB_SCHEMA, what, etag, create, sync_name=not running, before_write=mark)
        except (ResourceExistsError, ResourceNotFoundError, UnsafeUpdateError):
            if marked:
                self._drop_stray_marker(exp, doc)
            raise
        if taken is not None:
            self._taken.discard(taken)
            self.store.put_marker(taken, self._marker_body(doc["id"]))  # the claim is written: its lease starts now
        elif mark_again:
            self._mark(exp, doc)
        if not keep_lease:
            self._unmark(exp, doc)
        return new_etag

    def _drop_stray_marker(self, exp: ExperimentRef, doc: dict) -> None:
        """After a refused write, drop the marker it wrote unless the stored job needs that same marker."""
        marker = self._marker_key(exp, doc)
        # Most often it does: a claim that lost its race wrote the winner's lease marker.
        if marker is not None and self._needed_marker(exp, self._stored_job(exp, doc["id"]), marker) != marker:
            self._drop_unless_needed(exp, marker, doc["id"])

    def _stored_job(self, exp: ExperimentRef, job_id: str) -> StoredObject | None:
        return self.store.get(self._job_key(exp, job_id))

    def _needed_marker(self, exp: ExperimentRef, stored: StoredObject | None, unreadable: str | None) -> str | None:
        """The marker that the job ``stored`` needs, None if none (or no job), ``unreadable``
        if it cannot be read."""
        try:
            return self._marker_key(exp, jsonio.loads(stored.data)) if stored else None
        except (CorruptDocumentError, KeyError, TypeError, AttributeError, ValueError):
            return unreadable  # left for a person, as the job itself

    def _drop_unless_needed(self, exp: ExperimentRef, marker: str, job_id: str) -> None:
        """Delete ``marker``, then put it back if job ``job_id``, read after the deletion,
        needs that very marker (or cannot be read). Reading first and deleting after would
        let a writer that made the same marker in between (the job queued again, or claimed
        again with the same lease length) lose it, and its job would never be handed out or
        recovered. Under the job's lock where the store has one, so that no write of the
        job falls between the deletion and the read (its marker made before, its job after)."""
        job_key = self._job_key(exp, job_id)
        with self.store.locked(job_key):
            self.store.delete_marker(marker)
            stored = self.store.get(job_key)
        if self._needed_marker(exp, stored, marker) == marker:
            self.store.put_marker(marker, self._marker_body(job_id))

    def create_job(self, exp: ExperimentRef, doc: dict) -> str:
        return self._write_job(exp, doc, None, True)

    def update_job(self, exp: ExperimentRef, doc: dict, etag: str | None) -> str:
        return self._write_job(exp, doc, etag, False)

    def crash_expired(self, exp: ExperimentRef, doc: dict, etag: str) -> str:
        return self._write_job(exp, doc, etag, False, keep_lease=True)

    def delete_job(self, exp: ExperimentRef, job_id: str, etag: str | None = None) -> None:
        self._delete(self._job_key(exp, job_id), etag, self._job_what(exp, job_id))

    def list_jobs(
        self, exp: ExperimentRef, cursor: str | None = None, limit: int = 100, status: str | None = None
    ) -> Page:
        items, problems, next_cursor, _ = self._page(
            self._prefix("jobs", exp), cursor, limit, JOB_SCHEMA, f"job of experiment {exp.name!r},",
            lambda key, doc: self._misplaced(exp, key, doc),
        )
        if status is not None:
            items = [item for item in items if item.doc["status"] == status]
        return Page(items, next_cursor, problems)

    # -- indexes
    def _marker_job_id(self, key: str, segment: str) -> str | None:
        """The id of the job a marker stands for, None if the marker is gone; a
        CorruptDocumentError for a marker Schedy did not write (a stray file in the store)."""
        if "~~" not in segment:
            return decode_segment(segment)
        obj = self.store.get(key)  # a shortened (hashed) name: the marker body has the id
        if obj is None:
            return None
        body = jsonio.loads(obj.data, f"marker {key!r}")
        job_id = body.get("job") if isinstance(body, dict) else None
        if not isinstance(job_id, str):
            raise CorruptDocumentError(f"marker {key!r} does not name its job")
        return job_id

    def _stray(self, key: str, problem: str) -> None:
        # Left in place for a person to look at (as a corrupt job is); the rest goes on.
        warnings.warn(f"skipped {problem}", stacklevel=3)

    def queued(self, exp: ExperimentRef, limit: int) -> list[tuple[str, str | None]]:
        prefix = self._prefix("queue", exp)
        return list(self._with_job_ids(prefix, self.store.first_keys(prefix, limit)))

    def draw_queued(self, exp: ExperimentRef, among: int) -> Iterator[tuple[str, str | None]]:
        prefix = self._prefix("queue", exp)
        return self._with_job_ids(prefix, self.store.draw_first_keys(prefix, among))

    def _with_job_ids(self, prefix: str, keys: Iterable[str]) -> Iterator[tuple[str, str | None]]:
        """(marker, job id) for each queue marker still there; the id is None for a marker
        that names no job (which the claimer passes over)."""
        for key in keys:
            _, dash, segment = key[len(prefix):].partition("-")
            try:
                if not dash:
                    raise CorruptDocumentError(f"queue marker {key!r} is not one Schedy writes")
                job_id = self._marker_job_id(key, segment)
            except CorruptDocumentError as e:
                self._stray(key, str(e))
                yield key, None
                continue
            if job_id is not None:
                yield key, job_id

    def drop_queued(self, exp: ExperimentRef, marker: str, job_id: str | None = None) -> None:
        if job_id is None:
            self.store.delete_marker(marker)
        else:
            self._drop_unless_needed(exp, marker, job_id)

    def take_queued(self, exp: ExperimentRef, marker: str, job_id: str, seconds: float) -> bool | None:
        # The queue marker becomes the claim's lease marker in one move (a files store's
        # rename): of racing claimers exactly one moves it, and the others learn it without
        # writing anything. The lease is dated so that it expires TAKE_SECONDS from now
        # unless the claim's job write renews it (it does, milliseconds later): a claimer
        # that dies in between leaves a QUEUED job under an expired lease, which recovery
        # puts back in the queue.
        lease_key = self._lease_key(exp, job_id, seconds)
        took = self.store.take(marker, lease_key, max(0.0, seconds - TAKE_SECONDS))
        if took:
            self._taken.add(lease_key)
        return took

    def untake_queued(self, exp: ExperimentRef, marker: str, job_id: str, seconds: float) -> None:
        lease_key = self._lease_key(exp, job_id, seconds)
        self._taken.discard(lease_key)
        # Under the job's lock: a claim written between the read and the move (another
        # worker that took the queue marker a rewrite made again, onto this same lease
        # marker) would have its lease marker moved back to the queue.
        with self.store.locked(self._job_key(exp, job_id)):
            needed = self._needed_marker(exp, self._stored_job(exp, job_id), lease_key)  # unreadable: the marker stays
            if needed == marker:
                self.store.take(lease_key, marker)  # still queued: back in the queue
                return
        if needed != lease_key:
            self._drop_unless_needed(exp, lease_key, job_id)

    def marker_modified(self, marker: str) -> float | None:
        obj = self.store.get(marker)
        return obj.modified if obj else None

    def now(self) -> float:
        return self.store.now()

    def leases(self, exp: ExperimentRef) -> list[Lease]:
        prefix = self._prefix("running", exp)
        infos = self.store.list(prefix, limit=100_000)
        if not infos:
            return []
        now = self.store.now()
        found = []
        for info in infos:
            segment, _, seconds = info.key[len(prefix):].rpartition("@")
            length = _number(seconds) if segment else None
            try:
                if length is None or not 0 < length <= 1e9:
                    raise CorruptDocumentError(f"lease marker {info.key!r} is not one Schedy writes")
                job_id = self._marker_job_id(info.key, segment)
            except CorruptDocumentError as e:
                self._stray(info.key, str(e))
                continue
            if job_id is not None:
                found.append(Lease(job_id, length, self._age(now, info.modified)))
        return found

    def renew_lease(self, exp: ExperimentRef, job_id: str, seconds: float) -> None:
        self.store.put_marker(self._lease_key(exp, job_id, seconds), self._marker_body(job_id))

    def lease_age(self, exp: ExperimentRef, job_id: str, seconds: float) -> float | None:
        modified = self.marker_modified(self._lease_key(exp, job_id, seconds))
        return None if modified is None else self._age(self.store.now(), modified)

    def _age(self, now: float, modified: float) -> float:
        """A lease marker's age, never more than it can be (see ObjectStore.clock_resolution)."""
        return max(0.0, now - modified - self.store.clock_resolution)

    def drop_lease(self, exp: ExperimentRef, job_id: str, seconds: float) -> None:
        self._drop_unless_needed(exp, self._lease_key(exp, job_id, seconds), job_id)

    # -- scheduler state
    def get_state(self, exp: ExperimentRef, key: str) -> Versioned | None:
        obj = self.store.get(self._prefix("state", exp) + encode_segment(key))
        if obj is None:
            return None
        return Versioned(jsonio.loads(obj.data, f"state {key!r} of experiment {exp.name!r}"), obj.etag)

    def put_state(self, exp: ExperimentRef, key: str, doc: dict, etag: str | None, create: bool = False) -> str:
        what = f"state {key!r} of experiment {exp.name!r}"
        doc["revision"] = new_revision()
        try:
            return self.store.put(
                self._prefix("state", exp) + encode_segment(key), jsonio.dumps(doc, what), if_match=etag, if_none_match=create
            )
        except PreconditionFailed:
            raise (ResourceExistsError if create else UnsafeUpdateError)(f"{what} changed concurrently", 412) from None

    def close(self) -> None:
        self.store.close()


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None
