"""A process forked while another thread holds one of Schedy's locks (a heartbeat in the
middle of a write, say) can use the store and its jobs: the child gets new thread locks
(schedy/forks.py). Without them, the child's first use of such a lock hangs for ever."""

import multiprocessing
import threading

import pytest

import schedy
from schedy.lease import keeper


def _forked_while_held(hold, target, args) -> int | None:
    """Fork ``target(*args)`` while a thread is inside ``hold()`` (a context manager),
    which it leaves right after the fork. The child's exit code, None if it hung."""
    entered, leave = threading.Event(), threading.Event()

    def holder():
        with hold():
            entered.set()
            leave.wait(30)

    thread = threading.Thread(target=holder)
    thread.start()
    assert entered.wait(10)
    child = multiprocessing.get_context("fork").Process(target=target, args=args)
    try:
        child.start()
    finally:
        leave.set()
        thread.join()
    child.join(30)
    if child.exitcode is None:
        child.kill()
        child.join()
    return child.exitcode


def _experiment(url: str, name: str):
    db = schedy.SchedyDB(db=url)
    db.add_experiment(schedy.ManualSearch(name))
    exp = db.get_experiment(name)
    exp.add_job(job_id="a", hyperparameters={"x": 1})  # the store is open, its client made
    return db, exp


def _update_job(exp, job_id: str) -> None:
    job = exp.get_job(job_id)
    job.hyperparameters["x"] = 2
    job.put()  # an If-Match write: under the job's lock on a files store


@pytest.mark.parametrize("backend", ["files", "s3"])
def test_a_child_forked_while_a_thread_holds_a_store_lock_can_write(backend, request):
    db, exp = _experiment(request.getfixturevalue(f"{backend}_store_url"), "Fork")
    store = db.storage.store
    # The lock the child's write takes first: the job's stripe lock on a files store, the
    # client lock on S3 (a child makes its own client under it).
    hold = (lambda: store.locked(db.storage._job_key(exp._ref(), "a"))) if backend == "files" else (lambda: store._lock)
    assert _forked_while_held(hold, _update_job, (exp, "a")) == 0
    assert exp.get_job("a").hyperparameters == {"x": 2}


def _finish(job) -> None:
    with job:
        job.results["by"] = "child"


def test_a_child_forked_during_a_heartbeat_finishes_its_job(files_store_url):
    """Claim in the parent, train in a forked child: the parent's heartbeat holds the
    job's lock across its store requests, and may do so at the moment of the fork."""
    _, exp = _experiment(files_store_url, "Beat")
    job = exp.next_job()
    try:
        assert _forked_while_held(lambda: job._lock, _finish, (job,)) == 0
    finally:
        keeper.release(job)
    stored = exp.get_job("a")
    assert stored.status == "DONE" and stored.results == {"by": "child"}
