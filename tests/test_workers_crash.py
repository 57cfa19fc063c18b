"""Leases: a dead worker's job is CRASHED and retried; a slow worker is fenced off."""

import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

import schedy
from schedy.errors import LeaseLostError, NoJobError, UnsafeUpdateError
from schedy.lease import keeper
from tests import workers

LEASE = 3.0


@pytest.fixture(autouse=True)
def no_foreign_heartbeats():
    """Jobs other tests left held (on stores gone since) must not delay this test's heartbeats."""
    for job in keeper.held():
        keeper.release(job)
    yield


def _experiment(url: str, name: str, max_attempts: int = 3):
    db = schedy.SchedyDB(db=url)
    exp = schedy.ManualSearch(name)
    exp.lease_seconds = LEASE
    exp.max_attempts = max_attempts
    db.add_experiment(exp)
    return db, db.get_experiment(name)


def _wait_for(path, seconds: float) -> str:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if path.exists():
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path.name} did not appear within {seconds}s")


def test_killed_worker_job_is_crashed_and_retried_by_another_worker(files_store_url, tmp_path):
    db, exp = _experiment(files_store_url, "Kill")
    exp.add_job(job_id="only", hyperparameters={"x": 7})
    ctx = multiprocessing.get_context("spawn")
    claimed, done = tmp_path / "claimed", tmp_path / "done"
    victim = ctx.Process(target=workers.claim_and_hang, args=(files_store_url, "Kill", str(claimed)))
    victim.start()
    rescuer = None
    try:
        assert _wait_for(claimed, 120) == "only"
        # The rescuer polls from before the kill, so its start-up does not count against the lease.
        rescuer = ctx.Process(target=workers.poll_and_finish, args=(files_store_url, "Kill", 120.0, str(done)))
        rescuer.start()
        time.sleep(LEASE)  # mid-job: heartbeats went out, the rescuer found nothing to do
        assert exp.get_job("only").status == "RUNNING"
        assert not done.exists()
    finally:
        os.kill(victim.pid, signal.SIGKILL)
        victim.join()
    killed_at = time.monotonic()
    retry_id = _wait_for(done, 60)
    recovered_in = time.monotonic() - killed_at
    rescuer.join(timeout=60)
    assert rescuer.exitcode == 0
    assert recovered_in < 2 * LEASE, f"recovered {recovered_in:.1f}s after the kill"
    crashed, retry = exp.get_job("only"), exp.get_job(retry_id)
    assert crashed.status == "CRASHED"
    assert "lease expired" in crashed.error
    assert retry_id == "only-2" and retry.status == "DONE" and retry.attempt == 2
    assert retry.hyperparameters == {"x": 7} and retry.results["x"] == 7
    assert retry.seed is crashed.seed is None  # a job queued by hand has none, and its retry keeps that
    assert retry.results["pid"] == rescuer.pid
    assert retry.lineage["retryOf"] == "only"
    assert [j.job_id for j in exp.all_jobs() if j.status == "RUNNING"] == []
    assert db.storage.leases(exp._ref()) == []


def test_retries_stop_after_max_attempts(files_store_url, monkeypatch):
    db, exp = _experiment(files_store_url, "Attempts", max_attempts=2)
    exp.add_job(job_id="a", hyperparameters={"x": 1})
    monkeypatch.setenv("SCHEDY_LEASE_SECONDS", "0.2")
    for expected in ("a", "a-2"):
        job = exp.next_job()
        assert job.job_id == expected
        keeper.release(job)  # this worker "dies": no more heartbeats
        time.sleep(0.5)
    with pytest.raises(NoJobError):
        exp.next_job()
    statuses = {j.job_id: (j.status, j.attempt) for j in exp.all_jobs()}
    assert statuses == {"a": ("CRASHED", 1), "a-2": ("CRASHED", 2)}


def test_a_dead_workers_job_is_not_left_running_when_the_experiment_is_done(files_store_url, monkeypatch):
    # The experiment was marked DONE (by hand, or by a scheduler whose generations ran out)
    # while the worker of one of its jobs was dead: nothing more is handed out, but the job
    # still ends CRASHED, with its retry queued should the experiment run again.
    db, exp = _experiment(files_store_url, "Ended")
    exp.add_job(job_id="a", hyperparameters={"x": 1})
    monkeypatch.setenv("SCHEDY_LEASE_SECONDS", "0.2")
    keeper.release(exp.next_job())  # this worker "dies"
    exp.status = exp.DONE
    exp.push_updates()
    time.sleep(0.5)
    with pytest.raises(NoJobError, match="it is DONE"):
        exp.next_job()
    assert {j.job_id: j.status for j in exp.all_jobs()} == {"a": "CRASHED", "a-2": "QUEUED"}
    exp.status = exp.RUNNING
    exp.push_updates()
    retry = exp.next_job()
    keeper.release(retry)
    assert retry.job_id == "a-2"


def test_a_claim_undone_by_a_crash_goes_back_to_the_queue(files_store_url, monkeypatch):
    """The files store makes a claim durable by its lease marker and does not fsync the
    directory after the claim's job write. Replay the worst crash that allows: the lease
    marker survived, the job's RUNNING write and the removal of its queue marker did not
    both survive (here: the write is undone and the queue marker gone)."""
    db, exp = _experiment(files_store_url, "Undone")
    exp.add_job(job_id="u", hyperparameters={"x": 1})
    path = next(Path(files_store_url, "jobs").rglob("u.json"))
    queued = path.read_bytes()
    monkeypatch.setenv("SCHEDY_LEASE_SECONDS", "0.2")
    job = exp.next_job()
    keeper.release(job)  # the machine went down with its worker
    path.write_bytes(queued)
    assert not list(Path(files_store_url, "queue").rglob("*.json"))
    assert list(Path(files_store_url, "running").rglob("*.json"))
    time.sleep(0.5)
    again = db.get_experiment("Undone").next_job()
    assert (again.job_id, again.status, again.attempt) == ("u", "RUNNING", 1)
    again.status = "DONE"
    again.put()
    assert [(j.job_id, j.status) for j in exp.all_jobs()] == [("u", "DONE")]
    assert not list(Path(files_store_url, "running").rglob("*.json"))


@pytest.mark.parametrize("every, scans_in_20_claims", [(30.0, 1), (0.0, 20)])
def test_expired_leases_are_looked_for_at_most_once_per_period(files_store_url, monkeypatch, every, scans_in_20_claims):
    """Listing the running leases at every claim would make claims cost more as workers are
    added: a process looks once per RECOVERY_SECONDS, and once more before it answers that
    no job is left (a job may be waiting under an expired lease)."""
    import schedy.claims

    monkeypatch.setattr(schedy.claims, "RECOVERY_SECONDS", every)
    db, exp = _experiment(files_store_url, f"Scans{every:g}")
    for i in range(21):
        exp.add_job(hyperparameters={"x": i})
    storage = db.storage
    scans = []
    real_leases = storage.leases
    monkeypatch.setattr(storage, "leases", lambda ref: scans.append(ref) or real_leases(ref))
    for _ in range(20):
        with exp.next_job() as job:
            job.results["loss"] = 0
    assert len(scans) == scans_in_20_claims
    with exp.next_job() as job:  # the last one
        job.results["loss"] = 0
    before = len(scans)
    with pytest.raises(NoJobError):
        exp.next_job()
    assert len(scans) == before + 1


def test_a_job_another_worker_runs_is_not_taken_over_by_with_or_try_run(files_store_url, tmp_path):
    db, exp = _experiment(files_store_url, "Held")
    exp.add_job(job_id="only", hyperparameters={"x": 7})
    exp.add_job(job_id="mine", hyperparameters={"x": 8})
    claimed = tmp_path / "claimed"
    holder = multiprocessing.get_context("spawn").Process(
        target=workers.claim_and_hang, args=(files_store_url, "Held", str(claimed))
    )
    holder.start()
    try:
        assert _wait_for(claimed, 120) == "only"
        for take in (lambda job: job.__enter__(), lambda job: job.try_run()):
            job = exp.get_job("only")
            with pytest.raises(UnsafeUpdateError, match=f"'only' of experiment 'Held' is RUNNING on worker .*:{holder.pid}"):
                take(job)
        stored = exp.get_job("only")
        assert stored.status == "RUNNING" and stored.worker["pid"] == holder.pid and stored.etag == job.etag
        # A job this process claimed may be read again and run in a with block.
        keeper.release(exp.next_job())
        with exp.get_job("mine") as job:
            job.results["y"] = 1
        assert exp.get_job("mine").status == "DONE" and exp.get_job("mine").results == {"y": 1}
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.join()


def _finish_in_child(job, results_path: str) -> None:
    with job:
        job.results["by"] = os.getpid()
    Path(results_path).write_text("ok")


def test_a_process_forked_after_next_job_runs_the_job(files_store_url, tmp_path):
    # The usual pattern: claim in the parent, train in a child (fork start method).
    db, exp = _experiment(files_store_url, "Forked")
    exp.add_job(job_id="a", hyperparameters={"x": 1})
    job = exp.next_job()
    child = multiprocessing.get_context("fork").Process(target=_finish_in_child, args=(job, str(tmp_path / "ok")))
    child.start()
    child.join(60)
    keeper.release(job)
    assert child.exitcode == 0 and (tmp_path / "ok").read_text() == "ok"
    stored = exp.get_job("a")
    assert stored.status == "DONE" and stored.results == {"by": child.pid}


def test_slow_worker_learns_at_its_next_put_and_does_not_overwrite(files_store_url, monkeypatch):
    db, exp = _experiment(files_store_url, "Slow")
    exp.add_job(job_id="s", hyperparameters={"x": 1})
    monkeypatch.setenv("SCHEDY_LEASE_SECONDS", "0.2")
    slow = exp.next_job()
    keeper.release(slow)  # stalled: its heartbeats stop, but it is still working
    time.sleep(0.5)
    monkeypatch.delenv("SCHEDY_LEASE_SECONDS")
    other = db.get_experiment("Slow").next_job()
    assert other.job_id == "s-2"
    slow.results["loss"] = 1.0
    with pytest.raises(LeaseLostError):
        slow.put()
    assert slow.should_stop()
    stored = exp.get_job("s")
    assert stored.status == "CRASHED" and stored.results == {}
    with pytest.raises(LeaseLostError):
        slow.report(1, loss=0.5)
    assert exp.get_job("s").history == []
    keeper.release(other)


def test_a_job_deleted_while_it_runs_is_said_deleted_not_taken_over_and_leaves_no_marker(files_store_url, monkeypatch):
    db, exp = _experiment(files_store_url, "Gone")
    exp.add_job(job_id="g", hyperparameters={"x": 1})
    monkeypatch.setenv("SCHEDY_LEASE_SECONDS", "0.6")  # a heartbeat every 0.2 s
    with pytest.raises(LeaseLostError, match=r"^job 'g' of experiment 'Gone' was deleted \(or its experiment was\) "
                                             r"while this worker ran it: not overwriting it$"):
        with exp.next_job() as job:
            db.get_experiment("Gone").get_job("g").delete()  # `schedy rm -f Gone g` meanwhile
            time.sleep(0.7)  # a heartbeat finds it gone
            assert job.should_stop()
            job.results["loss"] = 1.0
    assert [job.job_id for job in exp.all_jobs()] == []
    assert db.storage.leases(exp._ref()) == []  # the heartbeat's renewal made no marker that stays


def test_lease_is_renewed_while_the_job_runs(files_store_url, monkeypatch):
    db, exp = _experiment(files_store_url, "Renew")
    exp.add_job(job_id="r", hyperparameters={"x": 1})
    monkeypatch.setenv("SCHEDY_LEASE_SECONDS", "2")
    with exp.next_job() as job:
        time.sleep(5.0)  # over two lease lengths: only heartbeats keep it
        other = db.get_experiment("Renew")
        with pytest.raises(NoJobError):
            other.next_job()
        job.results["ok"] = True
    assert exp.get_job("r").status == "DONE"


def test_a_store_out_of_reach_does_not_delay_other_renewals(files_store_url, monkeypatch):
    from schedy.job import Job
    from schedy.lease import keeper

    dead = schedy.ManualSearch("Elsewhere")
    dead._db, dead._uid = schedy.SchedyDB(db="http://127.0.0.1:9"), "0" * 32  # nothing listens there
    stuck = Job("stuck", dead, {}, status="RUNNING")
    stuck.lease = {"seconds": 0.3}
    keeper.hold(stuck)  # its renewals retry for many seconds
    try:
        test_lease_is_renewed_while_the_job_runs(files_store_url, monkeypatch)
    finally:
        keeper.release(stuck)


def test_bad_lease_setting_is_a_clear_error(files_store_url, monkeypatch):
    db, exp = _experiment(files_store_url, "BadLease")
    exp.add_job(hyperparameters={"x": 1})
    monkeypatch.setenv("SCHEDY_LEASE_SECONDS", "soon")
    with pytest.raises(schedy.errors.ConfigError, match="SCHEDY_LEASE_SECONDS"):
        exp.next_job()
    assert [j.status for j in exp.all_jobs()] == ["QUEUED"]


def test_sigterm_ends_the_job_crashed_before_the_process_exits(files_store_url, tmp_path):
    db, exp = _experiment(files_store_url, "Term")
    exp.add_job(job_id="t", hyperparameters={"x": 1})
    ctx = multiprocessing.get_context("spawn")
    claimed = tmp_path / "claimed"
    worker = ctx.Process(target=workers.work_in_with_block, args=(files_store_url, "Term", str(claimed)))
    worker.start()
    try:
        assert _wait_for(claimed, 120) == "t"
        os.kill(worker.pid, signal.SIGTERM)
        worker.join(timeout=60)
    finally:
        worker.kill()
    assert worker.exitcode == 128 + signal.SIGTERM
    job = exp.get_job("t")
    assert job.status == "CRASHED" and "SIGTERM" in job.error
    assert db.storage.leases(exp._ref()) == []


def test_keyboard_interrupt_ends_the_job_crashed(files_store_url):
    db, exp = _experiment(files_store_url, "Interrupt")
    exp.add_job(job_id="k", hyperparameters={"x": 1})
    with pytest.raises(KeyboardInterrupt):
        with exp.next_job() as job:
            job.results["partial"] = 1
            raise KeyboardInterrupt
    stored = exp.get_job("k")
    assert stored.status == "CRASHED" and stored.results == {"partial": 1}
    assert "KeyboardInterrupt" in stored.error
    assert job not in keeper.held()


def test_status_shows_how_long_ago_each_running_job_was_renewed_on_every_backend(db):
    from schedy.cli.status import experiment_status

    db.add_experiment(schedy.ManualSearch("Ages"))
    exp = db.get_experiment("Ages")
    for job_id in ("a", "b"):
        exp.add_job(job_id=job_id, hyperparameters={})
    first = exp.next_job()
    keeper.release(first)  # no heartbeats: its age grows
    time.sleep(2.5)
    second = exp.next_job()
    keeper.release(second)
    status = experiment_status(db.storage, "Ages")
    ages = {job["id"]: job["heartbeatAge"] for job in status["running"]}
    # (S3 dates markers to the second: ages are whole seconds there)
    assert set(ages) == {"a", "b"}
    assert 1.5 <= ages["a"] < 30 and 0 <= ages["b"] < 1.5 and ages["a"] - ages["b"] >= 1, ages
    db.storage.renew_lease(exp._ref(), "a", first._lease_seconds())
    renewed = {job["id"]: job["heartbeatAge"] for job in experiment_status(db.storage, "Ages")["running"]}
    assert renewed["a"] < 1.5, renewed
