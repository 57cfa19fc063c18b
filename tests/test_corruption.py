"""A stored document that is corrupt or invalid raises an error naming it, and never
stops the others from being read; nothing is rewritten."""

import json
import os
import subprocess
import sys
import time

import pytest

import schedy
from schedy.errors import CorruptDocumentError


@pytest.fixture
def store(tmp_path):
    root = tmp_path / "store"
    db = schedy.SchedyDB(db=str(root))
    for name in ("A", "B", "C"):
        db.add_experiment(schedy.ManualSearch(name))
    exp = db.get_experiment("B")
    jobs = [exp.add_job(job_id=f"j{i}", hyperparameters={"i": i}) for i in range(3)]
    return root, db, jobs


def job_path(root, exp, job_id):
    return next((root / "jobs" / exp).glob(f"*/{job_id}.json"))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda text: text[: len(text) // 2], "is not valid JSON"),
        (lambda text: text.replace('"QUEUED"', '"LOST"'), "status must be one of"),
        (lambda text: text.replace('"hyperparameters":{"i":1}', '"hyperparameters":[1]'), "hyperparameters must be object"),
        (lambda text: text.replace("{", "{\"loss\":NaN,", 1), "is not valid JSON"),
    ],
)
def test_a_corrupt_job_is_named_and_skipped(store, damage, message):
    root, db, jobs = store
    path = job_path(root, "B", "j1")
    path.write_text(damage(path.read_text()))
    before = path.read_bytes()
    exp = db.get_experiment("B")
    with pytest.raises(CorruptDocumentError, match=f"job 'j1' of experiment 'B'.*{message}"):
        exp.get_job("j1")
    with pytest.warns(UserWarning, match="j1"):
        listed = [job.job_id for job in exp.all_jobs()]
    assert listed == ["j0", "j2"]
    assert path.read_bytes() == before


@pytest.mark.parametrize("levels", [900, 5000])
def test_a_job_written_by_hand_nested_too_deeply_is_a_corrupt_document(store, levels):
    # Writes refuse values nested deeper than jsonio.MAX_DEPTH; only a hand-made file can be.
    root, db, _ = store
    path = job_path(root, "B", "j1")
    path.write_text(path.read_text().replace('"hyperparameters":{"i":1}', '"hyperparameters":{"i":' + "[" * levels + "]" * levels + "}"))
    with pytest.raises(CorruptDocumentError, match="nested too deeply"):
        db.get_experiment("B").get_job("j1")


def test_a_corrupt_experiment_is_named_and_skipped(store):
    root, db, _ = store
    path = root / "experiments" / "A.json"
    doc = json.loads(path.read_text())
    doc["scheduler"] = {"Vanished": {}}
    path.write_text(json.dumps(doc))
    with pytest.raises(CorruptDocumentError, match="experiment 'A'.*no installed plugin provides scheduler 'Vanished'"):
        db.get_experiment("A")
    with pytest.warns(UserWarning, match="'A'"):
        names = [e.name for e in db.get_experiments()]
    assert names == ["B", "C"]


def test_corrupt_queued_job_does_not_block_the_queue(store):
    root, db, jobs = store
    path = job_path(root, "B", "j0")
    path.write_text("garbage")
    exp = db.get_experiment("B")
    with pytest.warns(UserWarning, match="job 'j0' of experiment 'B'"):
        claimed = [exp.next_job().job_id, exp.next_job().job_id]
    assert claimed == ["j1", "j2"]
    with pytest.warns(UserWarning), pytest.raises(schedy.errors.NoJobError):
        exp.next_job()
    assert path.read_text() == "garbage"


def test_a_queue_marker_whose_job_never_came_does_not_block_the_queue(store, monkeypatch):
    """A crash between writing a queue marker and its job leaves the marker alone: claims
    pass over it, and drop it once it is older than ORPHAN_MARKER_SECONDS."""
    from schedy import claims

    root, db, jobs = store
    queue = next((root / "queue" / "B").iterdir())
    orphan = queue / "19700101T000000000000Z-ghost.json"  # older than every real job
    orphan.write_bytes(b"")
    exp = db.get_experiment("B")
    assert [exp.next_job().job_id for _ in range(3)] == ["j0", "j1", "j2"]
    with pytest.raises(schedy.errors.NoJobError):
        exp.next_job()
    assert orphan.exists()  # it may be a job being written right now
    monkeypatch.setattr(claims, "ORPHAN_MARKER_SECONDS", 0.0)
    with pytest.raises(schedy.errors.NoJobError):
        exp.next_job()
    assert not orphan.exists()


def test_stray_files_among_the_markers_do_not_block_claims(store):
    """Files Schedy did not write in the queue and lease directories (a person's, a
    half-restored backup's) are passed over with a warning and left in place."""
    root, db, jobs = store
    queue = next((root / "queue" / "B").iterdir())
    running = root / "running" / "B" / queue.name
    running.mkdir(parents=True)
    strays = {
        queue / "0nodash.json": b"",  # sorts before every real marker
        queue / "0-long~~name.json": b"[1]",
        running / "stray.json": b"",
        running / "x@abc.json": b"",
        running / "y@inf.json": b"",
        running / "long~~name@60.0.json": b'{"a": 1}',
    }
    for path, body in strays.items():
        path.write_bytes(body)
    exp = db.get_experiment("B")
    with pytest.warns(UserWarning, match="marker"):
        assert [exp.next_job().job_id for _ in range(3)] == ["j0", "j1", "j2"]
        assert sorted(lease.job_id for lease in db.storage.leases(exp._ref())) == ["j0", "j1", "j2"]
        with pytest.raises(schedy.errors.NoJobError):
            exp.next_job()
    assert all(path.read_bytes() == body for path, body in strays.items())


def test_a_corrupt_job_under_an_expired_lease_does_not_block_claims(store, monkeypatch):
    root, db, jobs = store
    exp = db.get_experiment("B")
    monkeypatch.setenv("SCHEDY_LEASE_SECONDS", "0.2")
    held = exp.next_job()
    schedy.lease.keeper.release(held)  # its worker stalls: the lease expires
    path = job_path(root, "B", held.job_id)
    path.write_text("garbage")
    time.sleep(0.5)
    with pytest.warns(UserWarning, match="expired lease.*not valid JSON"):
        assert [exp.next_job().job_id for _ in range(2)] == ["j1", "j2"]
    assert path.read_text() == "garbage"


def test_dropping_a_marker_of_a_job_whose_lease_was_edited_by_hand_keeps_the_marker(store):
    root, db, jobs = store
    exp = db.get_experiment("B")
    held = exp.next_job()
    schedy.lease.keeper.release(held)
    path = job_path(root, "B", held.job_id)
    path.write_text(path.read_text().replace('"seconds":60.0', '"seconds":"x"'))
    assert '"seconds":"x"' in path.read_text()
    db.storage.drop_lease(exp._ref(), held.job_id, 60.0)  # the job cannot be read: left for a person
    assert [lease.job_id for lease in db.storage.leases(exp._ref())] == [held.job_id]


def test_a_job_that_names_another_experiment_is_corrupt(store):
    root, db, jobs = store
    path = job_path(root, "B", "j0")
    path.write_text(path.read_text().replace('"experiment":"B"', '"experiment":"Other"'))
    before = path.read_bytes()
    exp = db.get_experiment("B")
    with pytest.raises(CorruptDocumentError, match="job 'j0' of experiment 'Other'"):
        exp.get_job("j0")
    with pytest.warns(UserWarning, match="is job 'j0' of experiment 'Other'"):
        assert [job.job_id for job in exp.all_jobs()] == ["j1", "j2"]
    with pytest.warns(UserWarning, match="'Other'"):
        assert exp.next_job().job_id == "j1"
    assert path.read_bytes() == before


def test_a_job_stored_under_another_jobs_id_is_corrupt(store):
    # Listed as it is, it would be a second "j1" whose ETag is the j0 file's: a write
    # taken from the listing would be aimed at the real j1.
    root, db, jobs = store
    path = job_path(root, "B", "j0")
    path.write_text(path.read_text().replace('"id":"j0"', '"id":"j1"'))
    exp = db.get_experiment("B")
    with pytest.raises(CorruptDocumentError, match="job 'j0' of experiment 'B' is job 'j1'"):
        exp.get_job("j0")
    with pytest.warns(UserWarning, match="is job 'j1'"):
        assert [job.job_id for job in exp.all_jobs()] == ["j1", "j2"]


def test_an_experiment_file_copied_under_another_name_is_corrupt_and_never_acted_on(store):
    # Read as it is, "X" would be experiment B under another name: `schedy rm X` deleted B
    # and its jobs, and a job pushed to "X" went to B.
    root, db, jobs = store
    (root / "experiments" / "X.json").write_bytes((root / "experiments" / "B.json").read_bytes())
    with pytest.raises(CorruptDocumentError, match="stored experiment 'X' is experiment 'B'"):
        db.get_experiment("X")
    with pytest.warns(UserWarning, match="stored experiment 'X' is experiment 'B'"):
        assert [exp.name for exp in db.get_experiments()] == ["A", "B", "C"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDY_")}
    for args in (["rm", "X", "--force"], ["push", "X", "-p", "i", "9"]):
        proc = subprocess.run([sys.executable, "-m", "schedy", "--db", str(root), *args],
                              capture_output=True, text=True, env=env, timeout=60)
        assert proc.returncode != 0
        assert proc.stderr.strip().splitlines() == ["Error: stored experiment 'X' is experiment 'B'"]
    assert sorted(job.job_id for job in db.get_experiment("B").all_jobs()) == ["j0", "j1", "j2"]


def _schedy(root, *args, stdin=""):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDY_")}
    return subprocess.run([sys.executable, "-m", "schedy", "--db", str(root), *args],
                          capture_output=True, text=True, env=env, input=stdin, timeout=60)


def test_commands_that_count_jobs_print_what_they_read_then_exit_1_naming_the_unreadable(store):
    root, db, jobs = store
    job_path(root, "B", "j1").write_text('{"trunc')
    for args in (["status", "B"], ["status", "B", "--json"], ["show", "B"], ["list", "B"]):
        proc = _schedy(root, *args)
        assert proc.returncode == 1, (args, proc.stdout, proc.stderr)
        assert proc.stdout.strip(), args  # what could be read is printed
        assert proc.stderr.splitlines() == [
            "Warning: skipped job of experiment 'B', 'j1' is not valid JSON: Unterminated string starting at: line 1 column 2 (char 1)",
            "Error: 1 stored document(s) could not be read (see the warnings)",
        ], args


def test_a_job_whose_document_cannot_be_read_can_be_removed(store):
    root, db, jobs = store
    path = job_path(root, "B", "j1")
    path.write_text('{"trunc')
    proc = _schedy(root, "rm", "B", "j1", stdin="n\n")
    assert proc.returncode == 1 and "its document cannot be read" in proc.stderr and "Nothing deleted." in proc.stderr
    assert path.exists()
    proc = _schedy(root, "rm", "B", "j1", stdin="y\n")
    assert proc.returncode == 0 and proc.stdout == "Deleted job j1 of experiment B.\n", proc.stderr
    assert not path.exists()
    assert [job.job_id for job in db.get_experiment("B").all_jobs()] == ["j0", "j2"]
