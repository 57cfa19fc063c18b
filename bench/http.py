"""HTTP service throughput: claims/s and GET-job requests/s with 16 concurrent clients,
p50/p99 latency, next to the same work on the files store used directly. A claim is a
job's whole worker-side life, as in bench/claims.py: next_job(), then the job stored DONE
with a result (two requests through the service); its latency covers both.

Run: python3 bench/http.py [--clients 16] [--claims 60] [--seconds 5]
"""

from __future__ import annotations

import os
import sys

# This file is named http.py: keep its directory off sys.path so that it never hides the standard library's http.
sys.path[0] = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

import argparse  # noqa: E402
import multiprocessing  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402


def _client(kind: str, url: str, token: str | None, count: int, seconds: float, job_ids: list[str]):
    if token:
        os.environ["SCHEDY_TOKEN"] = token
    import schedy

    exp = schedy.SchedyDB(db=url).get_experiment("Bench")
    latencies = []
    start = time.perf_counter()
    if kind == "claim":
        for _ in range(count):
            t = time.perf_counter()
            with exp.next_job() as job:
                job.results["i2"] = job.hyperparameters["i"] ** 2
            latencies.append(time.perf_counter() - t)
    else:
        rng = random.Random(os.getpid())
        while time.perf_counter() - start < seconds:
            t = time.perf_counter()
            exp.get_job(rng.choice(job_ids))
            latencies.append(time.perf_counter() - t)
    return latencies, start, time.perf_counter()


def _fill(store: str, jobs: int) -> list[str]:
    import schedy

    db = schedy.SchedyDB(db=store)
    db.add_experiment(schedy.ManualSearch("Bench"))
    exp = db.get_experiment("Bench")
    return [exp.add_job(hyperparameters={"i": i}).job_id for i in range(jobs)]


def _run(kind, url, token, clients, count, seconds, job_ids):
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(clients) as pool:
        results = pool.starmap(_client, [(kind, url, token, count, seconds, job_ids)] * clients)
    latencies = sorted(x for r in results for x in r[0])
    elapsed = max(r[2] for r in results) - min(r[1] for r in results)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return len(latencies) / elapsed, statistics.median(latencies) * 1000, p99 * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--claims", type=int, default=60, help="claims per client")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of the GET phase")
    parser.add_argument("--workers", type=int, default=1, help="schedy serve --workers")
    args = parser.parse_args()
    from tests.backends.http import Service

    rows = []
    for backend in ("files (direct)", "http service"):
        root = tempfile.mkdtemp(prefix="schedy-bench-")
        store = os.path.join(root, "store")
        job_ids = _fill(store, args.clients * args.claims)
        service = None
        url, token = store, None
        if backend == "http service":
            service = Service(store, workers=args.workers).start().wait()
            url, token = service.url, service.token
        try:
            get = _run("get", url, token, args.clients, args.claims, args.seconds, job_ids)
            claim = _run("claim", url, token, args.clients, args.claims, args.seconds, job_ids)
        finally:
            if service:
                service.stop()
        rows.append((backend, claim, get))
    print(f"{args.clients} concurrent client processes, {args.clients * args.claims} queued jobs, "
          f"schedy serve --workers {args.workers}, {os.cpu_count()} cores")
    print(f"{'store':<16} {'claims/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'GET/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for backend, claim, get in rows:
        print(f"{backend:<16} {claim[0]:9.0f} {claim[1]:8.1f} {claim[2]:8.1f} {get[0]:8.0f} {get[1]:8.1f} {get[2]:8.1f}")


if __name__ == "__main__":
    main()
