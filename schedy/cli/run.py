"""``schedy run NAME [options] -- CMD ...``: a worker that runs a command for each job."""

from __future__ import annotations

import math
from typing import List, Optional

import typer

from .common import state

#: Slots are threads, each with a command running: more than this is a typo, not a plan.
MAX_PARALLEL = 1024


def _finite(seconds: Optional[float]) -> Optional[float]:
    if seconds is not None and not math.isfinite(seconds):
        raise typer.BadParameter(f"{seconds} is not a number of seconds")
    return seconds

HELP = """Claim jobs of experiment NAME and run CMD for each (it needs no Schedy import).

In CMD, %e is the experiment, %j the job id, %h the hyperparameters as --name value
pairs (_ in a name becomes -, as argparse's --batch-size gives batch_size; null values
are left out; --name=value for a value starting with '-'; a job whose hyperparameter
name is empty or holds '=' or white space, or two of whose names give one option, ends
CRASHED), %% a percent sign and {name} one
hyperparameter's value, as it is (in a command run through a shell, sh -c '... {name}',
that value is shell code that anyone who can queue a job chooses: use %h there, quoted
for a shell inside an argument, or SCHEDY_HYPERPARAMETERS). The command also gets
SCHEDY_EXPERIMENT, SCHEDY_JOB_ID, SCHEDY_HYPERPARAMETERS (JSON) and SCHEDY_RESULTS_FILE.
It gives its results as a JSON object after a '--- RESULTS ---' line on its output (on
that line or the next ones; what follows the object is ordinary output, and of several
such blocks the last counts), or in the results file; '--- REPORT --- {"step": 3,
"loss": 0.2}' lines record progress, after which a scheduler that stops jobs early may
stop the command (the job ends PRUNED).

Example: schedy run MyExperiment --parallel 2 -- python3 train.py %h"""


def register(app: typer.Typer) -> None:
    @app.command("run", help=HELP)
    def run_command(
        ctx: typer.Context,
        name: str = typer.Argument(..., help="The experiment."),
        command: List[str] = typer.Argument(..., metavar="CMD", help="The command to run for each job (after --)."),
        once: bool = typer.Option(False, "--once", help="Run one job, then exit."),
        max_jobs: Optional[int] = typer.Option(None, "--max-jobs", min=1, help="Run at most N jobs."),
        parallel: int = typer.Option(1, "--parallel", min=1, max=MAX_PARALLEL, help="Run N jobs at a time."),
        wait: bool = typer.Option(False, "--wait", help="When no job is left, keep asking (with backoff) instead of exiting."),
        ignore_errors: bool = typer.Option(False, "--ignore-errors", help="Go on after a failed command (it is CRASHED)."),
        allow_empty_results: bool = typer.Option(
            False, "--allow-empty-results", help="A command that succeeds without results is DONE, not CRASHED."
        ),
        timeout: Optional[float] = typer.Option(
            None, "--timeout", min=0.001, callback=_finite, help="Stop a command after SECONDS (it is CRASHED)."
        ),
    ) -> None:
        from ..runner import RunOptions, Runner

        experiment = state(ctx).db().get_experiment(name)
        options = RunOptions(
            max_jobs=1 if once else max_jobs,
            parallel=parallel,
            wait=wait,
            ignore_errors=ignore_errors,
            allow_empty_results=allow_empty_results,
            timeout=timeout,
        )
        code = Runner(experiment, command, options).run()
        if code:
            raise typer.Exit(code)
