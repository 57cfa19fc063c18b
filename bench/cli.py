"""Command-line start-up: wall time of schedy commands next to their anchors, same run.

Anchors: bare ``python -c pass``, an empty Typer app with one command (the floor Typer
itself sets) and ``optuna --help``. Schedy: ``--help``, ``push`` and ``list -t`` on an
experiment of 1,000 jobs in a files store, and ``push --file`` of 1,000 jobs in one
process against 1,000 separate ``push`` processes (estimated from the single push).

    python3 bench/cli.py [--runs 9]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EMPTY_TYPER = """
import typer

app = typer.Typer()


@app.command()
def hello(name: str = "world") -> None:
    print(f"hello {name}")


app()
"""


def wall(args: list[str], env: dict, runs: int, stdin: str | None = None) -> float:
    """Median wall time in ms of ``runs`` runs (after one warm-up run)."""
    times = []
    for i in range(runs + 1):
        start = time.perf_counter()
        subprocess.run(args, env=env, input=stdin, capture_output=True, text=True, check=True)
        if i:
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    options = parser.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "SCHEDY_DB": str(Path(tmp) / "store")}
        env.pop("SCHEDY_DEBUG", None)
        # Installed commands start from byte-code caches (the warm-up run writes any that are
        # missing); with caching off, every start would compile every module from source.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        script = Path(tmp) / "empty_typer.py"
        script.write_text(EMPTY_TYPER)
        schedy = [py, "-m", "schedy"]
        subprocess.run([*schedy, "add", "Bench", "random", "x", "uniform", '{"low": 0, "high": 1}'], env=env, check=True,
                       capture_output=True)
        jobs = "".join(
            json.dumps({"hyperparameters": {"x": i / 1000}, "results": {"y": (i / 1000) ** 2}, "status": "DONE"}) + "\n"
            for i in range(1000)
        )
        start = time.perf_counter()
        subprocess.run([*schedy, "push", "Bench", "--file", "-", "-q"], input=jobs, env=env, check=True,
                       capture_output=True, text=True)
        file_ms = (time.perf_counter() - start) * 1000

        rows = []
        rows.append(("python -c pass", wall([py, "-c", "pass"], env, options.runs)))
        floor = wall([py, str(script), "--help"], env, options.runs)
        rows.append(("empty Typer app, one command, --help", floor))
        optuna = shutil.which("optuna")
        if optuna:
            rows.append(("optuna --help", wall([optuna, "--help"], env, options.runs)))
        rows.append(("schedy --help", wall([*schedy, "--help"], env, options.runs)))
        push = wall([*schedy, "push", "Bench", "-p", "x", "0.5"], env, options.runs)
        rows.append(("schedy push Bench -p x 0.5", push))
        rows.append(("schedy list -t Bench (1,000+ jobs)", wall([*schedy, "list", "-t", "Bench"], env, options.runs)))
        rows.append(("schedy list Bench (ids)", wall([*schedy, "list", "Bench"], env, options.runs)))

        bare = rows[0][1]
        print(f"{'command':45} {'ms':>8} {'x python':>9} {'x Typer floor':>14}")
        for name, ms in rows:
            print(f"{name:45} {ms:8.0f} {ms / bare:9.1f} {ms / floor:14.2f}")
        print(f"\npush --file of 1,000 jobs, one process: {file_ms:.0f} ms ({file_ms / 1000:.1f} ms a job)")
        print(f"1,000 separate push processes (1,000 x the single push): {push * 1000 / 1000:.0f} s")


if __name__ == "__main__":
    main()
