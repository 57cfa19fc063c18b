"""The floor under bench/claims.py: the file-system calls of a claim cycle on the files
store, made without Python's or Schedy's own work, by 1, 2 and 8 processes.

A cycle here is what one claim does to the disk: read the experiment and the job, take the
queue marker (rename into the running directory, directory fsync), write the job RUNNING
(a temporary file in a per-process directory, fsync, rename), write it DONE (the same, then
a directory fsync) and remove the lease marker. The gap between this and bench/claims.py is
the cost of everything else.

``--fresh`` writes each version to a new temporary file and lets the rename free the old
one; the default recycles, as the store does (schedy_backends/spares.py): the displaced
file is kept by a hard link and overwritten by a later write. The two side by side show
what recycling saves.

``--cycles`` adds floors of cycles the store does not make, for what a different design
would gain: ``no-claim-write`` skips the RUNNING job write (three fsyncs a cycle: the job
would stay QUEUED on disk while it runs, its state in the lease marker alone), ``journal``
also appends the result to a per-process log with one fdatasync instead of replacing the
job document (two; documents would no longer be files a person can read). All run
alternately in the same run.

Run: python3 bench/claims_floor.py [--jobs 800] [--processes 1,2,8] [--fresh] [--cycles store,no-claim-write,journal]
"""

from __future__ import annotations

import argparse
import atexit
import multiprocessing
import os
import resource
import shutil
import tempfile
import time

DOC = b'{"status": "QUEUED", "padding": "' + b"x" * 600 + b'"}'


def _sync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, os.fstat(fd).st_size + 1)
    finally:
        os.close(fd)


class _Writer:
    """Replaces documents through temporary files in this process's directory; with
    ``recycle``, overwrites displaced versions' files (no delay: nothing reads them here)."""

    def __init__(self, root: str, recycle: bool):
        self.directory = os.path.join(root, ".tmp", str(os.getpid()))
        os.makedirs(self.directory)
        self.recycle, self.spares, self.count = recycle, [], 0

    def _name(self) -> str:
        self.count += 1
        return os.path.join(self.directory, str(self.count))

    def replace(self, path: str, data: bytes, sync_dir: bool) -> None:
        if self.spares:
            tmp = self.spares.pop()
            fd = os.open(tmp, os.O_WRONLY)
        else:
            tmp = self._name()
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, data)
            os.ftruncate(fd, len(data))
            os.fsync(fd)
        finally:
            os.close(fd)
        if self.recycle:
            spare = self._name()
            os.link(path, spare)
            self.spares.append(spare)
        os.replace(tmp, path)
        if sync_dir:
            _sync_dir(os.path.dirname(path))


def _worker(root: str, ids: range, recycle: bool, cycle: str, barrier, results) -> None:
    writer = _Writer(root, recycle)
    journal = os.open(f"{writer.directory}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    barrier.wait()
    start, before = time.time(), resource.getrusage(resource.RUSAGE_SELF)
    for i in ids:
        job, lease = f"{root}/jobs/{i}.json", f"{root}/running/{i}.json"
        _read(f"{root}/experiment.json")
        _read(job)
        os.rename(f"{root}/queue/{i}.json", lease)
        _sync_dir(f"{root}/running")
        if cycle == "store":
            writer.replace(job, DOC.replace(b"QUEUED", b"RUNNING"), sync_dir=False)
        if cycle == "journal":
            os.write(journal, DOC.replace(b"QUEUED", b"DONE") + b"\n")
            os.fdatasync(journal)
        else:
            writer.replace(job, DOC.replace(b"QUEUED", b"DONE"), sync_dir=True)
        os.unlink(lease)
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    results.put((start, time.time(), len(ids), cpu))


def cycles_per_second(processes: int, jobs: int, recycle: bool = True, cycle: str = "store") -> tuple[float, float]:
    """Cycles per second and CPU milliseconds per cycle with ``processes`` processes."""
    root = tempfile.mkdtemp(prefix="schedy-floor-")
    # Removed at exit, not between rows: a large deletion slows inode allocation for a while.
    atexit.register(shutil.rmtree, root, True)
    for name in ("jobs", "queue", "running", ".tmp"):
        os.makedirs(os.path.join(root, name))
    with open(os.path.join(root, "experiment.json"), "wb") as f:
        f.write(b'{"name": "Floor"}')
    for i in range(jobs):
        with open(os.path.join(root, "jobs", f"{i}.json"), "wb") as f:
            f.write(DOC)
        open(os.path.join(root, "queue", f"{i}.json"), "wb").close()
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(root, range(k, jobs, processes), recycle, cycle, barrier, results))
             for k in range(processes)]
    for proc in procs:
        proc.start()
    done = [results.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join()
    elapsed = max(d[1] for d in done) - min(d[0] for d in done)
    return jobs / elapsed, sum(d[3] for d in done) / jobs * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=800)
    parser.add_argument("--processes", default="1,2,8")
    parser.add_argument("--fresh", action="store_true", help="also measure new temporary files, side by side")
    parser.add_argument("--cycles", default="store", help="store, no-claim-write, journal (comma-separated)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of all the rows, alternating")
    args = parser.parse_args()
    modes = [True, False] if args.fresh else [True]
    cycles = args.cycles.split(",")
    if not set(cycles) <= {"store", "no-claim-write", "journal"}:
        parser.error("--cycles takes store, no-claim-write and journal")
    print("| processes | cycle | files | cycles/s | CPU ms a cycle |")
    print("|---:|---|---|---:|---:|")
    for _ in range(args.repeat):
        for processes in [int(p) for p in args.processes.split(",")]:
            for cycle in cycles:
                for recycle in modes:
                    rate, cpu = cycles_per_second(processes, args.jobs, recycle, cycle)
                    files = "recycled" if recycle else "new"
                    print(f"| {processes} | {cycle} | {files} | {rate:.0f} | {cpu:.2f} |", flush=True)


if __name__ == "__main__":
    main()
