"""A process forked while another thread holds a store's lock (a heartbeat writing, say)
can use the store: the child gets new thread locks (schedy/forks.py)."""

import multiprocessing
import threading

import pytest

import schedy


def _update_job(exp, job_id: str) -> None:
    job = exp.get_job(job_id)
    job.hyperparameters["x"] = 2
    job.put()  # an If-Match write: under the job's lock on a files store


def _forked_while_held(exp, hold) -> int | None:
    """Fork while a thread is inside ``hold()`` (a context manager); the child updates a job.
    The child's exit code, None if it hung."""
    entered, leave = threading.Event(), threading.Event()

    def holder():
        with hold():
            entered.set()
            leave.wait(30)

    thread = threading.Thread(target=holder)
    thread.start()
    assert entered.wait(10)
    child = multiprocessing.get_context("fork").Process(target=_update_job, args=(exp, "shared"))
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


@pytest.mark.parametrize("backend", ["files", "s3"])
def test_a_child_forked_while_a_thread_holds_a_store_lock_can_write(backend, request):
    url = request.getfixturevalue(f"{backend}_store_url")
    db = schedy.SchedyDB(db=url)
    db.add_experiment(schedy.ManualSearch("Fork"))
    exp = db.get_experiment("Fork")
    exp.add_job(job_id="shared", hyperparameters={"x": 1})  # the store is open, its client made
    store = db.storage.store
    job_key = db.storage._job_key(exp._ref(), "shared")
    # The lock the child's write takes first: the job's stripe lock on a files store, the
    # client lock on S3 (a child makes its own client under it).
    hold = (lambda: store.locked(job_key)) if backend == "files" else (lambda: store._lock)
    assert _forked_while_held(exp, hold) == 0
    assert exp.get_job("shared").hyperparameters == {"x": 2}
