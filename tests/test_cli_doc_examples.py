"""Every command-line example of the Schedy documentation, run as written, in order,
through the installed ``schedy`` entry point; checking what it prints and what it stores."""

import os
import re
import shlex
import subprocess
import sys

import pytest

import schedy

TABLE_ROW = re.compile(r"^\| (\S+) +\| (\w+) +\|")


@pytest.fixture
def shell(tmp_path):
    env = {**os.environ, "SCHEDY_DB": str(tmp_path / "store")}
    env.pop("SCHEDY_DEBUG", None)

    def run(command, stdin="", expect=0):
        args = shlex.split(command)
        assert args[0] == "schedy"
        proc = subprocess.run(
            [sys.executable, "-m", "schedy", *args[1:]], input=stdin, capture_output=True, text=True,
            env=env, timeout=120,
        )
        assert proc.returncode == expect, (command, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr
        return proc.stdout

    run.db = lambda: schedy.SchedyDB(db=env["SCHEDY_DB"])
    return run


def table_rows(text):
    lines = text.strip().splitlines()
    assert lines[0].startswith("+-") and lines[2].startswith("|-") and lines[-1].startswith("+-")
    header = [h.strip() for h in lines[1].strip("|").split("|")]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[3:-1]]
    return header, rows


def test_tutorial_database(shell):
    assert "MinimizeSimple" in shell("schedy add MinimizeSimple manual")
    first = shell("schedy push MinimizeSimple --status DONE --hyperparameters x 1 y 2 --results result 5")
    second = shell("schedy push MinimizeSimple -s DONE -p x 1 y 2 -r result 5")
    ids = [first.split()[0], second.split()[0]]
    assert all(re.fullmatch(r"[A-Za-z0-9]{8}", i) for i in ids)
    db = shell.db()
    experiment = db.get_experiment("MinimizeSimple")
    for job_id in ids:
        job = experiment.get_job(job_id)
        assert (job.status, job.hyperparameters, job.results) == ("DONE", {"x": 1, "y": 2}, {"result": 5})
    import random

    stored = [5]
    for i in range(20):
        x, y = random.uniform(-100, 100), random.uniform(-100, 100)
        experiment.add_job(status=schedy.Job.DONE, hyperparameters={"x": x, "y": y}, results={"result": x**2 + y**2})
        stored.append(x**2 + y**2)

    header, rows = table_rows(shell("schedy list -t MinimizeSimple"))
    assert header == ["id", "status", "x", "y", "result"]
    assert len(rows) == 22 and [r[0] for r in rows] == sorted(r[0] for r in rows)
    assert all(r[1] == "DONE" for r in rows)

    paragraphs = shell("schedy list -p MinimizeSimple").strip().split("\n\n")
    assert len(paragraphs) == 22
    assert paragraphs[[r[0] for r in rows].index(ids[0])].splitlines() == [
        f"Job {ids[0]}", "  status: DONE", "  hyperparameters:", "    x: 1", "    y: 2", "  results:", "    result: 5"
    ]

    header, rows = table_rows(shell("schedy list -t MinimizeSimple -s result"))
    results = [float(r[4]) for r in rows]
    assert results == sorted(results) and results[0] == pytest.approx(min(stored), rel=1e-5)

    shell(f"schedy rm MinimizeSimple {ids[0]}", stdin="y\n")
    assert ids[0] not in shell("schedy list MinimizeSimple").split()
    assert len(shell("schedy list MinimizeSimple").split()) == 21
    shell("schedy rm MinimizeSimple", stdin="y\n")
    assert shell("schedy list").split() == []


def test_tutorial_scheduler_and_show(shell):
    shell("schedy add MinimizeManual manual")
    job_id = shell("schedy push MinimizeManual -p x 1 y 2").split()[0]
    experiment = shell.db().get_experiment("MinimizeManual")
    with experiment.next_job() as job:
        job.results["result"] = job.hyperparameters["x"] ** 2 + job.hyperparameters["y"] ** 2
    header, rows = table_rows(shell("schedy list -t MinimizeManual"))
    assert header == ["id", "status", "x", "y", "result"]
    assert rows == [[job_id, "DONE", "1", "2", "5"]]
    shown = shell(f"schedy show MinimizeManual {job_id}")
    assert shown.startswith(f"Job {job_id}\n") and "status: DONE" in shown and "result: 5" in shown


def test_tutorial_random_search(shell):
    shell("""schedy add MinimizeRandom random x normal '{"mean": 0, "std": 5}' y normal '{"mean": 0, "std": 2}'""")
    experiment = shell.db().get_experiment("MinimizeRandom")
    assert experiment.get_params() == {"x": {"normal": {"mean": 0, "std": 5}}, "y": {"normal": {"mean": 0, "std": 2}}}
    for _ in range(20):
        with experiment.next_job() as job:
            job.results["result"] = job.hyperparameters["x"] ** 2 + job.hyperparameters["y"] ** 2
    header, rows = table_rows(shell("schedy list -t MinimizeRandom"))
    assert header == ["id", "status", "x", "y", "result"] and len(rows) == 20


@pytest.mark.parametrize(
    "command, params",
    [
        ("""schedy add Test random x uniform '{"low": 2.1, "high": 5}'""", {"uniform": {"low": 2.1, "high": 5}}),
        ("""schedy add Test random x normal '{"mean": 2.1, "std": 5}'""", {"normal": {"mean": 2.1, "std": 5}}),
        ("""schedy add Test random x loguniform '{"low": 0.000001, "high": 0.1}'""",
         {"loguniform": {"low": 0.000001, "high": 0.1}}),
        ("""schedy add Test random x choice '{"values": [2, 4, 8, 10]}'""", {"choice": {"values": [2, 4, 8, 10]}}),
    ],
)
def test_distribution_examples(shell, command, params):
    shell(command)
    assert shell.db().get_experiment("Test").get_params() == {"x": params}


def test_faq_json_values(shell):
    shell("schedy add MyExperiment manual")
    pushed = [
        shell("""schedy push MyExperiment -p my_string_param '"string value"'"""),
        shell("""schedy push MyExperiment -p my_array_param '["stuff", true, 6]'"""),
        shell("""schedy push MyExperiment -p my_dict_param '{"key0": "value0", "key1": 42}'"""),
    ]
    experiment = shell.db().get_experiment("MyExperiment")
    stored = [experiment.get_job(out.split()[0]).hyperparameters for out in pushed]
    assert stored == [
        {"my_string_param": "string value"},
        {"my_array_param": ["stuff", True, 6]},
        {"my_dict_param": {"key0": "value0", "key1": 42}},
    ]
