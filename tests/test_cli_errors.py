"""Bad input on the command line: one clear line on stderr, a non-zero exit code, no
traceback, and nothing stored changes."""

import io
import os
import sys
import time
from pathlib import Path

import pytest

import schedy
from schedy.cli.app import run


def snapshot(root: Path) -> dict:
    # Lock files (empty flock targets) and the writers' temporary files are not stored data.
    files = (p for p in sorted(root.rglob("*")) if p.is_file() and not {".locks", ".tmp"} & set(p.parts))
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


@pytest.fixture
def store(tmp_path):
    root = tmp_path / "store"
    db = schedy.SchedyDB(db=str(root))
    db.add_experiment(schedy.ManualSearch("E"))
    db.add_experiment(schedy.RandomSearch("R", {"x": schedy.random.Uniform(0, 1)}))
    db.get_experiment("E").add_job(job_id="j1", hyperparameters={"x": 1}, status="DONE", results={"loss": 2})
    return root


@pytest.fixture
def cli(store, capsys, monkeypatch):
    def call(*args, stdin=""):
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = run(["--db", str(store), *args])
        out, err = capsys.readouterr()
        return code, out, err

    return call


TRIPLE = '{"mean": 0, "std": 1}'

BAD_INPUTS = [
    # (what, arguments, exit code, words the message must hold)
    ("missing experiment: push", ["push", "Nope", "-p", "x", "1"], 1, ["experiment 'Nope'", "does not exist"]),
    ("missing experiment: list", ["list", "-t", "Nope"], 1, ["experiment 'Nope'", "does not exist"]),
    ("missing experiment: show", ["show", "Nope"], 1, ["experiment 'Nope'", "does not exist"]),
    ("missing experiment: rm", ["rm", "-f", "Nope"], 1, ["experiment 'Nope'", "does not exist"]),
    ("missing job: show", ["show", "E", "nojob"], 1, ["'nojob'", "does not exist"]),
    ("missing job: rm", ["rm", "-f", "E", "nojob"], 1, ["'nojob'", "does not exist"]),
    ("invalid JSON value", ["push", "E", "-p", "x", '{"a": 1'], 2, ["hyperparameter 'x'", "not valid JSON"]),
    ("invalid JSON result", ["push", "E", "-p", "x", "1", "-r", "loss", "[1,"], 2, ["result 'loss'", "not valid JSON"]),
    ("NaN value", ["push", "E", "-p", "x", "NaN"], 2, ["hyperparameter 'x' is NaN", "JSON cannot hold"]),
    ("nan as Python prints it", ["push", "E", "-p", "x", "1", "-r", "loss", "nan"], 2,
     ["result 'loss' is nan", "JSON cannot hold", "null"]),
    ("inf as Python prints it", ["push", "E", "-p", "x", "1", "-r", "loss", "-inf"], 2,
     ["result 'loss' is -inf", "JSON cannot hold"]),
    ("Infinity", ["push", "E", "-p", "x", "Infinity"], 2, ["hyperparameter 'x' is Infinity", "JSON cannot hold"]),
    ("invalid JSON params", ["add", "N", "random", "x", "uniform", '{"low": 1'], 2, ["hyperparameter 'x'", "JSON"]),
    ("low > high", ["add", "N", "random", "x", "uniform", '{"low": 5, "high": 1}'], 2,
     ["hyperparameter 'x'", "low must be < high"]),
    ("missing params", ["add", "N", "random", "lr", "loguniform", '{"low": 1}'], 2, ["'lr'", "high"]),
    ("unknown distribution", ["add", "N", "random", "x", "gauss", TRIPLE], 2,
     ["hyperparameter 'x'", "'gauss'", "uniform", "loguniform", "normal", "choice", "constant", "intuniform"]),
    ("unknown scheduler", ["add", "N", "annealing"], 2, ["'annealing'", "manual", "random"]),
    ("arguments to manual", ["add", "N", "manual", "x"], 2, ["manual takes no arguments"]),
    ("odd random triple", ["add", "N", "random", "x", "normal"], 2, ["HP DIST PARAMS_JSON", "2 argument"]),
    ("random without a triple", ["add", "N", "random"], 2, ["one or more triples HP DIST PARAMS_JSON", "0 argument"]),
    ("unknown job status", ["push", "E", "-s", "WAITING", "-p", "x", "1"], 2, ["'WAITING'", "QUEUED", "DONE"]),
    # (RUNNING, offered before, is refused: a worker's claim gives it a lease)
    ("a job status in lower case", ["push", "E", "-s", "done", "-p", "x", "1"], 2,
     ["a job is pushed QUEUED, DONE, CRASHED or PRUNED, not 'done'"]),
    ("two formats to push", ["push", "E", "-q", "--json", "-p", "x", "1"], 2, ["choose one of -q and --json"]),
    ("unknown experiment status", ["add", "N", "manual", "-s", "PAUSED"], 2, ["'PAUSED'", "RUNNING", "DONE"]),
    ("unknown status filter", ["list", "E", "--status", "LOST"], 2, ["'LOST'", "CRASHED"]),
    ("odd name/value pairs", ["push", "E", "-p", "x", "1", "y"], 2, ["NAME VALUE pairs", "3 word"]),
    ("odd result pairs", ["push", "E", "-p", "x", "1", "-r", "loss"], 2, ["result", "NAME VALUE pairs"]),
    ("duplicate hyperparameter", ["push", "E", "-p", "x", "1", "x", "2"], 2, ["hyperparameter 'x' is given twice"]),
    ("duplicate distribution", ["add", "N", "random", "x", "normal", TRIPLE, "x", "normal", TRIPLE], 2,
     ["'x' is given twice"]),
    ("empty hyperparameter name", ["push", "E", "-p", "", "1"], 2, ["name must not be empty"]),
    ("empty experiment name", ["add", "", "manual"], 2, ["experiment name must not be empty"]),
    ("empty job id", ["push", "E", "--id", "", "-p", "x", "1"], 2, ["job id must not be empty"]),
    ("control character in a name", ["add", "a\nb", "manual"], 2, ["control character"]),
    ("'..' as an experiment", ["show", ".."], 1, ["'..'", "does not exist"]),
    ("'/' and '..' in a job id", ["show", "E", "../E"], 1, ["'../E'", "does not exist"]),
    ("path as a job id to rm", ["rm", "-f", "E", "../../experiments/E"], 1, ["does not exist"]),
    ("unknown sort field", ["list", "E", "-s", "accuracy"], 2, ["'accuracy'", "id", "status", "x", "loss"]),
    ("unknown selected field", ["list", "E", "-t", "-f", "status", "-f", "nope"], 2, ["'nope'", "x", "loss"]),
    ("unknown experiment field", ["list", "-s", "loss"], 2, ["'loss'", "name", "scheduler"]),
    ("a huge integer", ["push", "E", "-p", "x", "9" * 5000], 2, ["'x' is 999", "... (5000 characters), a number JSON cannot hold"]),
    ("a huge integer in JSON", ["push", "E", "-p", "x", "[" + "9" * 5000 + "]"], 2,
     ["... (5002 characters)", "an integer of 5000 digits is too large"]),
    ("a result field for experiments", ["list", "-f", "result.loss"], 2, ["'result.loss'", "experiments have name"]),
    ("two formats", ["list", "E", "-t", "--json"], 2, ["choose one of"]),
    ("an existing experiment", ["add", "E", "manual"], 1, ["experiment 'E'", "exists already"]),
    ("random search hyperparameters", ["push", "R", "-p", "y", "1"], 2, ["need exactly the hyperparameters x"]),
    ("existing job id", ["push", "E", "--id", "j1", "-p", "x", "3"], 1, ["j1", "exists already"]),
    # Usage errors found by the command-line parser itself, before any command runs.
    ("missing argument", ["push"], 2, ["Missing argument 'name'", "schedy push -h"]),
    ("missing scheduler", ["add", "N"], 2, ["Missing argument 'scheduler'", "schedy add -h"]),
    ("unknown option", ["list", "--bogus"], 2, ["No such option: --bogus", "schedy list -h"]),
    ("unknown command", ["lsit"], 2, ["No such command 'lsit'", "schedy -h"]),
    ("option without its value", ["push", "E", "-s"], 2, ["'-s' requires an argument"]),
    ("not a number", ["list", "E", "--limit", "ten"], 2, ["Invalid value for '--limit'"]),
    ("too many arguments", ["show", "E", "j1", "extra"], 2, ["unexpected extra argument", "extra"]),
    ("a job pushed RUNNING", ["push", "E", "-s", "RUNNING", "-p", "x", "1"], 2, ["cannot be pushed RUNNING"]),
    ("a control character in a hyperparameter name", ["push", "E", "-p", "a\x1b[31m", "1"], 2,
     ["hyperparameter name 'a\\x1b[31m' has a control character"]),
    ("a limit beyond any list", ["list", "E", "--limit", "99999999999999999999999"], 2, ["Invalid value for '--limit'"]),
    ("an empty --db", ["--db", "", "list"], 1, ["the store URL from --db is empty"]),
    ("--max without --best", ["status", "E", "--max"], 2, ["--max", "give --best too"]),
    ("an empty --best", ["status", "E", "--best", ""], 2, ["--best RESULT must not be empty"]),
    ("an empty experiment to show", ["show", ""], 2, ["experiment name must not be empty"]),
    ("an empty experiment to list", ["list", ""], 2, ["experiment name must not be empty"]),
    ("an empty hyperparameter to search", ["add", "N", "random", "", "normal", TRIPLE], 2, ["name must not be empty"]),
    ("a population Python would read", ["add", "N", "pbt", "max", "acc", "population", "1_0"], 2,
     ["population must be a whole number", "'1_0'"]),
    ("descending with nothing to sort on", ["list", "E", "-d"], 2, ["-d reverses the order of -s FIELD"]),
    # Read as the last one, the first value was lost without a word.
    ("a key twice in a value", ["push", "E", "-p", "x", '{"a": 1, "a": 2}'], 2,
     ["hyperparameter 'x' is not valid JSON", "the key 'a' is there twice"]),
    ("a key twice in a line of --file", ["push", "E", "--file", "-"], 2, ["line 1", "the key 'hyperparameters' is there twice"]),
    ("a key twice in a distribution's params", ["add", "N", "random", "x", "normal", '{"mean": 0, "std": 1, "mean": 7}'], 2,
     ["hyperparameter 'x': PARAMS_JSON is not valid JSON", "the key 'mean' is there twice"]),
    # A name push would refuse makes an experiment no job can be pushed to by hand.
    ("a control character in a hyperparameter to search", ["add", "N", "random", "a\nb", "normal", TRIPLE], 2,
     ["hyperparameter name 'a\\nb' has a control character"]),
    ("a hyperparameter name too long to search", ["add", "N", "random", "h" * 300, "normal", TRIPLE], 2,
     ["hyperparameter name is longer than"]),
    ("a control character in a PBT hyperparameter", ["add", "N", "pbt", "min", "loss", "perturb", "l\tr"], 2,
     ["hyperparameter name 'l\\tr' has a control character"]),
    ("a control character in a PBT result", ["add", "N", "pbt", "min", "lo\x01ss"], 2, ["result name 'lo\\x01ss' has a control character"]),
    ("a job id that is not Unicode to show", ["show", "E", "\udcff"], 2, ["job id '\\udcff' is not valid Unicode"]),
    ("an empty job id to show", ["show", "E", ""], 2, ["job id must not be empty"]),
    # `--` ends the pairs: what follows is NAME, not a hyperparameter named "--".
    ("a word after -- that is no argument", ["push", "E", "-p", "x", "1", "--", "y"], 2, ["unexpected extra argument", "y"]),
]


@pytest.mark.parametrize("what, args, code, words", BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_is_one_clear_line_and_changes_nothing(cli, store, what, args, code, words):
    before = snapshot(store)
    exit_code, out, err = cli(*args, stdin='{"hyperparameters": {"x": 1}, "hyperparameters": {"x": 2}}\n')
    assert exit_code == code, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    assert "Traceback" not in err and out == ""
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert len(lines[0]) < 500  # what was typed is quoted, cut short when long
    assert snapshot(store) == before


def test_random_search_triple_with_a_misspelled_distribution_names_the_allowed_ones(cli):
    code, _, err = cli("add", "N", "random", "x", "normal", TRIPLE, "y", "Normal", TRIPLE)
    assert code == 2 and "hyperparameter 'y'" in err and "unknown distribution 'Normal'" in err


def test_a_corrupt_job_is_named_the_others_listed_and_nothing_rewritten(cli, store):
    db = schedy.SchedyDB(db=str(store))
    db.get_experiment("E").add_job(job_id="j2", hyperparameters={"x": 2})
    path = next((store / "jobs" / "E").glob("*/j1.json"))
    path.write_text(path.read_text()[:20])
    before = snapshot(store)
    code, out, err = cli("show", "E", "j1")
    assert code == 1 and err.count("\n") == 1 and "job 'j1' of experiment 'E'" in err and "not valid JSON" in err
    code, out, err = cli("list", "E")
    assert code == 1 and out.split() == ["j2"] and "j1" in err and "could not be read" in err
    code, out, err = cli("show", "E")
    assert code == 1 and "unreadable: 1" in out and "could not be read" in err  # (exit 1: list says it too)
    assert snapshot(store) == before


def test_a_corrupt_experiment_is_named(cli, store):
    path = store / "experiments" / "R.json"
    path.write_text("{not json")
    before = snapshot(store)
    code, out, err = cli("show", "R")
    assert code == 1 and err.count("\n") == 1 and "experiment 'R'" in err
    code, out, err = cli("list")
    assert code == 1 and out.split() == ["E"] and "'R'" in err
    assert snapshot(store) == before


def test_declining_rm_keeps_everything(cli, store):
    before = snapshot(store)
    for answer in ("", "n\n", "no\n", "yes please\n"):
        code, out, err = cli("rm", "E", stdin=answer)
        assert code == 1 and "Delete? [y/N]" in err and "Nothing deleted." in err and "Traceback" not in err
        code, out, err = cli("rm", "E", "j1", stdin=answer)
        assert code == 1 and "Nothing deleted." in err
    assert snapshot(store) == before


def test_a_traceback_only_when_asked(cli, store, monkeypatch):
    with pytest.raises(schedy.errors.ResourceNotFoundError):
        cli("--debug", "show", "Nope")
    monkeypatch.setenv("SCHEDY_DEBUG", "1")
    with pytest.raises(schedy.errors.ResourceNotFoundError):
        cli("show", "Nope")


@pytest.mark.timeout(300)
def test_an_unreachable_store_is_one_line(capsys, monkeypatch):
    # schedy.core.Retry.BACKOFF_MAX bounds the waits between attempts: about 13 s by default.
    monkeypatch.setattr(schedy.core.Retry, "BACKOFF_MAX", 0.01)
    started = time.monotonic()
    code = run(["--db", "http://127.0.0.1:9", "list"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "127.0.0.1:9" in err and "gave up after 11 attempts" in err
    assert time.monotonic() - started < 3


def test_a_store_out_of_reach_for_long_is_reported_while_retrying(capsys, monkeypatch):
    # Without a word until the last attempt, a store out of reach looks like a hang for about 13 s.
    monkeypatch.setattr(schedy.core.Retry, "BACKOFF_MAX", 0.01)
    monkeypatch.setattr(schedy.core.Retry, "NOTICE_SECONDS", 0.0)
    code = run(["--db", "http://127.0.0.1:9", "list"])
    notice, error = capsys.readouterr().err.splitlines()
    assert code == 1 and error.startswith("Error: cannot reach the Schedy service at http://127.0.0.1:9")
    assert notice == (
        "Warning: cannot reach the Schedy service at http://127.0.0.1:9: ConnectionError (experiments); "
        "retrying (1 of 11 attempts made)"
    )


def test_an_unusable_store_url_is_one_line(capsys):
    code = run(["--db", "ftp://127.0.0.1/x", "list"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "no installed backend opens 'ftp://127.0.0.1/x'" in err


@pytest.mark.parametrize(
    "args, message",
    [
        # An unset variable in `--db "$STORE"`: the default store was used instead.
        (["token", "create", "zed", "--db", ""], "the store URL from --db is empty"),
        (["serve", "--db", "", "--port", "9"], "the store URL from --db is empty"),
        # The current directory was used.
        (["--db", "file://", "add", "Z", "manual"], "the file URL 'file://' names no directory"),
    ],
)
def test_an_empty_store_location_is_refused_not_replaced(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SCHEDY_DB", str(tmp_path / "elsewhere"))
    code = run(args)
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and message in err
    assert list(tmp_path.iterdir()) == []


def test_a_store_path_that_cannot_be_a_directory_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("not a directory")
    code = run(["--db", str(tmp_path / "file" / "store"), "add", "E", "manual"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert err == f"Error: the files store path {tmp_path / 'file' / 'store'} is not a directory (or lies under a file, or links to nowhere)\n"
    assert (tmp_path / "file").read_text() == "not a directory"


def test_a_store_directory_replaced_by_a_file_is_named(tmp_path, capsys):
    run(["--db", str(tmp_path), "add", "E", "manual"])
    (tmp_path / "queue").write_text("in the way")  # a marker write (os.utime) names no path of its own
    capsys.readouterr()
    code = run(["--db", str(tmp_path), "push", "E", "-p", "x", "1"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert err.startswith(f"Error: Not a directory: {tmp_path / 'queue'}{os.sep}"), err


def test_schedy_alone_prints_its_help_as_it_is(capsys):
    code = run([])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.startswith("Usage: schedy") and "\nCommands:" in err and "Error" not in err


def test_logged_warnings_are_one_line_and_logged_errors_keep_their_traceback(capsys):
    # What `schedy serve` logs of a request it failed is its operator's only lead.
    import logging

    from schedy.cli.app import _logged_to_stderr

    log = logging.getLogger("schedy.server.app")
    with _logged_to_stderr(debug=False):
        try:
            raise RuntimeError("the store broke")
        except RuntimeError:
            log.warning("job j: could not store it", exc_info=True)
            log.exception("POST /api/v1/x failed")
    err = capsys.readouterr().err
    first, rest = err.split("\n", 1)
    assert first == "Warning: job j: could not store it"
    assert rest.startswith("Error: POST /api/v1/x failed\nTraceback (most recent call last):")
    assert "RuntimeError: the store broke" in rest


def test_warnings_of_a_command_are_one_line_each(store):
    # A claim passing over a corrupt queued job warns; Python's own format was two lines
    # (the source file and line, then the line of code).
    import os
    import subprocess

    db = schedy.SchedyDB(db=str(store))
    for job_id in ("q1", "q2"):
        db.get_experiment("E").add_job(job_id=job_id, hyperparameters={"x": 1})
    path = next((store / "jobs" / "E").glob("*/q1.json"))
    path.write_text(path.read_text()[:20])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCHEDY_", "PYTHONWARNINGS"))}
    proc = subprocess.run(
        [sys.executable, "-m", "schedy", "--db", str(store), "run", "E", "--",
         sys.executable, "-c", 'print("--- RESULTS --- {\\"y\\": 1}")'],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    warned = [line for line in proc.stderr.splitlines() if "q1" in line]
    assert warned and all(line.startswith("Warning: skipped queued job: job 'q1' of experiment 'E'") for line in warned)
    assert "UserWarning" not in proc.stderr and ".py:" not in proc.stderr
    assert db.get_experiment("E").get_job("q2").status == "DONE"
