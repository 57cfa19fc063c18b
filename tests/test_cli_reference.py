"""docs/cli.md is the commands' --help: this fails when a command changes and the
reference was not regenerated (python -m schedy.cli.docgen > docs/cli.md)."""

import os
import subprocess
import sys
from pathlib import Path

import schedy.cli.docgen

DOCS = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def test_reference_matches_help():
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDY_")}
    proc = subprocess.run(
        [sys.executable, "-m", "schedy.cli.docgen"], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert DOCS.read_text(encoding="utf-8") == proc.stdout, (
        "docs/cli.md is stale: run python -m schedy.cli.docgen > docs/cli.md"
    )


def test_reference_covers_every_command():
    text = DOCS.read_text(encoding="utf-8")
    for command in ("add", "push", "list", "show", "rm", "plugins"):
        assert f"## `schedy {command}`" in text
    assert schedy.cli.docgen.INTRO in text
