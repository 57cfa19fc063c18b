"""The grid search plugin, as its users and Schedy see it."""

import multiprocessing
import subprocess
import sys

import pytest

import schedy
from schedy.errors import NoJobError, ValidationError
from schedy.plugins import registry
from schedy_grid import GridSearch


def test_registered_through_the_entry_point():
    assert registry().scheduler("GridSearch") is GridSearch
    assert registry().plugins["grid"].schedulers == ["GridSearch"]


def test_every_point_once_then_no_job(tmp_path):
    db = schedy.SchedyDB(db=str(tmp_path))
    db.add_experiment(GridSearch("Sweep", {"lr": [0.1, 0.01], "layers": schedy.random.Choice([2, 4, 8])}))
    exp = db.get_experiment("Sweep")
    seen = []
    while True:
        try:
            with exp.next_job() as job:
                seen.append((job.hyperparameters["lr"], job.hyperparameters["layers"]))
        except NoJobError:
            break
    assert seen == [(lr, n) for lr in (0.1, 0.01) for n in (2, 4, 8)]


@pytest.mark.parametrize("cursor", [{"next": "1"}, {"next": -3}, {}])
def test_a_cursor_edited_by_hand_is_named_not_followed(tmp_path, cursor):
    from schedy.errors import CorruptDocumentError

    db = schedy.SchedyDB(db=str(tmp_path))
    db.add_experiment(GridSearch("Sweep", {"lr": [0.1, 0.01]}))
    exp = db.get_experiment("Sweep")
    db.storage.put_state(exp._ref(), "grid-cursor", cursor, None)
    with pytest.raises(CorruptDocumentError, match="the grid cursor of experiment 'Sweep'"):
        exp.next_job()
    assert list(exp.all_jobs()) == []


def _run_all(exp) -> list[str]:
    """Run jobs until none is left; their ids, in order."""
    ran = []
    while True:
        try:
            with exp.next_job() as job:
                ran.append(job.job_id)
        except NoJobError:
            return ran


def _worker(url, out):
    ran = _run_all(schedy.SchedyDB(db=url).get_experiment("Race"))
    with open(out, "w") as f:
        f.write(" ".join(ran))


def test_racing_workers_never_run_a_point_twice(tmp_path):
    url = str(tmp_path / "store")
    schedy.SchedyDB(db=url).add_experiment(GridSearch("Race", {"a": list(range(10)), "b": list(range(6))}))
    ctx = multiprocessing.get_context("spawn")
    outs = [str(tmp_path / f"out{i}") for i in range(3)]
    procs = [ctx.Process(target=_worker, args=(url, out)) for out in outs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    ran = [job for out in outs for job in open(out).read().split()]
    assert sorted(ran) == sorted(f"grid-{i}" for i in range(60))


def test_cli_add_form(tmp_path):
    url = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "schedy", "--db", url, "add", "Sweep", "grid", "lr", "[0.1, 0.01]"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert schedy.SchedyDB(db=url).get_experiment("Sweep").grid == {"lr": [0.1, 0.01]}


def test_bad_params():
    with pytest.raises(ValidationError):
        GridSearch.from_cli("S", "RUNNING", ["lr", "0.1"])
    with pytest.raises(ValidationError, match="given twice"):
        GridSearch.from_cli("S", "RUNNING", ["lr", "[0.1]", "lr", "[0.2]"])
    with pytest.raises(ValidationError):
        GridSearch("S", {})


def test_hand_made_jobs_cannot_take_a_point_id(tmp_path):
    db = schedy.SchedyDB(db=str(tmp_path))
    db.add_experiment(GridSearch("S", {"lr": [0.1, 0.01]}))
    exp = db.get_experiment("S")
    with pytest.raises(ValidationError, match="grid point"):
        exp.add_job(hyperparameters={"lr": 0.5}, job_id="grid-1")
    exp.add_job(hyperparameters={"lr": 0.5}, job_id="grid-x")
    assert sorted(_run_all(exp)) == ["grid-0", "grid-1", "grid-x"]
