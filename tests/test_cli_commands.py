"""The commands' behaviour: value parsing, listing formats, sorting, fields, show, rm,
push --file, and scheduler add forms that come from plugins."""

import csv
import io
import json
import sys

import pytest

import schedy
from schedy.cli.app import run
from schedy.experiment import Experiment
from schedy.hookspecs import hookimpl
from schedy.plugins import register_plugin, unregister_plugin


@pytest.fixture
def cli(tmp_path, capsys, monkeypatch):
    store = str(tmp_path / "store")

    def call(*args, stdin="", expect=0):
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = run(["--db", store, *args])
        out, err = capsys.readouterr()
        assert code == expect, (args, out, err)
        call.err = err
        return out

    call.db = lambda: schedy.SchedyDB(db=store)
    call.store = store
    return call


@pytest.fixture
def jobs(cli):
    """Experiment E with jobs a..d; c lacks the result 'loss'; x is both hyperparameter and result of d."""
    cli("add", "E", "manual")
    exp = cli.db().get_experiment("E")
    exp.add_job(job_id="a", hyperparameters={"lr": 0.1, "opt": "adam"}, results={"loss": 3.0}, status="DONE")
    exp.add_job(job_id="b", hyperparameters={"lr": 0.01, "opt": "sgd"}, results={"loss": 1.5}, status="DONE")
    exp.add_job(job_id="c", hyperparameters={"lr": 0.5, "opt": "sgd"})
    exp.add_job(job_id="d", hyperparameters={"lr": 0.2, "opt": "adam"}, results={"loss": 1.5}, status="CRASHED")
    return exp


def test_values_are_json_and_bare_words_are_strings(cli):
    cli("add", "V", "manual")
    out = cli("push", "V", "-p", "optimizer", "adam", "lr", "-1e-3", "n", "-2", "flag", "true", "none", "null",
              "quoted", '"42"', "-r", "note", "two words", "loss", '"nan"', "word", "info")
    job = cli.db().get_experiment("V").get_job(out.split()[0])
    assert job.hyperparameters == {"optimizer": "adam", "lr": -0.001, "n": -2, "flag": True, "none": None, "quoted": "42"}
    assert job.results == {"note": "two words", "loss": "nan", "word": "info"}
    assert job.status == "QUEUED"


def test_push_prints_the_job_id_first_or_its_document(cli):
    cli("add", "V", "manual")
    line = cli("push", "V", "-s", "DONE", "-p", "x", "1", "-r", "y", "2", "--id", "myjob")
    assert line == "myjob DONE x=1 | y=2\n"
    doc = json.loads(cli("push", "V", "--json", "-p", "x", "2"))
    stored = cli.db().get_experiment("V").get_job(doc["id"])
    assert doc["hyperparameters"] == stored.hyperparameters == {"x": 2} and doc["status"] == "QUEUED"
    assert cli("push", "V", "-q", "--hyperparameters", "x", "3", "--status=DONE").strip().isalnum()


def test_push_file_queues_many_jobs_in_one_process(cli, tmp_path):
    cli("add", "R", "random", "x", "uniform", '{"low": 0, "high": 1}')
    lines = [json.dumps({"hyperparameters": {"x": i / 100}}) for i in range(50)]
    lines.append(json.dumps({"id": "last", "hyperparameters": {"x": 0.5}, "results": {"y": 1}, "status": "DONE"}))
    path = tmp_path / "jobs.jsonl"
    path.write_text("\n".join(lines) + "\n\n")
    out = cli("push", "R", "--file", str(path), "-q")
    assert len(out.split()) == 51 and out.split()[-1] == "last"
    exp = cli.db().get_experiment("R")
    stored = {job.job_id: job for job in exp.all_jobs()}
    assert len(stored) == 51 and stored["last"].results == {"y": 1} and stored["last"].status == "DONE"
    assert sorted(j.hyperparameters["x"] for j in stored.values() if j.status == "QUEUED") == [i / 100 for i in range(50)]
    out = cli("push", "R", "--file", "-", stdin='{"hyperparameters": {"x": 0.25}}\n')
    assert out.split()[1:] == ["QUEUED", "x=0.25"]


def test_push_file_checks_every_line_before_storing_any(cli, tmp_path):
    cli("add", "R", "random", "x", "uniform", '{"low": 0, "high": 1}')
    path = tmp_path / "jobs.jsonl"
    path.write_text('{"hyperparameters": {"x": 0.1}}\n{"hyperparameters": {"y": 0.1}}\n')
    cli("push", "R", "--file", str(path), expect=2)
    path.write_text('{"hyperparameters": {"x": 0.1}}\n{"hyperparameters": \n')
    cli("push", "R", "--file", str(path), expect=2)
    path.write_text('{"id": "a", "hyperparameters": {"x": 0.1}}\n{"id": "a", "hyperparameters": {"x": 0.2}}\n')
    cli("push", "R", "--file", str(path), expect=2)
    assert list(cli.db().get_experiment("R").all_jobs()) == []


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"hyperparameters": {"": 1}}', "hyperparameter name must not be empty"),
        ('{"hyperparameters": {"x\\u0000": 1}}', "hyperparameter name 'x\\x00' has a control character"),
        ('{"hyperparameters": {"x": 1}, "results": {"a\\nb": 1}}', "result name 'a\\nb' has a control character"),
    ],
)
def test_push_file_checks_names_as_the_options_do(cli, tmp_path, line, message):
    cli("add", "E", "manual")
    path = tmp_path / "jobs.jsonl"
    path.write_text('{"hyperparameters": {"x": 1}}\n' + line + "\n")
    cli("push", "E", "--file", str(path), expect=2)
    assert "line 2" in cli.err and message in cli.err, cli.err
    assert list(cli.db().get_experiment("E").all_jobs()) == []


def test_push_refuses_a_pbt_slice_id(cli, tmp_path):
    cli("add", "P", "pbt", "max", "acc", "init", "lr", "uniform", '{"low": 0, "high": 1}', "population", "2")
    path = tmp_path / "jobs.jsonl"
    path.write_text('{"id": "a", "hyperparameters": {"lr": 0.1}}\n{"id": "m001-g002", "hyperparameters": {"lr": 0.2}}\n')
    cli("push", "P", "--file", str(path), expect=2)
    assert "line 2" in cli.err and "slice id" in cli.err
    assert list(cli.db().get_experiment("P").all_jobs()) == []


def test_push_file_refuses_a_bad_line_before_storing_any(cli, tmp_path):
    cli("add", "M", "manual")
    path = tmp_path / "jobs.jsonl"
    for second, message in [
        ('{"id": "b", "hyperparameters": {"x": 2}, "status": "RUNNING"}', "line 2: a job cannot be pushed RUNNING"),
        ('{"id": "b", "hyperparameters": 0}', "line 2: hyperparameters must be a dict"),
        ('{"id": "b", "results": []}', "line 2: results must be a dict"),
    ]:
        path.write_text('{"id": "a", "hyperparameters": {"x": 1}}\n' + second + "\n")
        cli("push", "M", "--file", str(path), expect=2)
        assert message in cli.err
    path.write_bytes(b'{"id": "a", "hyperparameters": {"x": 1}}\n{"hyperparameters": {"x": "\xff"}}\n')
    cli("push", "M", "--file", str(path), expect=2)
    assert "line 2: not UTF-8 text" in cli.err
    assert list(cli.db().get_experiment("M").all_jobs()) == []


def test_push_takes_name_as_a_hyperparameter_and_prints_control_characters_escaped(cli):
    cli("add", "M", "manual")
    out = cli("push", "M", "--id", "j", "-p", "name", "abc", "model", "name", "-r", "note", "line\nnext\x1b[31m")
    assert out == "j QUEUED name=abc model=name | note=line\\nnext\\x1b[31m\n"
    job = cli.db().get_experiment("M").get_job("j")
    assert job.hyperparameters == {"name": "abc", "model": "name"} and job.results == {"note": "line\nnext\x1b[31m"}
    assert "line\\nnext\\x1b[31m" in cli("list", "M", "-t") and "\x1b" not in cli("show", "M", "j")


def test_list_plain_ids_in_id_order_and_status_filter(cli, jobs):
    assert cli("list", "E").split() == ["a", "b", "c", "d"]
    assert cli("list", "E", "--status", "DONE").split() == ["a", "b"]
    assert cli("list", "E", "--limit", "2").split() == ["a", "b"]
    cli("add", "F", "manual", "-s", "DONE")
    assert cli("list").split() == ["E", "F"]
    assert cli("list", "--status", "DONE").split() == ["F"]


def test_table_sorts_with_missing_values_last_either_way(cli, jobs):
    def ids(*args):
        return [line.split("|")[1].strip() for line in cli("list", "E", "-t", *args).splitlines()[3:-1]]

    assert ids("-s", "loss") == ["b", "d", "a", "c"]
    assert ids("-s", "loss", "-d") == ["a", "b", "d", "c"]
    assert ids("-s", "loss", "-s", "lr") == ["b", "d", "a", "c"]
    assert ids("-s", "loss", "-s", "lr", "-d") == ["a", "d", "b", "c"]
    assert ids("-s", "opt", "-s", "hyperparameter.lr") == ["a", "d", "b", "c"]
    assert ids("-s", "status", "--limit", "2") == ["d", "a"]


def test_table_columns_and_names_used_twice(cli, jobs):
    jobs.add_job(job_id="e", hyperparameters={"lr": 1, "opt": "x", "loss": 9}, results={"loss": 0})
    lines = cli("list", "E", "-t").splitlines()
    assert [h.strip() for h in lines[1].strip("|").split("|")] == [
        "id", "status", "lr", "opt", "hyperparameter.loss", "result.loss"
    ]
    assert lines[0] == lines[-1] and set(lines[0]) == {"+", "-"}
    out = cli("list", "E", "-f", "id", "-f", "result.loss", "-s", "result.loss")
    assert [line.split("|")[1:3] for line in out.splitlines()[3:5]] == [[" e  ", "           0 "], [" b  ", "         1.5 "]]


def test_csv_json_and_paragraphs(cli, jobs):
    rows = list(csv.reader(io.StringIO(cli("list", "E", "--csv"))))
    assert rows[0] == ["id", "status", "lr", "opt", "loss"]
    assert rows[3] == ["c", "QUEUED", "0.5", "sgd", ""]
    rows = list(csv.reader(io.StringIO(cli("list", "E", "--csv", "-f", "id", "-f", "loss", "-s", "loss", "-d"))))
    assert rows == [["id", "loss"], ["a", "3.0"], ["b", "1.5"], ["d", "1.5"], ["c", ""]]
    docs = json.loads(cli("list", "E", "--json"))
    assert [d["id"] for d in docs] == ["a", "b", "c", "d"] and docs[0]["results"] == {"loss": 3.0}
    assert json.loads(cli("list", "E", "--json", "--status", "PRUNED")) == []
    experiments = json.loads(cli("list", "--json"))
    assert experiments[0]["name"] == "E" and experiments[0]["scheduler"] == {"Manual": None}
    paragraphs = cli("list", "E", "-p", "--limit", "1")
    assert paragraphs.splitlines() == [
        "Job a", "  status: DONE", "  hyperparameters:", "    lr: 0.1", "    opt: adam", "  results:", "    loss: 3.0"
    ]
    assert cli("list", "E", "-p", "-f", "id", "-f", "opt", "--limit", "1").splitlines() == ["a", "  opt: adam"]
    # Paragraphs titled by a field that holds a number, or that a job lacks.
    assert cli("list", "E", "-p", "-f", "lr", "-f", "id").split("\n\n")[:2] == ["0.1\n  id: a", "0.01\n  id: b"]
    assert cli("list", "E", "-p", "-f", "loss", "-f", "id").split("\n\n")[2] == "\n  id: c"


def test_a_result_no_listed_job_has_yet_is_an_empty_column_not_an_error(cli, jobs):
    # A script polling for results meets an empty selection until the first job ends.
    assert cli("list", "E", "--status", "PRUNED", "-s", "accuracy") == ""
    assert cli("list", "E", "--status", "PRUNED", "--csv", "-f", "id", "-f", "accuracy") == "id,accuracy\n"


def test_show_experiment_and_job(cli, jobs):
    out = cli("show", "E")
    assert out.startswith("Experiment E\n") and "scheduler: Manual" in out
    assert "total: 4" in out and "DONE: 2" in out and "QUEUED: 1" in out and "CRASHED: 1" in out
    doc = json.loads(cli("show", "E", "--json"))
    assert doc["name"] == "E" and doc["status"] == "RUNNING"
    out = cli("show", "E", "a")
    assert out.splitlines()[:2] == ["Job a", "  experiment: E"] and "loss: 3.0" in out
    assert json.loads(cli("show", "E", "b", "--json"))["results"] == {"loss": 1.5}


def test_rm_asks_then_deletes(cli, jobs):
    cli("rm", "E", "a", stdin="y\n")
    assert cli("list", "E").split() == ["b", "c", "d"]
    cli("rm", "E", "b", "-f")
    assert cli("list", "E").split() == ["c", "d"]
    out = cli("rm", "E", stdin="Y\n")
    assert out == "Deleted experiment E.\n" and cli("list").split() == []
    cli("add", "E", "manual")
    assert cli("list", "E").split() == [], "a new experiment of the same name starts empty"
    cli("rm", "--force", "E")
    assert cli("list").split() == []


def test_a_closed_standard_stream_is_an_empty_one(cli, jobs, capsys, monkeypatch):
    # As `schedy rm E a <&-` and `schedy list E >&-` start: sys.stdin / sys.stdout are None.
    monkeypatch.setattr(sys, "stdin", None)
    assert run(["--db", cli.store, "rm", "E", "a"]) == 1
    assert "Nothing deleted." in capsys.readouterr().err  # no answer is a no
    monkeypatch.setattr(sys, "stdout", None)
    assert run(["--db", cli.store, "list", "E"]) == 0
    monkeypatch.undo()
    assert cli("list", "E").split() == ["a", "b", "c", "d"]


def test_push_file_pushes_every_job_when_its_output_is_closed_early(cli, tmp_path):
    import subprocess

    cli("add", "E", "manual")
    lines = tmp_path / "jobs.jsonl"
    lines.write_text("".join(json.dumps({"hyperparameters": {"x": i}}) + "\n" for i in range(300)))
    # As `schedy push E --file jobs.jsonl -q | head -1`: the reader leaves after one line.
    proc = subprocess.Popen([sys.executable, "-m", "schedy", "--db", cli.store, "push", "E", "--file", str(lines), "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(60) == 0 and err == "", err
    ids = cli("list", "E").split()
    assert len(ids) == 300 and first.decode().strip() in ids


def test_list_writes_names_an_ascii_only_output_cannot_encode_as_show_does(cli):
    import os
    import subprocess

    cli("add", "ü✓", "manual")
    cli("push", "ü✓", "--id", "é", "-p", "x", "1")
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    for args in (["list", "ü✓"], ["list", "ü✓", "--json"], ["show", "ü✓", "é"]):
        proc = subprocess.run([sys.executable, "-m", "schedy", "--db", cli.store, *args],
                              capture_output=True, env=env, timeout=60)
        assert proc.returncode == 0 and "é" in proc.stdout.decode("utf-8"), (args, proc.stderr)


def test_double_dash_ends_the_pairs_before_a_name_like_an_option(cli):
    cli("add", "--", "-E", "manual")
    out = cli("push", "-p", "x", "1", "-r", "loss", "2", "-s", "DONE", "--", "-E")
    assert out.split()[1:] == ["DONE", "x=1", "|", "loss=2"]
    cli("push", "-p", "x", '"--"', "--", "-E")
    assert sorted(json.dumps(job.hyperparameters["x"]) for job in cli.db().get_experiment("-E").all_jobs()) == ["\"--\"", "1"]


def test_names_with_slashes_and_dots_stay_names(cli, tmp_path):
    cli("add", "a/../b", "manual")
    cli("push", "a/../b", "--id", "../x", "-p", "v", "1")
    assert cli("list").split() == ["a/../b"] and cli("list", "a/../b").split() == ["../x"]
    store = tmp_path / "store"
    assert all(store in p.resolve().parents for p in store.rglob("*"))
    assert not (tmp_path / "b").exists() and not (tmp_path / "x.json").exists()


class Annealing(Experiment):
    """A scheduler from a plugin, with its own add form."""

    SCHEDULER_NAME = "Annealing"
    CLI_NAME = "annealing"
    CLI_USAGE = "annealing TEMPERATURE"
    PARAMS_SCHEMA = {"$id": "urn:test:annealing", "type": "object"}

    def __init__(self, name, temperature, status="RUNNING"):
        super().__init__(name, status)
        self.temperature = temperature

    def get_params(self):
        return {"temperature": self.temperature}

    @classmethod
    def from_params(cls, name, status, params):
        return cls(name, params["temperature"], status)

    @classmethod
    def from_cli(cls, name, status, args):
        if len(args) != 1:
            raise schedy.errors.ValidationError(f"usage: {cls.CLI_USAGE}")
        return cls(name, float(args[0]), status)


class AnnealingPlugin:
    @hookimpl
    def register_schedulers(self, register):
        register(Annealing)


def test_plugin_schedulers_get_their_add_form(cli):
    register_plugin(AnnealingPlugin(), "annealing-test")
    try:
        assert "schedy add NAME annealing TEMPERATURE" in cli("add", "--help")
        cli("add", "Hot", "annealing", "-s", "DONE", "0.5")
        exp = cli.db().get_experiment("Hot")
        assert isinstance(exp, Annealing) and exp.temperature == 0.5 and exp.status == "DONE"
        cli("add", "Cold", "annealing", expect=2)
    finally:
        unregister_plugin("annealing-test")
