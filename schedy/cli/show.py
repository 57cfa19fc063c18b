"""``schedy show NAME [JOB]``: one experiment (with its job counts) or one job, in full."""

from __future__ import annotations

import json
from typing import Optional

import typer

from .common import exit_if_unreadable, state, warn_skipped


def job_counts(storage, ref, problems: list[str] | None = None) -> dict:
    """How many jobs of each status (pages through the jobs); 'unreadable' counts corrupt
    ones, which are named in ``problems`` if given."""
    from ..job import Job

    counts = dict.fromkeys(Job.STATUSES, 0)
    for item in storage.iter_jobs(ref):
        key = "unreadable" if isinstance(item, str) else item.doc["status"]
        counts[key] = counts.get(key, 0) + 1
        if isinstance(item, str) and problems is not None:
            problems.append(item)
    return counts


def experiment_paragraph(doc: dict, counts: dict | None) -> str:
    """An experiment as a paragraph."""
    from .render import paragraph

    (scheduler, params), = doc["scheduler"].items()
    fields = [("scheduler", scheduler), ("status", doc["status"]), ("params", params),
              ("created", doc.get("created")), ("updated", doc.get("updated")), ("settings", doc.get("settings", {}))]
    if counts is not None:
        fields.append(("jobs", {"total": sum(counts.values()), **counts}))
    return paragraph(f"Experiment {doc['name']}", fields)


def job_paragraph(doc: dict) -> str:
    """A job as a paragraph: everything stored but its report history, which is summarized."""
    from .render import paragraph

    fields = [("experiment", doc["experiment"]), ("status", doc["status"]),
              ("hyperparameters", doc["hyperparameters"]), ("results", doc["results"])]
    for key in ("created", "updated", "attempt", "seed", "worker", "lease", "error"):
        if doc.get(key) is not None:
            fields.append((key, doc[key]))
    if doc.get("lineage"):
        fields.append(("lineage", doc["lineage"]))
    if doc.get("history"):
        fields.append(("reports", f"{len(doc['history'])}, last: {json.dumps(doc['history'][-1])}"))
    return paragraph(f"Job {doc['id']}", fields)


def register(app: typer.Typer) -> None:
    @app.command("show")
    def show_command(
        ctx: typer.Context,
        name: str = typer.Argument(..., help="The experiment."),
        job_id: Optional[str] = typer.Argument(None, metavar="[JOB]", help="A job of the experiment."),
        as_json: bool = typer.Option(False, "--json", help="Print the stored document."),
    ) -> None:
        """Show experiment NAME (scheduler, params, jobs per status) or one of its jobs."""
        from ..storage import ExperimentRef

        from ..names import check_name

        check_name("experiment name", name)
        if job_id is not None:
            check_name("job id", job_id)
        storage = state(ctx).db().storage
        exp = storage.get_experiment(name).doc
        ref = ExperimentRef(exp["name"], exp["uid"])
        if job_id is not None:
            doc = storage.get_job(ref, job_id).doc
            typer.echo(json.dumps(doc, indent=2, ensure_ascii=False) if as_json else job_paragraph(doc))
        elif as_json:
            typer.echo(json.dumps(exp, indent=2, ensure_ascii=False))
        else:
            problems: list[str] = []
            counts = job_counts(storage, ref, problems)
            for problem in problems:
                warn_skipped(problem)
            typer.echo(experiment_paragraph(exp, counts))
            exit_if_unreadable(len(problems))
