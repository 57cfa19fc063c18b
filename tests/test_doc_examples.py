"""The Python examples of the Schedy documentation's tutorials and API reference, run
as written, as scripts, against the default store (no configuration at all).

Only layout artifacts of the documentation (a line broken by the page width) are undone.
PBT examples are tested in test_pbt*.py.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

import schedy


def run_script(code: str, timeout: float = 120) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def default_db():
    db = schedy.SchedyDB()
    assert db.config.source == "default store"
    return db


def test_database_tutorial():
    run_script(
        """
        import schedy

        db = schedy.SchedyDB()
        experiment = schedy.ManualSearch('MinimizeSimple')
        db.add_experiment(experiment)
        """
    )
    run_script(
        """
        import schedy
        db = schedy.SchedyDB()
        experiment = db.get_experiment('MinimizeSimple')
        job = experiment.add_job(
            status=schedy.Job.DONE,
            hyperparameters={
                'x': 1,
                'y': 2,
            },
            results={
                'result': 5
            },
        )
        """
    )
    run_script(
        """
        import schedy
        import random
        db = schedy.SchedyDB()
        experiment = db.get_experiment('MinimizeSimple')
        for i in range(20):
            # Test the problem for random values of x and y, 20 times
            x = random.uniform(-100, 100)
            y = random.uniform(-100, 100)
            result = x ** 2 + y ** 2
            # Tell Schedy about it!
            experiment.add_job(status=schedy.Job.DONE, hyperparameters={'x': x, 'y': y}, results={'result': result})
        """
    )
    out = run_script(
        """
        import schedy

        db = schedy.SchedyDB()
        experiment = db.get_experiment('MinimizeSimple')
        for job in experiment.all_jobs():
            print('Id:', job.job_id)
            print('Status:', job.status)
            print('Hyperparameters:')
            for name, value in job.hyperparameters.items():
                print('- {}: {}'.format(name, value))
            print('Results:')
            for name, value in job.results.items():
                print('- {}: {}'.format(name, value))
            print('')
        """
    )
    assert out.count("Status: DONE") == 21
    assert "- x: 1\n- y: 2\nResults:\n- result: 5\n" in out
    jobs = list(default_db().get_experiment("MinimizeSimple").all_jobs())
    assert len(jobs) == 21
    assert all(abs(j.results["result"] - (j.hyperparameters["x"] ** 2 + j.hyperparameters["y"] ** 2)) < 1e-6 for j in jobs)

    one = jobs[0].job_id
    run_script(
        f"""
        import schedy

        db = schedy.SchedyDB()
        db.get_experiment('MinimizeSimple').get_job('{one}').delete()
        """
    )
    assert len(list(default_db().get_experiment("MinimizeSimple").all_jobs())) == 20
    run_script(
        """
        import schedy

        db = schedy.SchedyDB()
        db.get_experiment('MinimizeSimple').delete()
        """
    )
    with pytest.raises(schedy.errors.ResourceNotFoundError):
        default_db().get_experiment("MinimizeSimple")


MANUAL_WORKER = """
import schedy
import time

db = schedy.SchedyDB()
experiment = db.get_experiment('MinimizeManual')
while True:
    try:
        with experiment.next_job() as job:
            x = job.hyperparameters['x']
            y = job.hyperparameters['y']
            result = x ** 2 + y ** 2
            job.results['result'] = result
    except Exception as e:
        print(e, flush=True)
        time.sleep(60)
"""


def test_scheduler_tutorial_worker_waits_then_runs_the_pushed_job():
    run_script(
        """
        import schedy

        db = schedy.SchedyDB()
        experiment = schedy.ManualSearch('MinimizeManual')
        db.add_experiment(experiment)
        """
    )
    run_script(
        """
        import schedy

        db = schedy.SchedyDB()
        experiment = db.get_experiment('MinimizeManual')
        job = experiment.add_job(hyperparameters={'x': 1, 'y': 2})
        """
    )
    worker = subprocess.Popen([sys.executable, "-c", MANUAL_WORKER], stdout=subprocess.PIPE, text=True)
    try:
        exp = default_db().get_experiment("MinimizeManual")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            jobs = list(exp.all_jobs())
            if jobs and jobs[0].status == "DONE":
                break
            time.sleep(0.1)
        assert [(j.status, j.results) for j in exp.all_jobs()] == [("DONE", {"result": 5})]
    finally:
        worker.kill()
        out, _ = worker.communicate(timeout=30)
    # Once the queue is empty the worker says so, as the tutorial shows, and sleeps.
    assert "No job left for experiment MinimizeManual." in out


def test_random_search_tutorial():
    run_script(
        """
        import schedy

        db = schedy.SchedyDB()
        distributions = {
            'x': schedy.random.Normal(0, 5),
            'y': schedy.random.Normal(0, 2),
        }
        experiment = schedy.RandomSearch('MinimizeRandom', distributions)
        db.add_experiment(experiment)
        """
    )
    run_script(
        """
        import schedy
        import time

        db = schedy.SchedyDB()
        experiment = db.get_experiment('MinimizeRandom')
        for i in range(20):
            try:
                with experiment.next_job() as job:
                    x = job.hyperparameters['x']
                    y = job.hyperparameters['y']
                    result = x ** 2 + y ** 2
                    job.results['result'] = result
            except Exception as e:
                print(e)
                # Wait a minute before issuing the next request
                time.sleep(60)
        """
    )
    jobs = list(default_db().get_experiment("MinimizeRandom").all_jobs())
    assert len(jobs) == 20
    assert all(j.status == "DONE" for j in jobs)
    xs = [j.hyperparameters["x"] for j in jobs]
    assert len(set(xs)) == 20 and max(map(abs, xs)) < 5 * 6
    assert all(j.results["result"] == j.hyperparameters["x"] ** 2 + j.hyperparameters["y"] ** 2 for j in jobs)


def test_getting_started_and_reference_examples():
    run_script(
        """
        import schedy

        db = schedy.SchedyDB()
        experiment = schedy.ManualSearch('MyTask')
        db.add_experiment(experiment)
        """
    )
    out = run_script(
        """
        import schedy
        db = schedy.SchedyDB()
        exp = schedy.ManualSearch('TestExperiment')
        db.add_experiment(exp)
        db = schedy.SchedyDB()
        exp = db.get_experiment('TestExperiment')
        print(type(exp))
        print(sorted(e.name for e in db.get_experiments()))
        """
    )
    assert "ManualSearch'>" in out
    assert "['MyTask', 'TestExperiment']" in out


def test_advanced_settings_of_the_reference():
    # "Advanced": the two settings, set as the reference names them, after a plain `import schedy`.
    out = run_script(
        """
        import schedy
        schedy.core.NUM_AUTH_RETRIES = 2
        schedy.core.Retry.BACKOFF_MAX = 10
        print(max(schedy.core.Retry.delay(attempt, 0.1) for attempt in range(1, 30) for _ in range(100)))
        """
    )
    assert 5 < float(out) <= 10  # waits now go past the default 5 s, and never past 10 s


def test_with_block_marks_crashed_and_reraises():
    db = default_db()
    db.add_experiment(schedy.ManualSearch("Test"))
    exp = db.get_experiment("Test")
    exp.add_job(hyperparameters={"x": 1})
    with pytest.raises(ZeroDivisionError):
        with exp.next_job() as job:
            job.results["partial"] = 1
            1 / 0
    stored = exp.get_job(job.job_id)
    assert stored.status == "CRASHED"
    assert stored.results == {"partial": 1}
    assert "ZeroDivisionError" in stored.error


def test_job_put_pushes_intermediate_results_and_id_alias():
    db = default_db()
    db.add_experiment(schedy.ManualSearch("Put"))
    exp = db.get_experiment("Put")
    exp.add_job(hyperparameters={})
    with exp.next_job() as job:
        job.results["epoch"] = 1
        job.put()
        assert exp.get_job(job.id).results == {"epoch": 1}
        assert exp.get_job(job.id).status == "RUNNING"
        job.results = {"epoch": 2, "loss": 0.1}
    assert exp.get_job(job.job_id).results == {"epoch": 2, "loss": 0.1}
