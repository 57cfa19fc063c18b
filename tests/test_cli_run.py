"""``schedy run`` and ``schedy status`` as real processes, with commands that do not import Schedy."""

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import schedy
from tests.workers import StopAboveOne

TRAIN = textwrap.dedent(
    """
    import json, os, sys, time
    hp = json.loads(os.environ["SCHEDY_HYPERPARAMETERS"])
    print("argv", json.dumps(sys.argv[1:]), flush=True)
    if hp.get("sleep"):
        with open(os.path.join(os.environ["PIDS"], os.environ["SCHEDY_JOB_ID"]), "w") as f:
            f.write(str(os.getpid()))
        time.sleep(hp["sleep"])
    if hp.get("fail"):
        print("boom: x was", hp["x"], file=sys.stderr)
        sys.exit(3)
    print('--- REPORT --- {"step": 1, "loss": 9}')
    print('--- REPORT --- not json')
    if hp.get("via_file"):
        with open(os.environ["SCHEDY_RESULTS_FILE"], "w") as f:
            json.dump({"y": hp["x"] * 10, "job": os.environ["SCHEDY_JOB_ID"]}, f)
    elif not hp.get("silent"):
        print("--- RESULTS ---")
        print(json.dumps({"y": hp["x"] * 10, "experiment": os.environ["SCHEDY_EXPERIMENT"]}, indent=1))
        print("--- END RESULTS ---")
    print("after the results")
    """
)


@pytest.fixture
def setup(tmp_path):
    url = str(tmp_path / "store")
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    pids = tmp_path / "pids"
    pids.mkdir()
    db = schedy.SchedyDB(db=url)
    db.add_experiment(schedy.ManualSearch("E"))
    yield url, script, db, pids
    db.close()


def _add(db, *hyperparameters):
    exp = db.get_experiment("E")
    return [exp.add_job(job_id=f"j{k}", hyperparameters=hp).job_id for k, hp in enumerate(hyperparameters)]


def _schedy(url, *args, pids=None, **kwargs):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDY_")}
    if pids is not None:
        env["PIDS"] = str(pids)
    return [sys.executable, "-m", "schedy", "--db", url, *args], env


def _run(url, *args, pids=None, timeout=180):
    argv, env = _schedy(url, *args, pids=pids)
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)


def _jobs(db):
    return {job.job_id: job for job in db.get_experiment("E").all_jobs()}


def test_run_drains_the_queue(setup):
    url, script, db, pids = setup
    _add(db, {"x": 1, "learning_rate": 0.5, "skip_me": None}, {"x": 2, "via_file": True}, {"x": 3})
    proc = _run(url, "run", "E", "--", sys.executable, str(script), "%h", "--x={x}", "%e/%j", "100%%", "{nope}")
    assert proc.returncode == 0, proc.stderr
    jobs = _jobs(db)
    assert {j.status for j in jobs.values()} == {"DONE"}
    assert jobs["j0"].results == {"y": 10, "experiment": "E"}
    assert jobs["j1"].results == {"y": 20, "job": "j1"}
    assert jobs["j0"].history == [{"step": 1, "loss": 9}]
    argv_line = next(line for line in proc.stdout.splitlines() if line.startswith("argv") and "--learning-rate" in line)
    assert json.loads(argv_line[5:]) == ["--x", "1", "--learning-rate", "0.5", "--x=1", "E/j0", "100%", "{nope}"]
    assert "after the results" in proc.stdout  # the output streams through
    assert "ignored report line" in proc.stderr
    assert "3 done, 0 crashed" in proc.stderr
    assert schedy.SchedyDB(db=url).storage.leases(db.get_experiment("E")._ref()) == []


def test_values_queued_by_anyone_reach_the_terminal_escaped(setup):
    # An OSC sequence retitles a terminal, CSI 2J clears it, a newline forges a line.
    url, script, db, _ = setup
    value = "\x1b]0;pwned\x07\x1b[2J\n[schedy run] forged"
    _add(db, {"x": 1, "note": value})
    proc = _run(url, "run", "E", "--", sys.executable, str(script), "%h")
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stderr and "\x07" not in proc.stderr
    assert "[schedy run] forged" not in proc.stderr.splitlines()
    assert "\\x1b]0;pwned\\x07\\x1b[2J\\n" in proc.stderr
    assert json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("argv"))[5:])[-1] == value


ARGPARSE_TRAIN = textwrap.dedent(
    """
    import argparse, json
    parser = argparse.ArgumentParser()
    parser.add_argument("--act")
    parser.add_argument("--lr", type=float)
    parser.add_argument("--steps", type=int)
    print("--- RESULTS ---", json.dumps(vars(parser.parse_args())))
    """
)


def test_an_argparse_program_reads_every_value_of_percent_h(setup, tmp_path):
    url, _, db, _ = setup
    script = tmp_path / "parse.py"
    script.write_text(ARGPARSE_TRAIN)
    _add(db, {"act": "--relu", "lr": -0.5, "steps": 3}, {"act": "-", "lr": -1e-05, "steps": -2})
    proc = _run(url, "run", "E", "--", sys.executable, str(script), "%h")
    assert proc.returncode == 0, proc.stderr
    jobs = _jobs(db)
    assert jobs["j0"].results == {"act": "--relu", "lr": -0.5, "steps": 3}
    assert jobs["j1"].results == {"act": "-", "lr": -1e-05, "steps": -2}


LOSSES = textwrap.dedent(
    """
    import json, os, sys, time
    hp = json.loads(os.environ["SCHEDY_HYPERPARAMETERS"])
    for step in range(1, 4):
        print('--- REPORT --- {"step": %d, "loss": %s}' % (step, hp["loss"] / step), flush=True)
        time.sleep(0.2)
    print("--- RESULTS ---", json.dumps({"loss": hp["loss"] / 3}))
    """
)


def test_a_job_the_scheduler_stops_early_ends_pruned_and_its_command_is_stopped(tmp_path):
    from schedy.runner import RunOptions, Runner

    db = schedy.SchedyDB(db=str(tmp_path / "store"))
    exp = StopAboveOne("Early")
    db.add_experiment(exp)
    exp.add_job(job_id="bad", hyperparameters={"loss": 9.0})
    exp.add_job(job_id="good", hyperparameters={"loss": 0.9})
    script = tmp_path / "losses.py"
    script.write_text(LOSSES)
    err = io.StringIO()
    code = Runner(exp, [sys.executable, str(script)], RunOptions(), out=io.StringIO(), err=err).run()
    assert code == 0, err.getvalue()
    bad, good = exp.get_job("bad"), exp.get_job("good")
    assert bad.status == "PRUNED" and bad.error == "stopped early by the scheduler after step 1"
    assert [entry["step"] for entry in bad.history] == [1]  # its command was stopped at once
    assert good.status == "DONE" and len(good.history) == 3 and good.results == {"loss": 0.3}
    assert "1 done, 0 crashed, 1 pruned" in err.getvalue()


def test_failing_command_is_crashed_and_stops_the_run(setup):
    url, script, db, pids = setup
    _add(db, {"x": 1}, {"x": 2, "fail": True}, {"x": 3})
    proc = _run(url, "run", "E", "--", sys.executable, str(script))
    assert proc.returncode == 1
    jobs = _jobs(db)
    assert [jobs[j].status for j in ("j0", "j1", "j2")] == ["DONE", "CRASHED", "QUEUED"]
    assert "exited with code 3" in jobs["j1"].error and "boom: x was 2" in jobs["j1"].error
    assert "boom: x was 2" in proc.stderr  # stderr streams through too


def test_ignore_errors_goes_on(setup):
    url, script, db, pids = setup
    _add(db, {"x": 1, "fail": True}, {"x": 2}, {"x": 3, "silent": True})
    proc = _run(url, "run", "E", "--ignore-errors", "--", sys.executable, str(script))
    assert proc.returncode == 0, proc.stderr
    jobs = _jobs(db)
    assert [jobs[j].status for j in ("j0", "j1", "j2")] == ["CRASHED", "DONE", "CRASHED"]
    assert "no results" in jobs["j2"].error


def test_allow_empty_results_once_and_max_jobs(setup):
    url, script, db, pids = setup
    _add(db, {"x": 1, "silent": True}, {"x": 2}, {"x": 3}, {"x": 4})
    assert _run(url, "run", "E", "--once", "--allow-empty-results", "--", sys.executable, str(script)).returncode == 0
    assert [j.status for j in _jobs(db).values()] == ["DONE", "QUEUED", "QUEUED", "QUEUED"]
    assert _run(url, "run", "E", "--max-jobs", "2", "--", sys.executable, str(script)).returncode == 0
    assert [j.status for j in _jobs(db).values()] == ["DONE", "DONE", "DONE", "QUEUED"]


def test_timeout_crashes_the_job(setup):
    url, script, db, pids = setup
    _add(db, {"x": 1, "sleep": 60})
    started = time.monotonic()
    proc = _run(url, "run", "E", "--timeout", "1", "--", sys.executable, str(script), pids=pids)
    assert proc.returncode == 1
    assert time.monotonic() - started < 50
    job = _jobs(db)["j0"]
    assert job.status == "CRASHED" and "timed out after 1s" in job.error
    _assert_dead(int((pids / "j0").read_text()))


def test_wait_polls_until_a_job_comes(setup):
    url, script, db, pids = setup
    argv, env = _schedy(url, "run", "E", "--wait", "--once", "--", sys.executable, str(script))
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(2.0)
    assert proc.poll() is None  # an empty queue does not end a --wait run
    _add(db, {"x": 5})
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert _jobs(db)["j0"].results["y"] == 50


def test_sigterm_leaves_no_running_job(setup):
    url, script, db, pids = setup
    _add(db, *({"x": x, "sleep": 300} for x in range(3)))
    argv, env = _schedy(url, "run", "E", "--parallel", "2", "--", sys.executable, str(script), pids=pids)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        _until(lambda: len(list(pids.iterdir())) == 2, 120)
        started = sorted(path.name for path in pids.iterdir())
        status = _run(url, "status", "E", "--json")
        assert status.returncode == 0, status.stderr
        running = json.loads(status.stdout)["running"]
        assert sorted(job["id"] for job in running) == started
        assert all(job["worker"]["pid"] == proc.pid and job["heartbeatAge"] >= 0 for job in running)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    jobs = _jobs(db)
    assert {job_id: job.status for job_id, job in jobs.items()} == {
        job_id: "CRASHED" if job_id in started else "QUEUED" for job_id in ("j0", "j1", "j2")
    }
    assert all("SIGTERM" in jobs[job_id].error for job_id in started)
    for job_id in started:
        _assert_dead(int((pids / job_id).read_text()))
    assert db.storage.leases(db.get_experiment("E")._ref()) == []


def test_status_counts_and_best(setup):
    url, script, db, pids = setup
    exp = db.get_experiment("E")
    for k, (status, y) in enumerate([("DONE", 3), ("DONE", 7), ("CRASHED", 100), ("QUEUED", None)]):
        exp.add_job(job_id=f"s{k}", hyperparameters={"k": k}, status=status, results={} if y is None else {"y": y})
    proc = _run(url, "status", "E", "--best", "y", "--max")
    assert proc.returncode == 0, proc.stderr
    assert "QUEUED: 1, RUNNING: 0, DONE: 2, CRASHED: 1, PRUNED: 0" in proc.stdout
    assert "Best y: 7 (job s1" in proc.stdout
    data = json.loads(_run(url, "status", "E", "--best", "y", "--json").stdout)
    assert data["best"]["id"] == "s0" and data["best"]["value"] == 3
    assert data["counts"]["DONE"] == 2 and data["running"] == []


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["run", "Nope", "--", "true"], 1, "does not exist"),
        (["run", "E"], 2, "Missing argument"),
        (["run", "E", "--parallel", "0", "--", "true"], 2, "--parallel"),
        (["run", "E", "--parallel", "99999999999999999999", "--", "true"], 2, "--parallel"),
        (["run", "E", "--parallel", "1025", "--", "true"], 2, "--parallel"),
        (["run", "E", "--timeout", "nan", "--", "true"], 2, "--timeout"),
        (["status", "Nope"], 1, "does not exist"),
    ],
)
def test_bad_input_is_one_line(setup, args, code, message):
    url, script, db, pids = setup
    _add(db, {"x": 1})
    proc = _run(url, *args)
    assert proc.returncode == code
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert [j.status for j in _jobs(db).values()] == ["QUEUED"]


def test_command_that_cannot_start_is_crashed(setup):
    url, script, db, pids = setup
    _add(db, {"x": 1})
    proc = _run(url, "run", "E", "--", str(script.parent / "no-such-program"))
    assert proc.returncode == 1
    job = _jobs(db)["j0"]
    assert job.status == "CRASHED" and "could not start" in job.error


def _until(condition, seconds):
    end = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < end, "timed out waiting"
        time.sleep(0.05)


def _assert_dead(pid):
    end = time.monotonic() + 30
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise AssertionError(f"process {pid} still alive")


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def test_results_no_store_can_hold_end_the_job_crashed_at_once(setup):
    url, script, db, pids = setup
    _add(db, {"x": 1})
    command = _python("""
        print('--- RESULTS --- {"ok": 2, "big": 1' + '0' * 400 + '}')
    """)
    proc = _run(url, "run", "E", "--", *command)
    assert proc.returncode == 1, proc.stderr
    job = _jobs(db)["j0"]
    assert job.status == "CRASHED" and job.results == {"ok": 2}
    assert "results.big" in job.error and "could not store the job" in job.error
    assert db.storage.leases(db.get_experiment("E")._ref()) == []


@pytest.mark.parametrize("via_file", [False, True])
def test_results_python_writes_but_no_store_holds_lose_only_themselves(setup, via_file):
    url, script, db, pids = setup
    _add(db, {"x": 1})
    command = _python(f"""
        import json, os
        results = {{"loss": float("nan"), "peak": float("inf"), "acc": 0.5, "huge": 10 ** 400}}
        if {via_file}:
            with open(os.environ["SCHEDY_RESULTS_FILE"], "w") as f:
                f.write(json.dumps(results))
        else:
            print("--- RESULTS ---", json.dumps(results))
    """)
    proc = _run(url, "run", "E", "--", *command)
    assert proc.returncode == 1, proc.stderr
    job = _jobs(db)["j0"]
    assert job.status == "CRASHED" and job.results == {"acc": 0.5}
    assert "could not store the job" in job.error


def test_a_report_nested_too_deeply_is_ignored_and_the_job_ends(setup):
    url, script, db, pids = setup
    _add(db, {"x": 1})
    command = _python("""
        deep = "[" * 100000 + "]" * 100000
        print('--- REPORT --- {"step": 1, "x": ' + deep + '}')
        print('--- REPORT --- {"step": 2, "self": 1}')
        for k in range(20000):
            print("line", k)
        print('--- RESULTS --- {"y": 1}')
    """)
    proc = _run(url, "run", "E", "--", *command, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and proc.stderr.count("ignored report line") == 2
    job = _jobs(db)["j0"]
    assert job.status == "DONE" and job.results == {"y": 1}


def test_processes_left_holding_the_output_do_not_keep_the_job_running(setup):
    url, script, db, pids = setup
    _add(db, {"x": 1})
    started = time.monotonic()
    proc = _run(url, "run", "E", "--", "sh", "-c", "sleep 300 & echo '--- RESULTS --- {\"y\": 1}'", timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started < 60
    assert "hold its output open" in proc.stderr
    assert _jobs(db)["j0"].status == "DONE"


def test_processes_left_writing_to_the_output_do_not_keep_the_job_running(setup):
    url, script, db, pids = setup
    _add(db, {"x": 1})
    started = time.monotonic()
    proc = _run(url, "run", "E", "--", "sh", "-c",
                "(while :; do echo tick; sleep 0.5; done) & echo '--- RESULTS --- {\"y\": 1}'", timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started < 30
    assert "hold its output open" in proc.stderr
    assert _jobs(db)["j0"].status == "DONE"


@pytest.mark.parametrize("how", ["timeout", "sigterm"])
def test_a_process_ignoring_sigterm_is_killed_with_its_command(setup, tmp_path, how):
    url, script, db, pids = setup
    _add(db, {"x": 1})
    stubborn = tmp_path / "stubborn"
    command = ["sh", "-c", f"(trap '' TERM; echo $$ > /dev/null; exec sh -c 'echo $$ > {stubborn}; exec sleep 300') "
               ">/dev/null 2>&1 & sleep 300"]
    extra = ["--timeout", "2"] if how == "timeout" else []
    argv, env = _schedy(url, "run", "E", *extra, "--", *command)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        _until(lambda: stubborn.exists() and stubborn.read_text().strip(), 60)
        if how == "sigterm":
            proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=120)
    finally:
        proc.kill()
    _assert_dead(int(stubborn.read_text()))
    assert _jobs(db)["j0"].status == "CRASHED"


def test_a_command_that_ended_before_a_stop_signal_is_judged_by_its_end(setup):
    url, script, db, pids = setup
    _add(db, {"x": 1})
    ended = pids / "ended"
    argv, env = _schedy(url, "run", "E", "--", "sh", "-c",
                        f"echo '--- RESULTS --- {{\"y\": 1}}'; sleep 30 & touch {ended}")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        _until(ended.exists, 60)
        time.sleep(0.8)  # the command has exited; its output is still held open
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    job = _jobs(db)["j0"]
    assert (job.status, job.results) == ("DONE", {"y": 1}), job.error


def test_a_pruned_command_writing_much_as_it_stops_keeps_its_last_results(tmp_path):
    from schedy.runner import RunOptions, Runner

    db = schedy.SchedyDB(db=str(tmp_path / "store"))
    exp = StopAboveOne("S")
    db.add_experiment(exp)
    exp.add_job(job_id="j0", hyperparameters={})
    script = tmp_path / "stop.py"
    script.write_text(textwrap.dedent("""
        import signal, sys, time
        def stop(*_):
            for i in range(5000):
                print("saving checkpoint part", i)
            print('--- RESULTS --- {"partial": 1}', flush=True)
            sys.exit(0)
        signal.signal(signal.SIGTERM, stop)
        print('--- REPORT --- {"step": 1, "loss": 9}', flush=True)
        time.sleep(60)
    """))
    Runner(exp, [sys.executable, str(script)], RunOptions(), out=io.StringIO(), err=io.StringIO()).run()
    job = exp.get_job("j0")
    # Its output read while it stopped: it printed its results and exited, not SIGKILLed 5 s on.
    assert (job.status, job.results) == ("PRUNED", {"partial": 1})


def test_a_relative_store_path_reaches_the_command_as_an_absolute_one(tmp_path):
    store = tmp_path / "rel"
    db = schedy.SchedyDB(db=str(store))
    db.add_experiment(schedy.ManualSearch("E"))
    db.get_experiment("E").add_job(job_id="j0", hyperparameters={})
    argv, env = _schedy("rel", "run", "E", "--", *_python("""
        import json, os
        os.chdir("/")
        print("--- RESULTS ---", json.dumps({"db": os.environ["SCHEDY_DB"]}))
    """))
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert db.get_experiment("E").get_job("j0").results == {"db": str(store)}


def test_output_keeps_carriage_returns_and_survives_a_terminal_that_cannot_show_it(setup):
    url, script, db, pids = setup
    _add(db, {"x": 1}, {"x": 2})
    argv, env = _schedy(url, "run", "E", "--", *_python(r"""
        import sys
        sys.stdout.buffer.write("loss \u00b10.1\n10%\r20%\r--- RESULTS --- {\"y\": 1}\r\nafter\n".encode())
    """))
    env["PYTHONIOENCODING"] = "ascii"  # schedy run's own output: a terminal without "±"
    proc = subprocess.run(argv, capture_output=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count(b"loss \\xb10.1\n10%\r20%\r") == 2 and proc.stdout.count(b"after\n") == 2
    assert [job.results for job in _jobs(db).values()] == [{"y": 1}, {"y": 1}]


def test_a_results_file_that_cannot_be_read_crashes_only_its_job(setup):
    url, script, db, pids = setup
    _add(db, {"x": 1}, {"x": 2})
    command = _python("""
        import os
        if os.environ["SCHEDY_JOB_ID"] == "j0":
            os.mkdir(os.environ["SCHEDY_RESULTS_FILE"])
        else:
            print('--- RESULTS --- {"y": 2}')
    """)
    proc = _run(url, "run", "E", "--ignore-errors", "--", *command)
    assert proc.returncode == 0, proc.stderr
    jobs = _jobs(db)
    assert jobs["j0"].status == "CRASHED" and "unreadable results: Is a directory" in jobs["j0"].error
    assert jobs["j1"].status == "DONE"


def _sighup_mid_job(setup, sleep: float, preexec_fn=None) -> tuple[int, str]:
    """Run one job of ``sleep`` seconds with ``schedy run``, send it SIGHUP once the job's
    command runs; its exit code and standard error."""
    url, script, db, pids = setup
    _add(db, {"x": 1, "sleep": sleep})
    argv, env = _schedy(url, "run", "E", "--", sys.executable, str(script), pids=pids)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, preexec_fn=preexec_fn)
    try:
        _until(lambda: (pids / "j0").exists() and (pids / "j0").read_text(), 120)
        proc.send_signal(signal.SIGHUP)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    return proc.returncode, err


def test_sighup_stops_the_run_like_sigterm(setup):
    url, script, db, pids = setup
    code, err = _sighup_mid_job(setup, 300)
    assert code == 128 + signal.SIGHUP, err
    job = _jobs(db)["j0"]
    assert job.status == "CRASHED" and "SIGHUP" in job.error
    _assert_dead(int((pids / "j0").read_text()))


def test_results_on_the_marker_line_may_be_followed_by_more_output():
    from schedy.runner import OutputParser

    parser = OutputParser()
    for line in ['--- RESULTS --- {"loss": 0.5}', "saving the model...", "done"]:
        parser.feed(line)
    assert parser.results() == {"loss": 0.5}
    parser = OutputParser()  # an object that starts on the marker line and goes on
    for line in ['--- RESULTS --- {"loss":', "0.5}"]:
        parser.feed(line)
    assert parser.results() == {"loss": 0.5}
    parser = OutputParser()  # as Python's json writes a NaN: read, to be refused alone when stored
    parser.feed('--- RESULTS --- {"loss": NaN, "big": 1' + "0" * 5000 + "}")
    results = parser.results()
    assert results["loss"] != results["loss"] and results["big"] > 1e308


def test_sighup_ignored_on_purpose_stays_ignored(setup):
    url, script, db, pids = setup
    code, err = _sighup_mid_job(setup, 3, preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))  # as nohup
    assert code == 0, err
    assert _jobs(db)["j0"].status == "DONE"


def test_output_readers_that_are_only_slow_are_waited_for(monkeypatch):
    """A reader busy storing a report (a slow store) is not taken for a process left
    holding the output: nothing is stopped, and the reader is waited for."""
    from schedy import runner

    monkeypatch.setattr(runner, "OUTPUT_GRACE_SECONDS", 0.2)
    err = io.StringIO()
    drainer = runner.Runner(None, ["true"], runner.RunOptions(), out=io.StringIO(), err=err)
    child = subprocess.Popen(["true"])
    child.wait()
    progress = runner._Progress()

    def slow_reader():
        with progress.handling():
            time.sleep(1.5)

    reader = threading.Thread(target=slow_reader)
    reader.start()
    time.sleep(0.1)
    drainer._drain(schedy.Job.__new__(schedy.Job), child, [reader], progress)
    assert not reader.is_alive() and "stopping them" not in err.getvalue()


def test_a_reader_of_the_output_that_goes_away_loses_no_result(setup):
    # `schedy run ... | head -n 1`: the pipe closes after one line. The command writes far
    # more than a pipe holds after that, then its results: they must still be stored.
    url, _, db, _ = setup
    _add(db, {"x": 1}, {"x": 2})
    command = _python(
        """
        import json, os, sys
        print("first", flush=True)
        for i in range(20000):
            print("line", i)
        x = json.loads(os.environ["SCHEDY_HYPERPARAMETERS"])["x"]
        print("--- RESULTS --- " + json.dumps({"y": x * 10}))
        """
    )
    argv, env = _schedy(url, "run", "E", "--", *command)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout.readline()  # the command line schedy prints goes to stderr
    proc.stdout.close()
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:  # stuck: the job would stay RUNNING for as long as it lives
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert b"Traceback" not in err and b"Exception" not in err
    assert {job.job_id: (job.status, job.results) for job in _jobs(db).values()} == {
        "j0": ("DONE", {"y": 10}), "j1": ("DONE", {"y": 20})
    }


def test_an_argument_no_process_can_take_crashes_only_its_job(setup):
    url, script, db, _ = setup
    _add(db, {"s": "a\u0000b", "x": 1}, {"x": 2})
    proc = _run(url, "run", "E", "--ignore-errors", "--", sys.executable, str(script), "%h")
    assert proc.returncode == 0, proc.stderr  # as for any crashed job under --ignore-errors
    jobs = _jobs(db)
    assert jobs["j0"].status == "CRASHED" and "could not start the command" in jobs["j0"].error
    assert "null byte" in jobs["j0"].error
    assert (jobs["j1"].status, jobs["j1"].results["y"]) == ("DONE", 20)


def test_two_hyperparameters_percent_h_would_give_as_one_option_crash_only_their_job(setup):
    # batch_size and batch-size both became --batch-size: the command read the last one, and
    # its result was stored for hyperparameters it was not run with.
    url, script, db, _ = setup
    _add(db, {"batch_size": 1, "batch-size": 2, "x": 1}, {"x": 2})
    proc = _run(url, "run", "E", "--ignore-errors", "--", sys.executable, str(script), "%h")
    assert proc.returncode == 0, proc.stderr
    jobs = _jobs(db)
    assert jobs["j0"].status == "CRASHED" and "could not start the command" in jobs["j0"].error
    assert "'batch_size' and 'batch-size'" in jobs["j0"].error and "--batch-size" in jobs["j0"].error
    assert (jobs["j1"].status, jobs["j1"].results["y"]) == ("DONE", 20)


@pytest.mark.parametrize("name", ["", "lr=0.1", "two words"])
def test_a_hyperparameter_percent_h_cannot_name_crashes_only_its_job(setup, name):
    # As options, "" gave "--" (argparse: "the options end here") and "lr=0.1" gave
    # "--lr=0.1 <value>" (the value then read as a positional argument).
    url, script, db, _ = setup
    _add(db, {name: 5, "x": 1}, {"x": 2})
    proc = _run(url, "run", "E", "--ignore-errors", "--", sys.executable, str(script), "%h")
    assert proc.returncode == 0, proc.stderr
    jobs = _jobs(db)
    assert jobs["j0"].status == "CRASHED" and "could not start the command" in jobs["j0"].error
    assert repr(name) in jobs["j0"].error and "SCHEDY_HYPERPARAMETERS" in jobs["j0"].error
    assert (jobs["j1"].status, jobs["j1"].results["y"]) == ("DONE", 20)
    # The same job runs where the command reads its hyperparameters elsewhere.
    db.get_experiment("E").get_job("j0").delete()
    _add(db, {name: 5, "x": 3})
    assert _run(url, "run", "E", "--", sys.executable, str(script), "--x={x}", "100%%h").returncode == 0
    assert (_jobs(db)["j0"].status, _jobs(db)["j0"].results["y"]) == ("DONE", 30)


def test_the_last_results_block_counts_and_output_may_follow_it():
    from schedy.runner import OutputParser

    def results(*lines):
        parser = OutputParser()
        for line in lines:
            parser.feed(line)
        return parser.results()

    assert results("--- RESULTS ---", '{"loss": 2}', "--- RESULTS ---", '{"loss": 1}') == {"loss": 1}
    assert results("--- RESULTS ---", '{"loss":', "1}", "saving the model", "done") == {"loss": 1}
    assert results("--- RESULTS ---", '{"loss": 2}', '--- RESULTS --- {"loss": 1}', "bye") == {"loss": 1}
    with pytest.raises(ValueError, match="the results block"):
        results("--- RESULTS ---", "saving the model", '{"loss": 1}')


def test_reports_after_a_results_block_with_no_end_mark_are_reports():
    from schedy.runner import OutputParser

    parser = OutputParser()
    reports = [parser.feed(line) for line in (
        "--- RESULTS ---", "{", '  "loss": {"min": 1}', "}", '--- REPORT --- {"step": 2, "loss": 0.5}'
    )]
    assert reports[-1] == {"step": 2, "loss": 0.5} and parser.results() == {"loss": {"min": 1}}
    parser = OutputParser()  # an indented object on the line after the mark
    reports = [parser.feed(line) for line in ("--- RESULTS ---", '  {"a": 1}', '--- REPORT --- {"step": 1, "l": 2}')]
    assert reports[-1] == {"step": 1, "l": 2} and parser.results() == {"a": 1}
