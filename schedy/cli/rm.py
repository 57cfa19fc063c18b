"""``schedy rm NAME [JOB]``: delete an experiment (with its jobs) or one job, after asking."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from .common import state


def _confirmed() -> bool:
    # Read stdin ourselves: EOF (a script, /dev/null) must mean "no", never an error.
    typer.echo("Delete? [y/N] ", nl=False, err=True)
    answer = sys.stdin.readline()
    if not answer.endswith("\n"):
        typer.echo("", err=True)
    return answer.strip().lower() in ("y", "yes")


def register(app: typer.Typer) -> None:
    @app.command("rm")
    def rm_command(
        ctx: typer.Context,
        name: str = typer.Argument(..., help="The experiment."),
        job_id: Optional[str] = typer.Argument(None, metavar="[JOB]", help="Delete only this job of the experiment."),
        force: bool = typer.Option(False, "-f", "--force", help="Do not ask."),
    ) -> None:
        """Delete experiment NAME and all its jobs, or only its job JOB; asks first unless -f."""
        from ..errors import CorruptDocumentError
        from .show import experiment_paragraph, job_counts, job_paragraph

        db = state(ctx).db()
        experiment = db.get_experiment(name)
        if job_id is not None:
            try:
                job = experiment.get_job(job_id)
                described = job_paragraph(job.to_doc() | {"updated": job.updated})
            except CorruptDocumentError as e:  # deleting it is the way out: not refused for what is wrong with it
                job, described = None, f"Job {job_id} (its document cannot be read: {e})"
            if not force:
                typer.echo(f"This job will be deleted:\n{described}", err=True)
                if not _confirmed():
                    typer.echo("Nothing deleted.", err=True)
                    raise typer.Exit(1)
            if job is not None:
                job.delete()
            else:
                db.storage.delete_job(experiment._ref(), job_id)
            typer.echo(f"Deleted job {job_id} of experiment {experiment.name}.")
            return
        if not force:
            storage = db.storage
            doc = storage.get_experiment(name).doc
            counts = job_counts(storage, experiment._ref())
            typer.echo(f"This experiment and its jobs will be deleted:\n{experiment_paragraph(doc, counts)}", err=True)
            if not _confirmed():
                typer.echo("Nothing deleted.", err=True)
                raise typer.Exit(1)
        experiment.delete()
        typer.echo(f"Deleted experiment {experiment.name}.")
