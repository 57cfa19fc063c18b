"""The plugin system: built-ins and third-party plugins through the same hooks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

import schedy
from schedy import plugins
from schedy.errors import ConfigError
from schedy.experiment import Experiment, Proposal
from schedy.hookspecs import hookimpl


class Doubler(Experiment):
    """A test scheduler: proposes x = 2 * (number of jobs so far)."""

    SCHEDULER_NAME = "Doubler"
    CLI_NAME = "doubler"

    def suggest(self, ctx):
        return Proposal(hyperparameters={"x": 2 * sum(1 for _ in ctx.jobs())})


class DoublerPlugin:
    @hookimpl
    def register_schedulers(self, register):
        register(Doubler)


@pytest.fixture
def doubler():
    plugins.register_plugin(DoublerPlugin(), "doubler-plugin")
    yield
    plugins.unregister_plugin("doubler-plugin")


def test_builtins_register_through_the_hooks():
    reg = plugins.registry()
    assert reg.plugins["schedy_backends.files"].backends == ["files"]
    assert reg.plugins["schedy_schedulers.manual"].schedulers == ["Manual"]
    assert reg.scheduler("RandomSearch").__name__ == "RandomSearch"
    assert reg.backend_for("/some/dir").NAME == "files"
    assert reg.backend_for("file:///some/dir").NAME == "files"


def test_a_registered_scheduler_is_used_by_next_job(doubler, tmp_path):
    db = schedy.SchedyDB(db=str(tmp_path))
    db.add_experiment(Doubler("D"))
    exp = db.get_experiment("D")
    assert type(exp) is Doubler
    xs = []
    for _ in range(3):
        with exp.next_job() as job:
            xs.append(job.hyperparameters["x"])
    assert xs == [0, 2, 4]
    assert plugins.registry().plugins["doubler-plugin"].schedulers == ["Doubler"]


def test_duplicate_names_are_an_error(doubler):
    class Again:
        @hookimpl
        def register_schedulers(self, register):
            register(type("Other", (Doubler,), {}))

    with pytest.raises(plugins.DuplicateNameError, match="'Doubler' is registered by both plugin 'doubler-plugin' and plugin 'again'"):
        plugins.register_plugin(Again(), "again")
    # Nothing of it is kept: before, every later registration failed on it again.
    assert "again" not in plugins.registry().plugins and not plugins.registry().pm.has_plugin("again")

    class Fine:
        @hookimpl
        def register_schedulers(self, register):
            register(type("Fine", (Doubler,), {"SCHEDULER_NAME": "Fine", "CLI_NAME": None}))

    plugins.register_plugin(Fine(), "fine")
    try:
        assert plugins.registry().plugins["fine"].schedulers == ["Fine"]
    finally:
        plugins.unregister_plugin("fine")


def test_unknown_scheduler_and_scheme_are_clear_errors():
    with pytest.raises(ConfigError, match="no installed plugin provides scheduler 'Nope'"):
        plugins.registry().scheduler("Nope")
    with pytest.raises(ConfigError, match="no installed backend opens 'ftp://x'"):
        plugins.registry().backend_for("ftp://x")


def _fake_distribution(tmp_path, name, target):
    site = tmp_path / "site"
    dist = site / f"{name}-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[schedy]\n{name} = {target}\n")
    return site


def _schedy(args, site, **env):
    environ = {**os.environ, "PYTHONPATH": str(site), **env}
    return subprocess.run([sys.executable, "-m", "schedy", *args], capture_output=True, text=True, env=environ)


def test_a_broken_third_party_plugin_is_a_warning_not_a_crash(tmp_path):
    site = _fake_distribution(tmp_path, "broken", "no_such_module_here")
    result = _schedy(["plugins", "--json"], site)
    assert result.returncode == 0, result.stderr
    assert "schedy plugin 'broken' failed to load and was skipped" in result.stderr
    names = [p["name"] for p in json.loads(result.stdout)]
    assert "broken" not in names and "schedy_backends.files" in names


@pytest.mark.parametrize(
    "source, message",
    [
        ("@hookimpl\ndef register_commands(cli):\n    @cli.command('half')\n    def half():\n        pass\n"
         "    raise RuntimeError('boom')\n",
         "plugin 'broken': its commands are skipped: its register_commands failed: boom"),
        ("@hookimpl\ndef register_schedulerz(register):\n    pass\n",
         "schedy plugin 'broken' was skipped: unknown hook 'register_schedulerz'"),
    ],
    ids=["commands-raise", "misspelt-hook"],
)
def test_a_third_party_plugin_with_broken_hooks_leaves_every_command_working(tmp_path, source, message):
    site = _fake_distribution(tmp_path, "broken", "broken_plugin")
    (site / "broken_plugin.py").write_text("from schedy.hookspecs import hookimpl\n\n" + source)
    result = _schedy(["--db", str(tmp_path / "store"), "add", "E", "manual"], site)
    assert result.returncode == 0, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(f"Warning: {message}")
    listed = _schedy(["plugins"], site)
    assert listed.returncode == 0 and "half" not in listed.stdout


def test_two_distributions_with_one_plugin_name_are_a_warning(tmp_path):
    site = _fake_distribution(tmp_path, "line", "line_plugin")
    other = site / "other-1.0.dist-info"
    other.mkdir()
    (other / "METADATA").write_text("Metadata-Version: 2.1\nName: other\nVersion: 1.0\n")
    (other / "entry_points.txt").write_text("[schedy]\nline = other_plugin\n")
    for module in ("line_plugin", "other_plugin"):
        (site / f"{module}.py").write_text("")
    result = _schedy(["plugins", "--json"], site)
    assert result.returncode == 0, result.stderr
    assert "schedy plugin 'line' of " in result.stderr and "has a plugin of that name" in result.stderr
    assert [p["name"] for p in json.loads(result.stdout)].count("line") == 1


def test_entry_point_plugins_load_and_can_be_narrowed(tmp_path):
    site = _fake_distribution(tmp_path, "extra", "extra_plugin")
    (site / "extra_plugin.py").write_text(
        textwrap.dedent(
            """
            from schedy.hookspecs import hookimpl
            from schedy.experiment import Experiment

            class Extra(Experiment):
                SCHEDULER_NAME = "Extra"

            @hookimpl
            def register_schedulers(register):
                register(Extra)
            """
        )
    )
    loaded = json.loads(_schedy(["plugins", "--json"], site).stdout)
    extra = next(p for p in loaded if p["name"] == "extra")
    assert extra == {"name": "extra", "version": "1.0", "builtin": False, "backends": [], "schedulers": ["Extra"], "commands": []}
    narrowed = json.loads(_schedy(["plugins", "--json"], site, SCHEDY_PLUGINS="").stdout)
    assert "extra" not in [p["name"] for p in narrowed]


def test_every_hook_is_documented_with_its_signature():
    import inspect

    from schedy import hookspecs

    docs = open(os.path.join(os.path.dirname(__file__), "..", "docs", "plugins.md"), encoding="utf-8").read()
    for name in ("register_backends", "register_schedulers", "register_commands"):
        hook = getattr(hookspecs, name)
        assert f"{name}{inspect.signature(hook)}" in docs, f"docs/plugins.md does not document {name}"


def test_plugin_versions_are_looked_up_only_when_shown(monkeypatch):
    looked_up: list[str | None] = []
    monkeypatch.setattr(plugins, "_version", lambda name: looked_up.append(name) or "9.9")
    plugins.reset()
    try:
        reg = plugins.registry()
        assert looked_up == [], "building the registry (every command's start) looked versions up"
        info = reg.plugins["schedy_backends.files"]
        assert info.as_dict()["version"] == "9.9"
        assert looked_up == ["schedy"]
    finally:
        plugins.reset()


def _scheduler(name: str, params_schema) -> type:
    return type(name, (Experiment,), {"SCHEDULER_NAME": name, "CLI_NAME": name.lower(), "PARAMS_SCHEMA": params_schema})


def _plugin_registering(*classes):
    class Plugin:
        @hookimpl
        def register_schedulers(self, register):
            for cls in classes:
                register(cls)

    return Plugin()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: _plugin_registering(_scheduler("NoId", {"type": "null"})), "'NoId': PARAMS_SCHEMA must be a JSON Schema with an \\$id"),
        (lambda: _plugin_registering(_scheduler("Empty", {})), "'Empty': PARAMS_SCHEMA must be a JSON Schema with an \\$id"),
        (lambda: _plugin_registering(_scheduler("List", [])), "'List': PARAMS_SCHEMA must be a JSON Schema with an \\$id"),
        (lambda: _plugin_registering(_scheduler("Takeover", {"$id": "urn:schedy:distribution"})), "cannot be replaced"),
        (lambda: _plugin_registering(_scheduler("BadType", {"$id": "urn:schedy:scheduler:BadType", "type": "objekt"})),
         "cannot be applied: KeyError"),
        (lambda: _plugin_registering(_scheduler("Unique", {"$id": "urn:schedy:scheduler:Unique", "type": "array", "uniqueItems": True})),
         "the keyword 'uniqueItems' is not one the checker applies"),
        (lambda: _plugin_registering(_scheduler("Pattern", {"$id": "urn:schedy:scheduler:Pattern", "patternProperties": {"^x": {}},
                                                            "additionalProperties": False})),
         "the keyword 'patternProperties' is not one the checker applies"),
        (lambda: _plugin_registering(None), "failed"),
        (lambda: _plugin_registering(Doubler, _scheduler("Later", {"type": "null"})), "Later"),
    ],
)
def test_a_third_party_plugin_that_registers_something_broken_is_skipped(make, message, tmp_path):
    with pytest.warns(UserWarning, match=f"plugin 'broken' is skipped: .*{message}"):
        plugins.register_plugin(make(), "broken")
    try:
        reg = plugins.registry()
        assert reg.plugins["broken"].schedulers == [] and "Doubler" not in reg.schedulers  # nothing half-registered
        db = schedy.SchedyDB(db=str(tmp_path))
        db.add_experiment(schedy.RandomSearch("R", {"x": schedy.random.Uniform(0, 1)}))  # the others work
        assert db.get_experiment("R").next_job().hyperparameters["x"] < 1
    finally:
        plugins.unregister_plugin("broken")


def test_the_wire_formats_own_schemas_cannot_be_replaced():
    from schedy import schema

    with pytest.raises(ConfigError, match="cannot be replaced"):
        schema.check({}, {"$id": "urn:schedy:distribution", "type": "object"}, "params")
    schema.check({"uniform": {"low": 0, "high": 1}}, "urn:schedy:distribution", "x")


class Faulty(Experiment):
    """A scheduler whose plugin code fails or proposes odd things, as ``FAULT`` says."""

    SCHEDULER_NAME = "Faulty"
    FAULT = ""

    @classmethod
    def from_params(cls, name, status, params):
        if name == "unreadable":
            raise KeyError("lr")
        return super().from_params(name, status, params)

    def suggest(self, ctx):
        if self.FAULT == "suggest":
            return ctx.missing  # a plugin's bug
        if self.FAULT == "finished":
            return Proposal(hyperparameters={"x": 1}, status="DONE")
        if self.FAULT == "shapes":
            return Proposal(hyperparameters={"pair": (1, 2), "set": {3}})
        return None

    def on_job_finished(self, ctx, doc):
        if self.FAULT == "finished-hook":
            raise RuntimeError("boom in on_job_finished")

    def check_hyperparameters(self, hyperparameters):
        if self.FAULT == "check":
            hyperparameters["lr"]  # a plugin's bug: KeyError for a job without lr

    def should_stop(self, ctx, job):
        if self.FAULT == "should_stop":
            return 1 / 0
        return False

    def retry(self, ctx, crashed):
        if self.FAULT == "retry":
            raise RuntimeError("boom in retry")
        return super().retry(ctx, crashed)


@pytest.fixture
def faulty(tmp_path):
    class Plugin:
        @hookimpl
        def register_schedulers(self, register):
            register(Faulty)

    plugins.register_plugin(Plugin(), "faulty")
    db = schedy.SchedyDB(db=str(tmp_path))
    exp = Faulty("F")
    db.add_experiment(exp)
    yield exp
    plugins.unregister_plugin("faulty")


def test_a_scheduler_failing_to_record_a_finished_job_is_a_warning(faulty):
    faulty.FAULT = "finished-hook"
    faulty.add_job(job_id="j", hyperparameters={})
    with pytest.warns(UserWarning, match=r"job 'j' is stored, but the scheduler Faulty \(plugin 'faulty'\) failed in on_job_finished: "
                                          r"RuntimeError: boom in on_job_finished"):
        with faulty.next_job():
            pass
    assert faulty.get_job("j").status == "DONE"


def test_a_scheduler_failing_to_retry_leaves_the_other_jobs_claimable(faulty, monkeypatch):
    from schedy.lease import keeper

    monkeypatch.setenv("SCHEDY_LEASE_SECONDS", "0.3")
    faulty.FAULT = "retry"
    faulty.add_job(job_id="dead", hyperparameters={})
    keeper.release(faulty.next_job())  # its worker "dies": no more heartbeats
    faulty.add_job(job_id="next", hyperparameters={})
    time.sleep(0.5)
    with pytest.warns(UserWarning, match=r"job 'dead' is not retried: the scheduler Faulty \(plugin 'faulty'\) failed in retry: RuntimeError"):
        with pytest.raises(schedy.errors.NoJobError):
            while True:  # (the claim that finds no job looks for expired leases too)
                with faulty.next_job() as job:
                    assert job.job_id == "next"
    assert faulty.get_job("dead").status == "CRASHED"
    with pytest.raises(schedy.errors.NoJobError):  # not stuck on it: asked again, no error
        faulty.next_job()


def test_a_scheduler_failing_in_its_own_code_is_named_with_its_plugin_and_hook(faulty):
    faulty.FAULT = "suggest"
    with pytest.raises(schedy.errors.SchedulerError,
                       match=r"^the scheduler Faulty \(plugin 'faulty'\) failed in suggest: AttributeError: .*missing"):
        faulty.next_job()
    faulty.FAULT = "check"
    with pytest.raises(schedy.errors.SchedulerError,
                       match=r"^the scheduler Faulty \(plugin 'faulty'\) failed in check_hyperparameters: KeyError: 'lr'$"):
        faulty.add_job(hyperparameters={"x": 1})
    assert list(faulty.all_jobs()) == []  # refused before anything was written
    faulty.FAULT = "should_stop"
    faulty.add_job(job_id="j", hyperparameters={"lr": 1})
    with faulty.next_job() as job:
        with pytest.raises(schedy.errors.SchedulerError, match=r"failed in should_stop: ZeroDivisionError"):
            job.should_stop()


def test_a_scheduler_raising_a_schedy_error_on_purpose_is_not_called_a_bug(faulty, monkeypatch):
    def refuse(hyperparameters):
        raise schedy.errors.ValidationError("lr must be positive")

    monkeypatch.setattr(faulty, "check_hyperparameters", refuse)
    with pytest.raises(schedy.errors.ValidationError, match="^lr must be positive$"):
        faulty.add_job(hyperparameters={"lr": -1})


def test_a_proposal_of_a_finished_job_is_refused_before_anything_is_made(faulty):
    faulty.FAULT = "finished"
    with pytest.raises(schedy.errors.ValidationError, match="proposed a job with status 'DONE'"):
        faulty.next_job()
    assert list(faulty.all_jobs()) == []


def test_a_proposal_reaches_the_worker_as_it_is_stored(faulty):
    faulty.FAULT = "shapes"
    with faulty.next_job() as job:
        assert job.hyperparameters == {"pair": [1, 2], "set": [3]}
    assert faulty.get_job(job.job_id).hyperparameters == job.hyperparameters


def test_a_scheduler_failing_to_read_its_experiment_names_it_and_spares_the_others(faulty):
    db = faulty._require_db()
    db.add_experiment(Faulty("unreadable"))
    with pytest.raises(schedy.errors.CorruptDocumentError,
                       match=r"experiment 'unreadable' cannot be read: the scheduler Faulty \(plugin 'faulty'\) failed in from_params: KeyError"):
        db.get_experiment("unreadable")
    with pytest.warns(UserWarning, match="skipped: experiment 'unreadable' cannot be read"):
        assert [exp.name for exp in db.get_experiments()] == ["F"]


def test_a_schema_referring_to_one_nobody_registered_is_a_config_error():
    from schedy import schema

    with pytest.raises(ConfigError, match="its schema 'urn:test:dangling' cannot be applied"):
        schema.check({"a": 1}, {"$id": "urn:test:dangling", "$ref": "urn:test:nowhere"}, "params")


def test_backend_url_schemes_follow_the_url_grammar():
    def backend(name, schemes):
        return type(name, (), {"NAME": name, "SCHEMES": schemes, "open": classmethod(lambda cls, url, config: None)})

    class Plugin:
        def __init__(self, cls):
            self.cls = cls

        @hookimpl
        def register_backends(self, register):
            register(self.cls)

    mem = backend("mem", ("my-mem", "MEMX", "x.y+z"))
    plugins.register_plugin(Plugin(mem), "mem")
    try:
        reg = plugins.registry()
        for url in ("my-mem://x", "MEMX://x", "memx://x", "x.y+z://x"):
            assert reg.backend_for(url) is mem, url  # "my-mem://x" was taken for a directory path
    finally:
        plugins.unregister_plugin("mem")
    with pytest.warns(UserWarning, match="'a_b' is not a URL scheme"):
        plugins.register_plugin(Plugin(backend("bad", ("a_b",))), "bad")
    try:
        assert plugins.registry().plugins["bad"].backends == []
    finally:
        plugins.unregister_plugin("bad")


@pytest.mark.parametrize("clash", [False, True])
def test_plugin_commands_are_listed_by_their_names_and_never_replace_others(tmp_path, clash):
    site = _fake_distribution(tmp_path, "cmds", "cmds_plugin")
    (site / "cmds_plugin.py").write_text(textwrap.dedent(f"""
        import typer
        from schedy.hookspecs import hookimpl

        @hookimpl
        def register_commands(cli):
            @cli.command()
            def my_cmd():
                print("mine")

            group = typer.Typer(name="mygroup")

            @group.command("x")
            def x():
                pass

            cli.add_typer(group)
            if {clash}:
                @cli.command("add")
                def add():
                    print("not schedy's add")
    """))
    listed = _schedy(["plugins", "--json"], site)
    assert listed.returncode == 0, listed.stderr
    commands = next(p for p in json.loads(listed.stdout) if p["name"] == "cmds")["commands"]
    added = _schedy(["--db", str(tmp_path / "store"), "add", "E", "manual"], site)
    assert added.returncode == 0 and "Added experiment E" in added.stdout, added.stderr
    if clash:
        assert commands == [] and "plugin 'cmds': its commands are skipped: add is taken" in listed.stderr
    else:
        assert commands == ["my-cmd", "mygroup"]
        assert _schedy(["my-cmd"], site).stdout == "mine\n"


def test_a_scheduler_bug_in_the_service_reaches_its_client_as_a_500_naming_the_plugin(tmp_path, monkeypatch):
    import importlib

    from tests.backends.http import Service

    site = _fake_distribution(tmp_path, "buggy", "buggy_plugin")
    (site / "buggy_plugin.py").write_text(
        textwrap.dedent(
            """
            from schedy.hookspecs import hookimpl
            from schedy.experiment import Experiment

            class Buggy(Experiment):
                SCHEDULER_NAME = "Buggy"

                def suggest(self, ctx):
                    return {}["lr"]

            @hookimpl
            def register_schedulers(register):
                register(Buggy)
            """
        )
    )
    monkeypatch.setenv("PYTHONPATH", str(site))  # the service finds the plugin by its entry point
    monkeypatch.syspath_prepend(str(site))  # and so does the client
    plugins.reset()
    service = Service(str(tmp_path / "store")).start().wait()
    try:
        monkeypatch.setenv("SCHEDY_TOKEN", service.token)
        db = schedy.SchedyDB(db=service.url)
        db.add_experiment(importlib.import_module("buggy_plugin").Buggy("B"))
        with pytest.raises(schedy.errors.SchedulerError,
                           match=r"^the scheduler Buggy \(plugin 'buggy'\) failed in suggest: KeyError: 'lr'$") as caught:
            db.get_experiment("B").next_job()
        assert caught.value.code == 500
    finally:
        service.stop()
        monkeypatch.undo()
        plugins.reset()
