"""Fast start: the commands people type most do not import the heavy libraries."""

import json
import subprocess
import sys

import pytest

HEAVY = (
    "boto3", "botocore", "numpy", "jsonschema", "starlette", "uvicorn", "requests", "tabulate", "schedy.server",
    "pydantic",  # Typer 0.29 and later coerce every parameter through it: pyproject.toml keeps Typer below
    "typer.rich_utils",  # help is plain text: formatting it with rich costs more than the rest of --help
)

PROBE = """
import json, sys
from schedy.cli.app import run
code = run(sys.argv[1:])
sys.stderr.write("MODULES " + json.dumps(sorted(sys.modules)) + "\\n")
sys.exit(code)
"""


def imported(args, store):
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, "--db", str(store), *args], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    line = next(line for line in proc.stderr.splitlines() if line.startswith("MODULES "))
    return set(json.loads(line[len("MODULES "):]))


@pytest.mark.parametrize(
    "args",
    [["--help"], ["list"], ["list", "-t", "E"], ["push", "E", "-p", "x", "1"], ["add", "F", "random", "x", "uniform",
                                                                              '{"low": 0, "high": 1}']],
    ids=["help", "list", "list-table", "push", "add-random"],
)
def test_common_commands_do_not_import_heavy_libraries(tmp_path, args):
    store = tmp_path / "store"
    subprocess.run([sys.executable, "-m", "schedy", "--db", str(store), "add", "E", "manual"], check=True, timeout=120)
    modules = imported(args, store)
    assert "schedy.cli.app" in modules, "the probe must see the modules the command imported"
    heavy = sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))
    assert heavy == []
