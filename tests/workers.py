"""Worker process bodies for the multi-process tests (importable, so ``spawn`` can run them),
and the claim loop they and bench/ share."""

from __future__ import annotations

import os
import time
from typing import Iterator

import schedy
from schedy.errors import NoJobError


class StopAboveOne(schedy.ManualSearch):
    """An early-stopping scheduler: a job whose last reported loss is above 1 should stop.
    ``told`` keeps the (job id, status) of each finished job the scheduler is told of."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.told: list[tuple[str, str]] = []

    def should_stop(self, ctx, job):
        return bool(job.history) and job.history[-1]["loss"] > 1

    def on_job_finished(self, ctx, doc):
        self.told.append((doc["id"], doc["status"]))


def claimed_jobs(experiment) -> Iterator["schedy.Job"]:
    """Claim ``experiment``'s jobs one after the other until ``next_job`` has none left."""
    while True:
        try:
            yield experiment.next_job()
        except NoJobError:
            return


def add_and_drain(url: str, name: str, first: int, count: int, barrier, ran_path: str) -> None:
    """Queue jobs ``first .. first+count-1``, wait for the other workers, then drain the queue.

    Every job this worker ran is appended (and flushed) to ``ran_path`` *before* the
    job is stored DONE, so a job run twice shows up twice even if a write were lost.
    """
    db = schedy.SchedyDB(db=url)
    exp = db.get_experiment(name)
    for i in range(first, first + count):
        exp.add_job(job_id=f"j{i:05d}", hyperparameters={"i": i})
    barrier.wait(timeout=600)
    with open(ran_path, "a", encoding="utf-8") as ran:
        for job in claimed_jobs(exp):
            with job:
                ran.write(job.job_id + "\n")
                ran.flush()
                job.results = {"double": job.hyperparameters["i"] * 2, "pid": os.getpid()}
    db.close()


def claim_and_hang(url: str, name: str, claimed_path: str) -> None:
    """Claim one job, say which, then work on it forever (until killed)."""
    exp = schedy.SchedyDB(db=url).get_experiment(name)
    job = exp.next_job()
    with open(claimed_path + ".tmp", "w", encoding="utf-8") as f:
        f.write(job.job_id)
    os.replace(claimed_path + ".tmp", claimed_path)
    while True:
        time.sleep(0.1)


def poll_and_finish(url: str, name: str, deadline_seconds: float, done_path: str) -> None:
    """Ask for jobs until one comes (or the deadline passes), finish it, record the store's time."""
    db = schedy.SchedyDB(db=url)
    exp = db.get_experiment(name)
    end = time.monotonic() + deadline_seconds
    while time.monotonic() < end:
        try:
            job = exp.next_job()
        except NoJobError:
            time.sleep(0.05)
            continue
        with job:
            job.results = {"x": job.hyperparameters["x"], "pid": os.getpid()}
        with open(done_path, "w", encoding="utf-8") as f:
            f.write(job.job_id)
        return


def work_in_with_block(url: str, name: str, claimed_path: str) -> None:
    """Claim one job and work on it inside ``with job:`` until a signal ends the process."""
    exp = schedy.SchedyDB(db=url).get_experiment(name)
    with exp.next_job() as job:
        with open(claimed_path + ".tmp", "w", encoding="utf-8") as f:
            f.write(job.job_id)
        os.replace(claimed_path + ".tmp", claimed_path)
        while True:
            time.sleep(0.1)
