"""Exactly-once claiming with many real worker processes: no job run twice, none lost."""

import multiprocessing
from collections import Counter

import schedy
from tests import workers


def _drain_with_processes(url: str, processes: int, jobs: int, tmp_path) -> Counter:
    db = schedy.SchedyDB(db=url)
    db.add_experiment(schedy.ManualSearch("Pool"))
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes)
    share = -(-jobs // processes)
    ran_paths = [tmp_path / f"ran-{k}.txt" for k in range(processes)]
    procs = [
        ctx.Process(
            target=workers.add_and_drain,
            args=(url, "Pool", k * share, max(0, min(share, jobs - k * share)), barrier, str(path)),
        )
        for k, path in enumerate(ran_paths)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=900)
        assert proc.exitcode == 0, f"worker exited with {proc.exitcode}"
    ran = Counter(line for path in ran_paths if path.exists() for line in path.read_text().split())
    _check_all_done(db, jobs, ran)
    db.close()
    return ran


def _check_all_done(db, jobs: int, ran: Counter) -> None:
    twice = [job_id for job_id, n in ran.items() if n > 1]
    assert twice == [], f"{len(twice)} jobs run more than once"
    expected = {f"j{i:05d}" for i in range(jobs)}
    assert set(ran) == expected, f"{len(expected - set(ran))} jobs never run"
    exp = db.get_experiment("Pool")
    stored = list(exp.all_jobs())
    assert len(stored) == jobs
    for job in stored:
        assert job.status == schedy.Job.DONE, (job.job_id, job.status)
        assert job.results["double"] == 2 * job.hyperparameters["i"]
        assert job.attempt == 1
    ref = exp._ref()
    assert db.storage.queued(ref, 10) == []
    assert db.storage.leases(ref) == []


def test_8_processes_drain_400_jobs_exactly_once(files_store_url, tmp_path):
    ran = _drain_with_processes(files_store_url, 8, 400, tmp_path)
    assert sum(ran.values()) == 400


def test_16_processes_drain_1000_jobs_exactly_once(files_store_url, tmp_path):
    ran = _drain_with_processes(files_store_url, 16, 1000, tmp_path)
    assert sum(ran.values()) == 1000
