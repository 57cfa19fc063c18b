"""Claims on the files store: claims/s with 1, 4, 8 and 16 worker processes next to Optuna's
JournalFileBackend with RandomSampler (ask + tell) in the same run; next_job() alone with 8
processes next to Optuna's ask() alone; 8 processes draining 400 jobs, checked (each job
run once, every result stored); claims/s and next_job() cost against a long history; lease
renewal overhead.

A "claim" in the table is one job's whole life on the worker side: next_job() takes a
queued job (QUEUED -> RUNNING, durable), the job ends DONE with a result (durable).
Optuna's counterpart is one ask() + tell(). The row after the table times next_job()
alone (the jobs stay RUNNING), against Optuna's ask() alone (a trial created RUNNING with
its sampled parameter). Every Schedy write is fsynced (file and directory).
Each row also gives the CPU time (user + system) the worker processes spent per claim
(trial), from the barrier to their last claim.

Run: python3 bench/claims.py [--jobs 3000] [--processes 1,4,8,16] [--history 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import atexit
import collections
import multiprocessing
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from typing import TYPE_CHECKING, NamedTuple

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

if TYPE_CHECKING:
    import schedy


def _tempdir(prefix: str) -> str:
    """A temporary directory, removed when the benchmark exits (not before: mass deletions
    slow the file system's inode allocation for a while, which would tilt later rows)."""
    path = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, path, True)
    return path


def _fast_db(path: str):
    """A SchedyDB whose writes skip fsync: only for seeding, never for what is measured."""
    import schedy
    from schedy.objects import ObjectStorage
    from schedy_backends.files import FileObjectStore

    db = schedy.SchedyDB(db=path)
    db._storage = ObjectStorage(FileObjectStore(path, durable=False))
    return db


def _cpu_seconds() -> tuple[float, float]:
    """This process's (user, system) CPU seconds so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def _report(times, start: float, cpu: tuple[float, float], done: int) -> None:
    user, system = _cpu_seconds()
    times.put((start, time.time(), done, user - cpu[0], system - cpu[1]))


def _schedy_worker(path: str, ran_path: str | None, barrier, times):
    """Claim and finish jobs until none is left. With ``ran_path``, each job's id is
    appended to it before the job is stored DONE: a job run twice shows up twice even if a
    write were lost."""
    import schedy
    from tests.workers import claimed_jobs

    exp = schedy.SchedyDB(db=path).get_experiment("Bench")
    ran = open(ran_path, "a", encoding="utf-8") if ran_path else None
    barrier.wait()
    start, cpu, done = time.time(), _cpu_seconds(), 0
    for job in claimed_jobs(exp):
        with job:
            if ran:
                ran.write(job.job_id + "\n")
                ran.flush()
            job.results["loss"] = job.hyperparameters["x"] ** 2
        done += 1
    _report(times, start, cpu, done)
    if ran:
        ran.close()


def _schedy_next_job_worker(path: str, barrier, times):
    """Claim jobs until none is left, leaving them RUNNING: next_job() alone."""
    import schedy
    import schedy.claims
    from schedy.lease import keeper
    from tests.workers import claimed_jobs

    # Every claimed job stays RUNNING here, so the lease directory grows to thousands of
    # markers, which the once-a-second look for expired leases would list (a pool of 8
    # workers holds 8): that look is left to the claim that finds no job.
    schedy.claims.RECOVERY_SECONDS = float("inf")
    exp = schedy.SchedyDB(db=path).get_experiment("Bench")
    barrier.wait()
    start, cpu, done = time.time(), _cpu_seconds(), 0
    for job in claimed_jobs(exp):
        keeper.release(job)  # no heartbeats: the run is far shorter than the lease
        done += 1
    _report(times, start, cpu, done)


def _optuna_worker(path: str, count: int, tell: bool, barrier, times):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(path))
    study = optuna.load_study(study_name="Bench", storage=storage, sampler=optuna.samplers.RandomSampler())
    barrier.wait()
    start, cpu = time.time(), _cpu_seconds()
    for _ in range(count):
        trial = study.ask()
        x = trial.suggest_float("x", -5, 5)
        if tell:
            study.tell(trial, x**2)
    _report(times, start, cpu, count)


class Run(NamedTuple):
    rate: float  # claims (trials) per second, all processes together
    user_ms: float  # user CPU of the worker processes per claim (trial)
    system_ms: float  # system CPU per claim (trial)


def _throughput(target, args_for, processes: int) -> Run:
    # The setup wrote thousands of files without fsync: flush them now, or the kernel writes
    # them back during a later measured run, of either side, at random.
    os.sync()
    ctx = multiprocessing.get_context("spawn")
    barrier, times = ctx.Barrier(processes), ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args_for(k), barrier, times)) for k in range(processes)]
    for proc in procs:
        proc.start()
    results = [times.get(timeout=1800) for _ in procs]
    for proc in procs:
        proc.join()
    start, end = min(r[0] for r in results), max(r[1] for r in results)
    total = sum(r[2] for r in results)
    user, system = sum(r[3] for r in results), sum(r[4] for r in results)
    return Run(total / (end - start), user / total * 1000, system / total * 1000)


def _seeded_store(jobs: int, history: int = 0) -> tuple[str, schedy.Experiment, set[str]]:
    """A store holding ``history`` finished jobs and then ``jobs`` queued ones (written
    without fsync, then synced at once: setup, not measured); its path, the experiment and
    the queued jobs' ids."""
    import schedy

    path = _tempdir("schedy-bench-")
    db = _fast_db(path)
    db.add_experiment(schedy.ManualSearch("Bench"))
    exp = db.get_experiment("Bench")
    for i in range(history):
        exp.add_job(hyperparameters={"x": -1.0}, status="DONE", results={"loss": float(i)})
    queued = {exp.add_job(hyperparameters={"x": i / jobs}).job_id for i in range(jobs)}
    # The seed's files written back now, not by the kernel during the run: 10,000 more of
    # them flushing while a run is measured would be charged to the history.
    os.sync()
    return path, exp, queued


def schedy_claims(processes: int, jobs: int, history: int = 0) -> Run:
    """``processes`` workers drain ``jobs`` queued jobs from a store that holds ``history``
    finished jobs of the same experiment."""
    path, _, _ = _seeded_store(jobs, history)
    return _throughput(_schedy_worker, lambda k: (path, None), processes)


def schedy_next_jobs(processes: int, jobs: int) -> Run:
    """``processes`` workers claim ``jobs`` queued jobs with next_job() and leave them RUNNING."""
    path, _, _ = _seeded_store(jobs)
    return _throughput(_schedy_next_job_worker, lambda k: (path,), processes)


def drain(processes: int, jobs: int) -> str:
    """``processes`` workers drain ``jobs`` queued jobs; checks that each job ran exactly
    once and that every result is stored, and says so with the rate."""
    import schedy

    path, _, queued = _seeded_store(jobs)
    ran_dir = _tempdir("schedy-ran-")
    ran_paths = [os.path.join(ran_dir, f"{k}.txt") for k in range(processes)]
    run = _throughput(_schedy_worker, lambda k: (path, ran_paths[k]), processes)
    ran: collections.Counter[str] = collections.Counter()
    for ran_path in ran_paths:
        if os.path.exists(ran_path):
            with open(ran_path, encoding="utf-8") as f:
                ran.update(f.read().split())
    stored = {job.job_id: job for job in schedy.SchedyDB(db=path).get_experiment("Bench").all_jobs()}
    with_result = [
        job for job in stored.values()
        if job.status == "DONE" and job.results.get("loss") == job.hyperparameters["x"] ** 2
    ]
    problems = []
    if twice := [job_id for job_id, n in ran.items() if n > 1]:
        problems.append(f"{len(twice)} jobs run more than once")
    if never := queued - set(ran):
        problems.append(f"{len(never)} jobs never run")
    if len(with_result) != len(stored):
        problems.append(f"{len(stored) - len(with_result)} results missing")
    if set(stored) != queued:
        problems.append(f"{len(stored)} jobs stored, {jobs} queued")
    verdict = "; ".join(problems) or f"each job run once, {len(with_result)} results stored"
    return f"{processes} processes drained {jobs} jobs at {run.rate:,.0f} claims/s: {verdict}"


def optuna_claims(processes: int, jobs: int, tell: bool = True) -> Run:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = os.path.join(_tempdir("optuna-bench-"), "journal.log")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.create_study(study_name="Bench", storage=JournalStorage(JournalFileBackend(path)))
    share = jobs // processes
    return _throughput(_optuna_worker, lambda k: (path, share, tell), processes)


def next_job_costs(histories: tuple[int, ...], rounds: int) -> list[float]:
    """Median seconds of one next_job() with one queued job, for a store of each of
    ``histories`` finished jobs. The stores' calls alternate, so that they meet the disk
    in the same state (its speed varies from minute to minute)."""
    import schedy

    adders, claimers = [], []  # per store: the experiment as seen by the setup, by the claimer
    for history in histories:
        path, adder, _ = _seeded_store(0, history)
        adders.append(adder)
        claimers.append(schedy.SchedyDB(db=path).get_experiment("Bench"))
    os.sync()  # as in _throughput: the setup's writes must not be written back while timed
    costs: list[list[float]] = [[] for _ in histories]
    for i in range(rounds):
        for adder, claimer, cost in zip(adders, claimers, costs):
            adder.add_job(hyperparameters={"x": -i})
            t = time.perf_counter()
            job = claimer.next_job()
            cost.append(time.perf_counter() - t)
            job.status = "DONE"
            job.put()
    return [statistics.median(cost) for cost in costs]


def heartbeat_cost(rounds: int) -> float:
    """Median seconds of one lease renewal (renew the marker, check the job is still ours)."""
    import schedy
    from schedy.lease import keeper

    path = _tempdir("schedy-bench-")
    db = schedy.SchedyDB(db=path)
    db.add_experiment(schedy.ManualSearch("Lease"))
    exp = db.get_experiment("Lease")
    exp.add_job(hyperparameters={"x": 1})
    job = exp.next_job()
    keeper.release(job)  # beat by hand, not from the thread
    costs = []
    for _ in range(rounds):
        t = time.perf_counter()
        assert job._heartbeat()
        costs.append(time.perf_counter() - t)
    return statistics.median(costs)


def _sleep_jobs(lease: str | None, jobs: int, work: float) -> float:
    """Seconds for one process to run ``jobs`` jobs of ``work`` seconds with the given lease."""
    import schedy

    if lease is None:
        os.environ.pop("SCHEDY_LEASE_SECONDS", None)
    else:
        os.environ["SCHEDY_LEASE_SECONDS"] = lease
    path = _tempdir("schedy-bench-")
    db = schedy.SchedyDB(db=path)
    db.add_experiment(schedy.ManualSearch("Work"))
    exp = db.get_experiment("Work")
    for i in range(jobs):
        exp.add_job(hyperparameters={"x": i})
    start = time.perf_counter()
    for _ in range(jobs):
        with exp.next_job() as job:
            time.sleep(work)
            job.results["ok"] = 1
    os.environ.pop("SCHEDY_LEASE_SECONDS", None)
    return time.perf_counter() - start


def _median(runs: list[Run], field: str) -> float:
    return statistics.median(getattr(run, field) for run in runs)


def _rates(runs: list[Run]) -> str:
    rates = [run.rate for run in runs]
    return f"{statistics.median(rates):.0f} [{min(rates):.0f}-{max(rates):.0f}]"


def _cpu(runs: list[Run]) -> str:
    return f"{_median(runs, 'user_ms'):.2f} + {_median(runs, 'system_ms'):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3000, help="jobs (trials) per run")
    parser.add_argument("--processes", default="1,4,8,16")
    parser.add_argument("--history", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3, help="runs per row (the median is shown)")
    args = parser.parse_args()

    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"\nmedian of {args.repeat} runs each (Schedy and Optuna alternate), [lowest-highest]")
    print("CPU: user + system ms of the worker processes per claim (trial), medians\n")
    print("| processes | Schedy files claims/s | Optuna JournalFileBackend ask+tell/s | Schedy / Optuna "
          "| Schedy CPU ms | Optuna CPU ms |")
    print("|---:|---:|---:|---:|---:|---:|")
    for processes in [int(p) for p in args.processes.split(",")]:
        ours, theirs = [], []
        for _ in range(args.repeat):
            ours.append(schedy_claims(processes, args.jobs))
            theirs.append(optuna_claims(processes, args.jobs))
        print(f"| {processes} | {_rates(ours)} | {_rates(theirs)} "
              f"| {_median(ours, 'rate') / _median(theirs, 'rate'):.2f} | {_cpu(ours)} | {_cpu(theirs)} |", flush=True)

    claims, asks = [], []
    for _ in range(args.repeat):
        claims.append(schedy_next_jobs(8, args.jobs))
        asks.append(optuna_claims(8, args.jobs, tell=False))
    print(f"\nnext_job() alone, 8 processes (jobs left RUNNING): {_rates(claims)} claims/s, CPU {_cpu(claims)} ms; "
          f"Optuna ask() alone: {_rates(asks)} trials/s, CPU {_cpu(asks)} ms "
          f"({_median(claims, 'rate') / _median(asks, 'rate'):.2f}x)")

    print("\n" + drain(8, 400))

    empty, full = [], []
    for _ in range(args.repeat):
        empty.append(schedy_claims(8, args.jobs))
        full.append(schedy_claims(8, args.jobs, args.history))
    print(f"\n8 processes, {args.jobs:,} jobs, on a store already holding {args.history:,} finished jobs: "
          f"{_rates(full)} claims/s; on an empty store, alternating: {_rates(empty)} "
          f"(ratio {_median(full, 'rate') / _median(empty, 'rate'):.2f})")

    small, large = next_job_costs((1, args.history), args.rounds)
    print(f"\nnext_job() median: {small * 1000:.2f} ms with 1 finished job, "
          f"{large * 1000:.2f} ms with {args.history:,} finished jobs: ratio {large / small:.2f}")

    beat = heartbeat_cost(args.rounds * 4)
    print(f"\nlease renewal: {beat * 1000:.2f} ms each; at the default 60 s lease (a beat every 20 s) "
          f"that is {beat / 20 * 100:.4f}% of a worker's time")
    jobs, work = 40, 0.05
    plain = _sleep_jobs(None, jobs, work)
    beating = _sleep_jobs("0.15", jobs, work)  # a beat every 50 ms: one per job at least
    print(f"{jobs} jobs of {work * 1000:.0f} ms: {plain:.2f} s with the default lease, {beating:.2f} s with a "
          f"0.15 s lease (a beat every 50 ms): {(beating / plain - 1) * 100:+.1f}%")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
