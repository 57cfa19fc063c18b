"""The s3 backend on a local S3-protocol server, next to the files store.

1. S3 requests per ``next_job()`` (botocore's ``before-send`` events, counted by the
   store) with 10 and with 10,000 finished jobs in the experiment: the claim path lists
   only the queue and the running leases, so the two figures should be equal.
2. Claims per second (claim a queued job, finish it DONE) by 1 and by 4 worker
   processes, timed from a barrier once all are started, against moto's S3 server on loopback (served single-threaded, as the
   tests do) and against the files store in a temporary directory, same jobs, same run.

moto is a Python emulator, far slower per request than S3 itself: the S3 figures
measure requests per claim times this server's latency, not AWS's.

Usage: python3 bench/s3.py [--jobs 200] [--history 10000]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# The repository instead of bench/ (whose http.py would hide the standard library's http).
sys.path[0] = str(Path(__file__).resolve().parents[1])

import schedy  # noqa: E402
from tests.workers import claimed_jobs  # noqa: E402


def finished_jobs(storage, ref, first: int, count: int) -> None:
    def create(i):
        storage.create_job(ref, {
            "schemaVersion": 1, "id": f"done-{i:06d}", "experiment": ref.name, "status": "DONE",
            "hyperparameters": {"i": i}, "results": {"loss": i}, "created": "2026-01-01T00:00:00.000000Z",
        })

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, range(first, first + count)))


def requests_per_next_job(exp, store, samples: int = 5) -> list[int]:
    costs = []
    for _ in range(samples):
        exp.add_job(hyperparameters={"probe": 1})
        before = store.requests
        job = exp.next_job()
        costs.append(store.requests - before)
        job.status = "DONE"
        job.put()
    return costs


def drain(url: str, name: str, barrier, queue) -> None:
    exp = schedy.SchedyDB(db=url).get_experiment(name)
    barrier.wait()  # timed from here: not the interpreter's start and imports
    start, done = time.time(), 0
    for job in claimed_jobs(exp):
        with job:
            job.results["ok"] = 1
        done += 1
    queue.put((start, time.time(), done))


def claims_per_second(url: str, name: str, jobs: int, workers: int) -> float:
    """Claims/s from the moment all ``workers`` are ready to the last one's last claim."""
    db = schedy.SchedyDB(db=url)
    db.add_experiment(schedy.ManualSearch(name))
    exp = db.get_experiment(name)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: exp.add_job(hyperparameters={"i": i}), range(jobs)))
    ctx = multiprocessing.get_context("spawn")
    barrier, queue = ctx.Barrier(workers), ctx.Queue()
    procs = [ctx.Process(target=drain, args=(url, name, barrier, queue)) for _ in range(workers)]
    for p in procs:
        p.start()
    runs = [queue.get(timeout=1800) for _ in procs]
    for p in procs:
        p.join()
    done = sum(run[2] for run in runs)
    assert done == jobs, (done, jobs)
    db.close()
    return jobs / (max(run[1] for run in runs) - min(run[0] for run in runs))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--history", type=int, default=10_000)
    args = parser.parse_args()

    from tests.backends.s3 import MotoServer

    tmp = Path(tempfile.mkdtemp(prefix="schedy-bench-"))
    server = MotoServer(tmp)
    os.environ.update(AWS_ENDPOINT_URL=server.endpoint, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                      AWS_DEFAULT_REGION="us-east-1")
    try:
        url = f"s3://{server.new_bucket()}/bench"
        db = schedy.SchedyDB(db=url)
        db.add_experiment(schedy.ManualSearch("History"))
        exp = db.get_experiment("History")
        store = db.storage.store
        finished_jobs(db.storage, exp._ref(), 0, 10)
        requests_per_next_job(exp, store, 1)  # first use runs the conditional-write probe
        few = requests_per_next_job(exp, store)
        finished_jobs(db.storage, exp._ref(), 10, args.history - 10)
        many = requests_per_next_job(exp, store)
        db.close()
        print("S3 requests per next_job() (5 claims each)")
        print(f"  {10:>6} finished jobs: {few}")
        print(f"  {args.history:>6} finished jobs: {many}")

        print(f"\nclaims per second ({args.jobs} queued jobs, claim + finish DONE)")
        print(f"  {'workers':>7}  {'files store':>11}  {'S3 (moto, loopback)':>19}")
        for workers in (1, 4):
            files = claims_per_second(str(tmp / f"files-{workers}"), "Claims", args.jobs, workers)
            s3 = claims_per_second(f"s3://{server.new_bucket()}/bench", "Claims", args.jobs, workers)
            print(f"  {workers:>7}  {files:>11.1f}  {s3:>19.1f}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
