"""Interleavings of claims, recovery and requeues that once left a job with no marker: a
RUNNING job without a lease marker is never recovered, a QUEUED job without a queue marker
never handed out. Each test forces one interleaving that real timing allows (a worker
stalled between two steps) with events or a hook, on a real store, and checks that every
job keeps the marker it needs."""

from __future__ import annotations

import threading
import time

import pytest

import schedy
from schedy import claims
from schedy.lease import keeper
from schedy.objects import TAKE_SECONDS, ObjectStorage
from schedy.runner import _requeue_quietly

WAIT = 10  # seconds: an event that never comes fails the test instead of hanging it


def _markers_needed_are_there(exp: schedy.Experiment, storage: ObjectStorage) -> list[str]:
    """The jobs of ``exp`` that lack the marker their status needs."""
    ref = exp._ref()
    queued = {job_id for _, job_id in storage.queued(ref, 1000)}
    leased = {(lease.job_id, lease.seconds) for lease in storage.leases(ref)}
    missing = []
    for job in exp.all_jobs():
        if job.status == "QUEUED" and job.job_id not in queued:
            missing.append(f"{job.job_id}: QUEUED without a queue marker")
        if job.status == "RUNNING" and (job.job_id, job.lease["seconds"]) not in leased:
            missing.append(f"{job.job_id}: RUNNING without a lease marker")
    return missing


def _experiments(url: str, count: int, lease: float = 30.0):
    """``count`` SchedyDBs on one store (as many worker processes would have) and experiment E in each."""
    dbs = [schedy.SchedyDB(db=url) for _ in range(count)]
    exp = schedy.ManualSearch("E")
    exp.lease_seconds = lease
    dbs[0].add_experiment(exp)
    return dbs, [db.get_experiment("E") for db in dbs]


def test_recovery_keeps_the_lease_of_a_claim_written_late(tmp_path):
    # Worker A takes the job's queue marker (a lease dated to expire TAKE_SECONDS later),
    # then stalls past that before writing its claim. Recovery in B reads the job, still
    # QUEUED, A writes its claim, and B's requeue is refused: B must leave A's lease alone.
    lease = 3.0
    (db_a, db_b), (exp_a, exp_b) = _experiments(str(tmp_path), 2, lease)
    exp_a.add_job(job_id="j", hyperparameters={"x": 1})
    a_writing, b_read, a_written = threading.Event(), threading.Event(), threading.Event()

    write_a = db_a.storage.update_job

    def stalled_claim_write(ref, doc, etag):
        if doc["status"] != "RUNNING":
            return write_a(ref, doc, etag)
        a_writing.set()
        assert b_read.wait(WAIT)
        try:
            return write_a(ref, doc, etag)
        finally:
            a_written.set()

    read_b = db_b.storage.get_job

    def read_then_descheduled(ref, job_id):
        found = read_b(ref, job_id)
        if found.doc["status"] == "QUEUED" and not b_read.is_set():
            b_read.set()
            assert a_written.wait(WAIT)
        return found

    db_a.storage.update_job = stalled_claim_write
    db_b.storage.get_job = read_then_descheduled
    claimed = []
    worker_a = threading.Thread(target=lambda: claimed.append(exp_a.next_job()))
    worker_a.start()
    assert a_writing.wait(WAIT)
    time.sleep(TAKE_SECONDS + 0.3)  # the taken lease has expired
    assert claims.recover_expired(exp_b, db_b.storage) == 0
    worker_a.join(WAIT)
    (job,) = claimed
    keeper.release(job)  # A dies before its first heartbeat
    assert job.job_id == "j" and exp_a.get_job("j").status == "RUNNING"
    assert _markers_needed_are_there(exp_a, db_a.storage) == []
    # Once A's lease has run out, the job is recovered: CRASHED, and its retry queued.
    time.sleep(lease + 0.5)
    assert claims.recover_expired(exp_b, db_b.storage) == 1
    assert {j.job_id: j.status for j in exp_b.all_jobs()} == {"j": "CRASHED", "j-2": "QUEUED"}


def test_a_claimer_keeps_the_queue_marker_of_a_job_queued_again(tmp_path):
    # A lists the job's queue marker, C claims the job, A reads it RUNNING (so the marker
    # looks stale to A), C hands the job back (as `schedy run` does when stopped while
    # claiming), which makes the same marker again: A must not delete the new one.
    (db_a, db_c), (exp_a, exp_c) = _experiments(str(tmp_path), 2, lease=60.0)
    exp_c.add_job(job_id="j", hyperparameters={"x": 1})
    a_listed, c_claimed, a_read, c_requeued = (threading.Event() for _ in range(4))
    read_a = db_a.storage.get_job
    reads = []

    def read_between_claim_and_requeue(ref, job_id):
        if reads:
            return read_a(ref, job_id)
        reads.append(job_id)
        a_listed.set()
        assert c_claimed.wait(WAIT)
        found = read_a(ref, job_id)
        a_read.set()
        assert c_requeued.wait(WAIT)
        return found

    db_a.storage.get_job = read_between_claim_and_requeue
    outcome = []

    def worker_a():
        try:
            outcome.append(exp_a.next_job())
        except schedy.errors.NoJobError:
            outcome.append(None)

    thread = threading.Thread(target=worker_a)
    thread.start()
    assert a_listed.wait(WAIT)
    job = exp_c.next_job()
    c_claimed.set()
    assert a_read.wait(WAIT)
    _requeue_quietly(job)
    keeper.release(job)
    c_requeued.set()
    thread.join(WAIT)
    for held in outcome:
        if held is not None:
            keeper.release(held)
    assert _markers_needed_are_there(exp_c, db_c.storage) == []
    if outcome == [None]:  # A gave up: the job is still there for the next worker
        assert exp_c.next_job().job_id == "j"


def _in_thread(target) -> threading.Thread:
    """``target`` started in a thread and given a moment: long enough to run through unless
    it waits for a lock held here, in which case it goes on once that lock is released."""
    thread = threading.Thread(target=target)
    thread.start()
    thread.join(0.5)
    return thread


@pytest.mark.parametrize(
    "backend, safe",
    [("files", True), ("files", False), ("s3", True), ("s3", False)],
    ids=["files", "files-unconditional", "s3", "s3-unconditional"],
)
def test_a_stale_marker_dropped_between_a_requeues_marker_and_job_writes_does_not_lose_the_job(backend, safe, request):
    # Another process meets the stale queue marker of a job ended by hand while queued, and
    # drops it (deletes it, then reads the job: not QUEUED) just after a writer queueing
    # the job again made that same marker, before the writer's job write. On a files store
    # the drop waits for the job's lock, which the writer holds from marker to job; on S3
    # the writer makes its marker again after the job write.
    (db, other), (exp, other_exp) = _experiments(request.getfixturevalue(f"{backend}_store_url"), 2)
    exp.add_job(job_id="j", hyperparameters={"x": 1})
    job = exp.get_job("j")
    job.status = "DONE"
    job.put()  # its queue marker stays, stale
    [(marker, _)] = db.storage.queued(exp._ref(), 10)
    real_put_marker, drops = db.storage.store.put_marker, []

    def put_marker_then_drop(key, data):
        real_put_marker(key, data)
        if key == marker and not drops:
            drops.append(_in_thread(lambda: other.storage.drop_queued(other_exp._ref(), marker, "j")))

    db.storage.store.put_marker = put_marker_then_drop
    job.status = "QUEUED"
    job.put(safe=safe)  # queued again: the same marker as before
    drops[0].join(WAIT)
    assert _markers_needed_are_there(exp, db.storage) == []
    assert exp.next_job().job_id == "j"


@pytest.mark.parametrize("backend", ["files", "s3"])
def test_a_job_handed_back_keeps_the_lease_marker_of_its_next_claim(backend, request):
    # C hands a job back (schedy run stopped while claiming): its QUEUED write, then the
    # deletion of its lease marker. A claims the job in between, under the same lease
    # length: the marker deleted must not be A's.
    (db_c, db_a), (exp_c, exp_a) = _experiments(request.getfixturevalue(f"{backend}_store_url"), 2)
    exp_c.add_job(job_id="j", hyperparameters={"x": 1})
    job_c = exp_c.next_job()
    keeper.release(job_c)
    lease_key = db_c.storage._lease_key(exp_c._ref(), "j", 30.0)
    real_delete, claimed, claimers = db_c.storage.store.delete_marker, [], []

    def claim_then_delete(key):
        if key == lease_key and not claimers:
            claimers.append(_in_thread(lambda: claimed.append(exp_a.next_job())))
        real_delete(key)

    db_c.storage.store.delete_marker = claim_then_delete
    _requeue_quietly(job_c)
    claimers[0].join(WAIT)
    keeper.release(claimed[0])  # A dies before its first heartbeat: only its lease marker can save the job
    assert exp_a.get_job("j").status == "RUNNING"
    assert _markers_needed_are_there(exp_a, db_a.storage) == []


def test_a_claimer_undoing_its_take_keeps_the_lease_marker_of_a_claim_made_meanwhile(files_store_url):
    # B takes the queue marker (onto lease marker L), but a user edits the job before B's
    # claim write, which is refused. B undoes its take: reads the job (QUEUED) and moves L
    # back to the queue. A, which took the queue marker the edit made again (onto the same
    # L) and writes its claim, must not lose L in between.
    (db_b, db_a, db_w), (exp_b, exp_a, exp_w) = _experiments(files_store_url, 3)
    exp_w.add_job(job_id="j", hyperparameters={"x": 1})
    real_update, real_take = db_b.storage.update_job, db_b.storage.store.take
    claimed, claimers = [], []

    def update_after_an_edit(ref, doc, etag):
        if doc["status"] == "RUNNING" and not claimers:
            edited = exp_w.get_job("j")
            edited.hyperparameters = {"x": 2}
            edited.put()
        return real_update(ref, doc, etag)

    def take_back_while_a_claims(src, dst, age=0.0):
        if src.startswith("running/") and not claimers:  # B's undo
            claimers.append(_in_thread(lambda: claimed.append(exp_a.next_job())))
        return real_take(src, dst, age)

    real_untake = db_b.storage.untake_queued

    def untake_then_wait_for_a(*args):
        real_untake(*args)
        for claimer in claimers:  # B tries again only once A has claimed: on a busy machine B's next try won first
            claimer.join(WAIT)

    db_b.storage.update_job, db_b.storage.store.take = update_after_an_edit, take_back_while_a_claims
    db_b.storage.untake_queued = untake_then_wait_for_a
    try:
        exp_b.next_job()
    except schedy.errors.NoJobError:
        pass  # A has it
    claimers[0].join(WAIT)
    keeper.release(claimed[0])
    assert exp_a.get_job("j").status == "RUNNING"
    assert _markers_needed_are_there(exp_a, db_a.storage) == []


def test_a_job_claimed_right_after_it_is_created_leaves_no_queue_marker_behind(files_store_url):
    # A queue marker made again after the create, once a claimer has taken the first, would
    # be stale: a second claimer's take of it would replace the first's lease marker with
    # one about to expire, and recovery would crash a live job.
    (db_c, db_a), (exp_c, exp_a) = _experiments(files_store_url, 2)
    job_key = db_c.storage._job_key(exp_c._ref(), "j")
    real_put, claimed = db_c.storage.store.put, []

    def put_then_claim(key, data, **kwargs):
        etag = real_put(key, data, **kwargs)
        if key == job_key and not claimed:
            claimed.append(exp_a.next_job())
        return etag

    db_c.storage.store.put = put_then_claim
    exp_c.add_job(job_id="j", hyperparameters={"x": 1})
    keeper.release(claimed[0])
    assert db_c.storage.queued(exp_c._ref(), 10) == []
    assert claims.recover_expired(exp_c, db_c.storage) == 0 and exp_c.get_job("j").status == "RUNNING"


@pytest.mark.parametrize("backend", ["files", "s3"])
def test_recovery_judges_a_lease_by_its_marker_now_not_by_a_stale_listing(backend, request):
    # B lists the leases while job j sits QUEUED under the expired marker of a claimer that
    # died; A claims j before B reads it, under a marker of the same name. B's listing says
    # expired, the job says RUNNING under that lease length: B must not crash A's claim.
    from schedy.storage import Lease

    (db_a, db_b), (exp_a, exp_b) = _experiments(request.getfixturevalue(f"{backend}_store_url"), 2, lease=5.0)
    exp_a.add_job(job_id="j", hyperparameters={"x": 1})
    job = exp_a.next_job()
    keeper.release(job)  # no heartbeat needed: the claim is a moment old
    real_leases = db_b.storage.leases
    db_b.storage.leases = lambda ref: [Lease(lease.job_id, lease.seconds, lease.seconds + 60) for lease in real_leases(ref)]
    assert claims.recover_expired(exp_b, db_b.storage) == 0
    assert exp_b.get_job("j").status == "RUNNING"
    with job:  # A still holds it
        job.results["x"] = 1
    assert exp_b.get_job("j").status == "DONE"


@pytest.mark.parametrize("backend", ["files", "s3"])
def test_a_recoverer_that_fails_before_queueing_the_retry_leaves_it_to_the_next(backend, request):
    # B marks the job of a dead worker CRASHED, then fails (dies, or its store gives up)
    # before creating the retry: the lease marker must stay, so that C creates it.
    (db_a, db_b, db_c), (exp_a, exp_b, exp_c) = _experiments(request.getfixturevalue(f"{backend}_store_url"), 3, lease=0.5)
    exp_a.add_job(job_id="j", hyperparameters={"x": 1})
    keeper.release(exp_a.next_job())  # A dies: no more heartbeats
    time.sleep(1.0 + 2 * db_a.storage.store.clock_resolution)  # (S3: ages are whole seconds, taken one younger)

    def fails(ref, doc):
        raise schedy.errors.StorageError(f"the store is out of reach (creating {doc['id']!r})")

    db_b.storage.create_job = fails
    with pytest.raises(schedy.errors.StorageError, match="creating 'j-2'"):
        claims.recover_expired(exp_b, db_b.storage)
    assert exp_c.get_job("j").status == "CRASHED"
    claims.recover_expired(exp_c, db_c.storage)
    retry = exp_c.next_job()
    keeper.release(retry)
    assert retry.job_id == "j-2"
    assert [lease.job_id for lease in db_c.storage.leases(exp_c._ref())] == ["j-2"]  # j's marker is gone
