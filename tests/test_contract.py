"""The storage contract, run against every backend (see ``store_url`` in conftest.py)."""

from __future__ import annotations

import multiprocessing
import os

import time

import pytest

import schedy
from schedy.config import open_storage
from schedy.errors import (
    NoJobError,
    ResourceExistsError,
    ResourceNotFoundError,
    UnsafeUpdateError,
    ValidationError,
)
from schedy.storage import ExperimentRef
from tests.workers import claimed_jobs

ODD_NAMES = ["with space", "a/b", "..", "../../escape", ".hidden", "emoji 🚀✓", "%2F", "x" * 200, "Δ/..\\C:"]


@pytest.fixture
def storage(store_url):
    opened = open_storage(store_url)
    yield opened
    opened.close()


def experiment_doc(name="E", uid="a" * 32):
    return {"schemaVersion": 1, "name": name, "status": "RUNNING", "scheduler": {"Manual": None}, "uid": uid}


def job_doc(job_id, experiment="E", status="DONE", **extra):
    return {
        "id": job_id,
        "experiment": experiment,
        "status": status,
        "hyperparameters": {"x": 1},
        "results": {},
        "created": "2026-01-01T00:00:00.000000Z",
        **extra,
    }


# -- conditional writes on experiments


def test_create_is_create_only(storage):
    etag = storage.create_experiment(experiment_doc())
    with pytest.raises(ResourceExistsError):
        storage.create_experiment(experiment_doc())
    assert storage.get_experiment("E").etag == etag


def test_update_needs_the_current_etag(storage):
    etag = storage.create_experiment(experiment_doc())
    doc = storage.get_experiment("E").doc
    new_etag = storage.update_experiment({**doc, "status": "DONE"}, etag)
    assert new_etag != etag
    with pytest.raises(UnsafeUpdateError):
        storage.update_experiment({**doc, "status": "RUNNING"}, etag)
    assert storage.get_experiment("E").doc["status"] == "DONE"


def test_every_write_changes_the_etag_even_with_the_same_content(storage):
    etag = storage.create_experiment(experiment_doc())
    doc = storage.get_experiment("E").doc
    second = storage.update_experiment(dict(doc), etag)
    third = storage.update_experiment(dict(doc), second)
    assert len({etag, second, third}) == 3
    with pytest.raises(UnsafeUpdateError):
        storage.update_experiment(dict(doc), second)


def test_an_experiment_is_read_again_only_if_changed(storage):
    etag = storage.create_experiment(experiment_doc())
    assert storage.get_experiment_if_changed("E", etag) is None
    second = storage.update_experiment({**experiment_doc(), "status": "DONE"}, etag)
    changed = storage.get_experiment_if_changed("E", etag)
    assert (changed.etag, changed.doc["status"]) == (second, "DONE")
    assert storage.get_experiment_if_changed("E", None).etag == second
    with pytest.raises(ResourceNotFoundError):
        storage.get_experiment_if_changed("nope", etag)


def test_unconditional_update_and_missing_documents(storage):
    with pytest.raises(ResourceNotFoundError):
        storage.get_experiment("nope")
    with pytest.raises(ResourceNotFoundError):
        storage.delete_experiment("nope")
    with pytest.raises((ResourceNotFoundError, UnsafeUpdateError)):
        storage.update_experiment(experiment_doc("nope"), "0" * 24)
    storage.create_experiment(experiment_doc())
    storage.update_experiment({**experiment_doc(), "status": "DONE"}, None)
    assert storage.get_experiment("E").doc["status"] == "DONE"


def test_delete_is_conditional_and_removes_jobs(storage):
    etag = storage.create_experiment(experiment_doc())
    ref = ExperimentRef("E", "a" * 32)
    storage.create_job(ref, job_doc("j1"))
    storage.update_experiment({**experiment_doc(), "status": "DONE"}, etag)
    with pytest.raises(UnsafeUpdateError):
        storage.delete_experiment("E", etag)
    storage.delete_experiment("E")
    with pytest.raises(ResourceNotFoundError):
        storage.get_experiment("E")
    with pytest.raises(ResourceNotFoundError):
        storage.get_job(ref, "j1")


def test_jobs_conditional_writes(storage):
    storage.create_experiment(experiment_doc())
    ref = ExperimentRef("E", "a" * 32)
    etag = storage.create_job(ref, job_doc("j1", status="QUEUED"))
    with pytest.raises(ResourceExistsError):
        storage.create_job(ref, job_doc("j1"))
    stored = storage.get_job(ref, "j1")
    assert stored.etag == etag and stored.doc["hyperparameters"] == {"x": 1}
    new_etag = storage.update_job(ref, {**stored.doc, "status": "DONE", "results": {"r": 2}}, etag)
    with pytest.raises(UnsafeUpdateError):
        storage.update_job(ref, {**stored.doc, "status": "CRASHED"}, etag)
    with pytest.raises(UnsafeUpdateError):
        storage.delete_job(ref, "j1", etag)
    storage.delete_job(ref, "j1", new_etag)
    with pytest.raises(ResourceNotFoundError):
        storage.delete_job(ref, "j1")


def test_invalid_documents_are_refused_and_nothing_is_written(storage):
    storage.create_experiment(experiment_doc())
    ref = ExperimentRef("E", "a" * 32)
    with pytest.raises(ValidationError):
        storage.create_job(ref, job_doc("j1", status="FINISHED"))
    with pytest.raises(ValidationError):
        storage.create_job(ref, {**job_doc("j2"), "results": {"loss": float("nan")}})
    with pytest.raises(ValidationError):
        storage.create_experiment({**experiment_doc("F"), "status": "PAUSED"})
    assert [v.doc["id"] for v in storage.list_jobs(ref).items] == []
    with pytest.raises(ResourceNotFoundError):
        storage.get_experiment("F")


# -- listing


def test_listing_pages_are_complete_and_stable(storage):
    storage.create_experiment(experiment_doc())
    ref = ExperimentRef("E", "a" * 32)
    ids = [f"job{i:03d}" for i in range(25)]
    for job_id in reversed(ids):
        storage.create_job(ref, job_doc(job_id, status="DONE" if int(job_id[3:]) % 2 else "QUEUED"))
    seen, cursor, pages = [], None, 0
    while True:
        page = storage.list_jobs(ref, cursor, limit=7)
        seen += [v.doc["id"] for v in page.items]
        pages += 1
        cursor = page.next
        if cursor is None:
            break
    assert seen == ids
    assert pages >= 4
    queued = [v.doc["id"] for v in storage.iter_jobs(ref, status="QUEUED", page_size=4)]
    assert queued == [i for i in ids if int(i[3:]) % 2 == 0]


def test_a_cursor_of_another_listing_is_refused(storage):
    storage.create_experiment(experiment_doc())
    ref = ExperimentRef("E", "a" * 32)
    storage.create_job(ref, job_doc("j1"))
    first = storage.list_experiments(None, limit=1)
    assert first.next is not None
    for cursor in ("zzzz", first.next):  # not a key at all; an experiments cursor for jobs
        with pytest.raises(ValidationError, match="is not one of this listing's"):
            storage.list_jobs(ref, cursor, limit=5)


def test_experiment_listing_pages(storage):
    names = [f"exp-{i}" for i in range(12)]
    for i, name in enumerate(names):
        storage.create_experiment(experiment_doc(name, uid=f"{i:032x}"))
    listed = [v.doc["name"] for v in storage.iter_experiments(page_size=5)]
    assert sorted(listed) == sorted(names)


# -- names


@pytest.mark.parametrize("name", ODD_NAMES)
def test_any_unicode_name_round_trips(db, name, tmp_path):
    db.add_experiment(schedy.ManualSearch(name))
    exp = db.get_experiment(name)
    assert exp.name == name
    job = exp.add_job(job_id=name, hyperparameters={"name": name})
    assert exp.get_job(name).hyperparameters == {"name": name}
    assert [j.job_id for j in exp.all_jobs()] == [job.job_id]
    assert name in [e.name for e in db.get_experiments()]
    with exp.next_job() as claimed:  # through the queue and lease markers, whose names are shortened when long
        assert claimed.job_id == name
    assert exp.get_job(name).status == "DONE"
    exp.delete()
    with pytest.raises(ResourceNotFoundError):
        db.get_experiment(name)


def test_files_store_keeps_every_name_inside_its_directory(tmp_path):
    root = tmp_path / "store"
    db = schedy.SchedyDB(db=str(root))
    for name in ODD_NAMES:
        db.add_experiment(schedy.ManualSearch(name))
        db.get_experiment(name).add_job(job_id=name, hyperparameters={})
    outside = {p for p in tmp_path.rglob("*") if not p.is_relative_to(root)}
    assert outside == set()
    assert all(".." not in p.relative_to(root).parts for p in root.rglob("*"))


def test_files_store_hands_out_the_oldest_keys_without_sorting_every_call(tmp_path, monkeypatch):
    from schedy_backends import files

    store = files.FileObjectStore(tmp_path)
    for i in range(10):
        store.put(f"q/{i:02d}", b"")
    assert store.first_keys("q/", 3) == ["q/00", "q/01", "q/02"]
    scans = []
    monkeypatch.setattr(store, "_sorted_names", lambda d, real=store._sorted_names: scans.append(d) or real(d))
    store.delete("q/00")
    store.delete("q/01")
    assert store.first_keys("q/", 3) == ["q/02", "q/03", "q/04"] and scans == []  # from the last scan
    store.put("q/05b", b"")  # a new key among the first ones shows up at the next scan
    for i in range(2, 8):
        store.delete(f"q/{i:02d}")
    assert store.first_keys("q/", 3) == ["q/05b", "q/08", "q/09"] and len(scans) == 1
    monkeypatch.setattr(files, "SNAPSHOT_SECONDS", 0.0)
    store.put("q/04", b"")  # older than all, seen once the last scan is too old
    assert store.first_keys("q/", 1) == ["q/04"]


def test_files_store_draws_among_the_oldest_keys_looking_only_at_those_drawn(tmp_path, monkeypatch):
    from schedy_backends import files

    store = files.FileObjectStore(tmp_path)
    for i in range(40):
        store.put(f"q/{i:02d}", b"")
    assert store.first_keys("q/", 1) == ["q/00"]  # the scan that later draws use
    looked: list[str] = []
    monkeypatch.setattr(store, "_exists", lambda d, name, real=store._exists: looked.append(name) or real(d, name))
    first = [next(store.draw_first_keys("q/", 8)) for _ in range(200)]
    assert set(first) == {f"q/{i:02d}" for i in range(8)}  # the 8 oldest, all of them in time
    assert len(looked) == 200  # one name looked at a draw, not the whole window
    for i in range(4):
        store.delete(f"q/{i:02d}")
    looked.clear()
    drawn = list(store.draw_first_keys("q/", 8))
    assert sorted(drawn) == [f"q/{i:02d}" for i in range(4, 12)]  # the window, each name once
    assert sorted(set(looked) - {f"{i:02d}" for i in range(4, 12)}) == ["00", "01", "02", "03"]  # found gone once each
    assert sorted(store.draw_first_keys("q/", 60)) == [f"q/{i:02d}" for i in range(4, 40)]  # fewer than asked


def test_queued_jobs_are_drawn_among_the_oldest(storage):
    from schedy.storage import IndexedStorage

    if not isinstance(storage, IndexedStorage):
        pytest.skip("this store hands out jobs itself")
    storage.create_experiment(experiment_doc())
    ref = ExperimentRef("E", "a" * 32)
    for i in range(12):
        storage.create_job(ref, job_doc(f"j{i:02d}", status="QUEUED", created=f"2026-01-01T00:00:{i:02d}.000000Z"))
    assert [job_id for _, job_id in storage.queued(ref, 2)] == ["j00", "j01"]
    first = {next(storage.draw_queued(ref, 4))[1] for _ in range(100)}
    assert first == {"j00", "j01", "j02", "j03"}
    assert sorted(job_id for _, job_id in storage.draw_queued(ref, 30)) == [f"j{i:02d}" for i in range(12)]


def _one_queued_job(tmp_path):
    """A files store with one queued job "q": its experiment, storage, ref, queue marker and id."""
    db = schedy.SchedyDB(db=str(tmp_path))
    db.add_experiment(schedy.ManualSearch("E"))
    exp = db.get_experiment("E")
    exp.add_job(job_id="q", hyperparameters={})
    [(marker, job_id)] = db.storage.queued(exp._ref(), 5)
    return exp, db.storage, exp._ref(), marker, job_id


def test_files_store_claimers_take_a_queued_job_before_writing_it(tmp_path):
    """On a files store the queue marker is renamed into the claim's lease marker: one
    claimer moves it and the others write nothing; a claim that is not written after all
    puts the marker back in the queue (job still QUEUED) or drops it. Until the job write
    renews it, the lease expires TAKE_SECONDS after the move."""
    from schedy.objects import TAKE_SECONDS

    exp, storage, ref, marker, job_id = _one_queued_job(tmp_path)
    assert storage.take_queued(ref, marker, job_id, 60.0) is True
    assert storage.take_queued(ref, marker, job_id, 60.0) is False  # the loser writes nothing
    assert storage.queued(ref, 5) == []
    [lease] = storage.leases(ref)
    assert lease.job_id == "q" and 60.0 - TAKE_SECONDS - 1 < lease.age < 60.0 - TAKE_SECONDS + 1
    storage.untake_queued(ref, marker, job_id, 60.0)  # the job is still QUEUED: back in the queue
    assert storage.queued(ref, 5) == [(marker, "q")] and storage.leases(ref) == []
    job = exp.get_job("q")
    job.status = "DONE"
    job.put()
    assert storage.take_queued(ref, marker, job_id, 60.0) is True  # a stale marker, taken
    storage.untake_queued(ref, marker, job_id, 60.0)  # the job is DONE: dropped
    assert storage.queued(ref, 5) == [] and storage.leases(ref) == []


def test_takes_within_a_second_are_dated_by_the_store_clock(tmp_path):
    """Only the first take in a second reads the store's clock; the next ones add the
    offset it found to this machine's clock: their leases are dated the same way."""
    from schedy.objects import TAKE_SECONDS

    exp, storage, ref, _, _ = _one_queued_job(tmp_path)
    exp.add_job(job_id="r", hyperparameters={})
    taken = [storage.take_queued(ref, marker, job_id, 60.0) for marker, job_id in storage.queued(ref, 5)]
    assert taken == [True, True]
    ages = sorted(lease.age for lease in storage.leases(ref))
    assert len(ages) == 2 and all(60.0 - TAKE_SECONDS - 1 < age < 60.0 - TAKE_SECONDS + 1 for age in ages)


def test_a_claimer_sees_experiment_changes_made_elsewhere(db):
    db.add_experiment(schedy.ManualSearch("Seen"))
    worker, other = db.get_experiment("Seen"), db.get_experiment("Seen")
    for i in range(3):
        worker.add_job(hyperparameters={"i": i})
    with worker.next_job():
        pass
    with worker.next_job():  # the experiment unchanged since the last claim: nothing rebuilt
        pass
    other.status = other.DONE
    other.push_updates()
    with pytest.raises(NoJobError):
        worker.next_job()


def test_a_claimer_that_dies_between_taking_and_writing_leaves_the_job_to_the_queue(tmp_path, monkeypatch):
    from schedy import objects

    monkeypatch.setattr(objects, "TAKE_SECONDS", 0.2)
    exp, storage, ref, marker, job_id = _one_queued_job(tmp_path)
    assert storage.take_queued(ref, marker, job_id, 60.0) is True  # ... and its claimer is killed here
    with pytest.raises(NoJobError):
        exp.next_job()
    time.sleep(0.5)
    with exp.next_job() as job:
        assert (job.job_id, job.attempt) == ("q", 1)
        [lease] = storage.leases(ref)
        assert lease.age < 5  # a written claim has its whole lease
    assert [(j.job_id, j.status) for j in exp.all_jobs()] == [("q", "DONE")] and storage.leases(ref) == []


def test_deleted_experiment_jobs_do_not_reappear(db):
    old = schedy.ManualSearch("E")
    db.add_experiment(old)
    old.add_job(hyperparameters={"x": 1})
    old.delete()
    db.add_experiment(schedy.ManualSearch("E"))
    assert list(db.get_experiment("E").all_jobs()) == []
    with pytest.raises(ResourceNotFoundError):
        old.delete()
    old.delete(ensure=False)
    assert db.get_experiment("E").name == "E"


# -- claims


def test_next_job_is_fifo_then_no_job(db):
    db.add_experiment(schedy.ManualSearch("Q"))
    exp = db.get_experiment("Q")
    added = [exp.add_job(hyperparameters={"i": i}).job_id for i in range(5)]
    claimed = []
    for _ in added:
        job = exp.next_job()
        assert job.status == schedy.Job.RUNNING
        claimed.append(job.job_id)
        with job:
            job.results["ok"] = True
    assert claimed == added
    with pytest.raises(NoJobError):
        exp.next_job()
    assert {j.status for j in exp.all_jobs()} == {"DONE"}


def test_jobs_ended_or_deleted_by_hand_while_queued_do_not_hide_the_queue_behind_them(db):
    # Their queue markers stay until a claim meets them; dropping 64 of them once used up
    # a claim's rounds, and it answered NoJobError in front of jobs still queued.
    db.add_experiment(schedy.ManualSearch("Q"))
    exp = db.get_experiment("Q")
    added = [exp.add_job(job_id=f"j{i:03d}", hyperparameters={"i": i}).job_id for i in range(90)]
    for job_id in added[:70]:
        job = exp.get_job(job_id)
        job.status = schedy.Job.DONE
        job.put()
    for job_id in added[70:85]:
        exp.get_job(job_id).delete()
    claimed = []
    for _ in range(5):
        job = exp.next_job()
        claimed.append(job.job_id)
        with job:
            pass
    assert claimed == added[85:]


def test_done_experiment_hands_out_nothing(db):
    exp = schedy.RandomSearch("R", {"x": schedy.random.Uniform(0, 1)})
    db.add_experiment(exp)
    exp.status = exp.DONE
    exp.push_updates()
    with pytest.raises(NoJobError):
        db.get_experiment("R").next_job()


def test_conflicting_claims_have_one_winner(db):
    db.add_experiment(schedy.ManualSearch("C"))
    exp = db.get_experiment("C")
    job = exp.add_job(hyperparameters={})
    first, second = exp.get_job(job.job_id), exp.get_job(job.job_id)
    first.try_run()
    with pytest.raises(UnsafeUpdateError):
        second.try_run()
    first.status = "DONE"
    first.put()


def _drain(url: str, name: str, out: str) -> None:
    db = schedy.SchedyDB(db=url)
    exp = db.get_experiment(name)
    ran = []
    for job in claimed_jobs(exp):
        with job:
            job.results["by"] = os.getpid()
            ran.append(job.job_id)
    with open(out, "w") as f:
        f.write("\n".join(ran))


@pytest.mark.timeout(300)
def test_exactly_once_across_processes(db, store_url, tmp_path):
    db.add_experiment(schedy.ManualSearch("Race"))
    exp = db.get_experiment("Race")
    added = {exp.add_job(hyperparameters={"i": i}).job_id for i in range(120)}
    ctx = multiprocessing.get_context("spawn")
    outs = [str(tmp_path / f"ran-{i}") for i in range(4)]
    procs = [ctx.Process(target=_drain, args=(store_url, "Race", out)) for out in outs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(240)
        assert p.exitcode == 0
    ran = [line for out in outs for line in open(out).read().split("\n") if line]
    assert len(ran) == len(set(ran)), "a job ran twice"
    assert set(ran) == added, "a job was lost"
    jobs = list(exp.all_jobs())
    assert all(j.status == "DONE" and "by" in j.results for j in jobs)
