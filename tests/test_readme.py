"""The README's examples, run as written: the quick start (examples/quickstart.sh) on the
embedded default store, the Python example and the command-line block."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import schedy

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def fenced(language: str = "") -> list[str]:
    """The README's code blocks fenced with ```language (plain ``` for "")."""
    blocks, current, opened = [], [], None
    for line in README.splitlines():
        if line.startswith("```"):
            if opened is None:
                opened, current = line[3:].strip(), []
            else:
                if opened == language:
                    blocks.append("\n".join(current) + "\n")
                opened = None
        elif opened is not None:
            current.append(line)
    return blocks


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A user with no Schedy configuration: the default store lives under this HOME."""
    for name in ("SCHEDY_DB", "SCHEDY_TOKEN", "SCHEDY_DEBUG", "XDG_DATA_HOME", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    # The installed `schedy` script first on PATH, as the README's command puts it.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return tmp_path


def default_db() -> schedy.SchedyDB:
    return schedy.SchedyDB()


@pytest.mark.skipif(sys.platform != "linux", reason="checks the Linux location of the default store")
def test_the_quick_start_runs_on_the_default_store(home):
    first_command = fenced()[0].strip()
    assert first_command.endswith("sh examples/quickstart.sh"), first_command
    proc = subprocess.run(["sh", str(ROOT / "examples" / "quickstart.sh")], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert (home / ".local" / "share" / "schedy" / "store" / "experiments").is_dir()

    jobs = list(default_db().get_experiment("Quadratic").all_jobs())
    assert len(jobs) == 20 and {job.status for job in jobs} == {"DONE"}
    for job in jobs:
        hp = job.hyperparameters
        assert job.results["result"] == pytest.approx(hp["x"] ** 2 + hp["y"] ** 2)
        assert [entry["step"] for entry in job.history] == [1, 2, 3]
    # The table of the best 5, lowest result first.
    best = sorted(job.results["result"] for job in jobs)[:5]
    printed = [float(cell) for cell in re.findall(r"\|\s*(-?\d+\.\d+(?:e-?\d+)?)\s*\|\s*$", proc.stdout, re.M)]
    assert printed == pytest.approx(best, rel=1e-3)


def test_the_python_example_runs_as_written(home):
    (code,) = fenced("python")
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    jobs = list(default_db().get_experiment("MinimizeRandom").all_jobs())
    assert len(jobs) == 20 and {job.status for job in jobs} == {"DONE"}
    for job in jobs:
        hp = job.hyperparameters
        assert 1e-3 <= hp["y"] <= 1
        assert job.results == {"result": pytest.approx(hp["x"] ** 2 + hp["y"])}


def test_the_command_line_block_runs_as_written(home):
    # The block runs `python3 train.py %h` from where the user is: any script will do.
    (home / "train.py").write_text(
        "import sys\nprint('--- RESULTS ---')\nprint('{\"result\": %d}' % len(sys.argv))\n"
    )
    block = next(b for b in fenced() if b.startswith("schedy add MinimizeSimple"))
    outputs = {}
    for line in block.strip().splitlines():
        command = line.split("#")[0].strip()
        words = shlex.split(command)
        proc = subprocess.run(words, capture_output=True, text=True, cwd=home, timeout=120,
                              input="y\n" if words[1] == "rm" else "")
        assert proc.returncode == 0, (command, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr
        outputs[words[1]] = proc.stdout
        if words[1] == "show":
            # Everything the block made is there before the last line deletes it.
            jobs = list(default_db().get_experiment("MinimizeSimple").all_jobs())
            assert [(j.status, j.hyperparameters, j.results) for j in jobs] == [
                ("DONE", {"x": 1, "y": 2}, {"result": 5})
            ]
    assert re.search(r"\|\s*5\s*\|", outputs["list"])
    assert "MinimizeSimple" in outputs["show"]
    assert [e.name for e in default_db().get_experiments()] == []
