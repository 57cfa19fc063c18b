"""Heartbeats: one background thread per process schedules the lease renewals of the jobs
it holds; each renewal runs on a short-lived thread of its own, so that a store out of
reach cannot delay the renewals of jobs held in other stores.

A claimed (RUNNING) job stays with its worker while the worker renews its lease every
third of the lease length. If the stored job changed under the worker (its lease
expired and another worker took over), the heartbeat notices, stops renewing and marks
the job lost: ``job.should_stop()`` turns True and the next ``job.put()`` raises
``LeaseLostError`` instead of writing over the new holder.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING

from .forks import renew_locks_in_children

if TYPE_CHECKING:
    from .job import Job

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Renews the leases of held jobs from one daemon thread."""

    def __init__(self) -> None:
        self._reset()
        if hasattr(os, "register_at_fork"):
            # A forked child has none of the parent's threads, and may have copied the lock
            # while one of them held it: it starts afresh (the parent keeps renewing its jobs).
            os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._jobs: dict[int, tuple[Job, float]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._beating: set[int] = set()
        self._next_at = 0.0  # when the thread wakes up next (monotonic clock)

    def hold(self, job: "Job") -> None:
        """Start renewing ``job``'s lease."""
        # A heartbeat holds the job's lock across its store requests: a child forked then
        # (to run the job) makes a new one. Only held jobs: forking costs a little per job.
        renew_locks_in_children(job)
        with self._lock:
            due = time.monotonic() + job._lease_seconds() / 3
            self._jobs[id(job)] = (job, due)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="schedy-heartbeat", daemon=True)
                self._thread.start()
            elif due >= self._next_at:
                return  # the thread wakes up before this job's first beat anyway
        self._wake.set()

    def release(self, job: "Job") -> None:
        """Stop renewing ``job``'s lease."""
        with self._lock:
            self._jobs.pop(id(job), None)

    def held(self) -> list["Job"]:
        """The jobs whose leases this process renews."""
        with self._lock:
            return [job for job, _ in self._jobs.values()]

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._jobs:
                    self._thread = None
                    return
                now = time.monotonic()
                due = [job for job, at in self._jobs.values() if at <= now]
                for job in due:
                    self._jobs[id(job)] = (job, now + job._lease_seconds() / 3)
                next_at = self._next_at = min(at for _, at in self._jobs.values())
            for job in due:
                # One beat per thread: a store that is slow or out of reach (retrying) must not
                # delay the renewals of jobs held in other stores.
                with self._lock:
                    if id(job) in self._beating:
                        continue
                    self._beating.add(id(job))
                threading.Thread(target=self._beat, args=(job,), name="schedy-beat", daemon=True).start()
            self._wake.wait(max(0.0, next_at - time.monotonic()))
            self._wake.clear()

    def _beat(self, job: "Job") -> None:
        try:
            if not job._heartbeat():
                self.release(job)
        except Exception as e:  # a failed beat is retried at the next one
            log.warning("heartbeat of job %s failed: %s", job.job_id, e)
        finally:
            with self._lock:
                self._beating.discard(id(job))


keeper = LeaseKeeper()
