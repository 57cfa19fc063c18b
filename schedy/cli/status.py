"""``schedy status NAME``: how an experiment's workers are doing."""

from __future__ import annotations

import json
from typing import Optional

import typer

from .common import exit_if_unreadable, state, warn_skipped


def experiment_status(storage, name: str, best: str | None = None, maximize: bool = False,
                      problems: list[str] | None = None) -> dict:
    """Counts per status, running jobs with their worker and lease age, and the best job.

    Lease ages come from the store's own clock; a job without a lease marker has None.
    Documents that could not be read are counted ('unreadable') and, if ``problems`` is
    given, named in it.

    Example:
        >>> import schedy
        >>> db = schedy.SchedyDB(db=str(getfixture("tmp_path")))
        >>> db.add_experiment(schedy.ManualSearch("E"))
        >>> job = db.get_experiment("E").add_job(hyperparameters={"x": 1}, status="DONE", results={"loss": 0.5})
        >>> status = experiment_status(db.storage, "E", best="loss")
        >>> status["counts"]["DONE"], status["best"]["value"]
        (1, 0.5)
    """
    from ..job import Job
    from ..storage import ExperimentRef

    exp = storage.get_experiment(name).doc
    ref = ExperimentRef(exp["name"], exp["uid"])
    counts = dict.fromkeys(Job.STATUSES, 0)
    running, unreadable, best_doc = [], 0, None
    for item in storage.iter_jobs(ref):
        if isinstance(item, str):
            unreadable += 1
            if problems is not None:
                problems.append(item)
            continue
        doc = item.doc
        counts[doc["status"]] += 1
        if doc["status"] == "RUNNING":
            running.append(doc)
        value = (doc.get("results") or {}).get(best) if best else None
        if doc["status"] == "DONE" and _is_number(value):
            if best_doc is None or (value > best_doc["results"][best] if maximize else value < best_doc["results"][best]):
                best_doc = doc
    ages = storage.heartbeat_ages(ref) or {}
    result = {
        "experiment": exp["name"],
        "status": exp["status"],
        "counts": counts,
        "running": [
            {
                "id": doc["id"],
                "worker": doc.get("worker"),
                "attempt": doc.get("attempt", 1),
                "leaseSeconds": (doc.get("lease") or {}).get("seconds"),
                "heartbeatAge": ages.get(doc["id"]),
            }
            for doc in running
        ],
        "best": None if best_doc is None else {
            "id": best_doc["id"], "result": best, "value": best_doc["results"][best],
            "hyperparameters": best_doc["hyperparameters"],
        },
    }
    if unreadable:
        result["counts"]["unreadable"] = unreadable
    return result


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _text(status: dict, best: str | None) -> str:
    from .render import table

    lines = [f"Experiment {status['experiment']} ({status['status']})"]
    lines.append("  " + ", ".join(f"{key}: {count}" for key, count in status["counts"].items()))
    if status["running"]:
        rows = []
        for job in status["running"]:
            worker = job["worker"] or {}
            age = job["heartbeatAge"]
            rows.append([
                job["id"], f"{worker.get('host', '?')}:{worker.get('pid', '?')}", job["attempt"],
                "-" if age is None else f"{age:.1f}s", f"{job['leaseSeconds']:g}s" if job["leaseSeconds"] else "-",
            ])
        lines += ["", table(["running job", "worker", "attempt", "heartbeat age", "lease"], rows)]
    if best:
        found = status["best"]
        lines.append("")
        if found is None:
            lines.append(f"Best: no DONE job has a numeric result {best!r} yet")
        else:
            lines.append(f"Best {best}: {found['value']} (job {found['id']}, {json.dumps(found['hyperparameters'])})")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    @app.command("status")
    def status_command(
        ctx: typer.Context,
        name: str = typer.Argument(..., help="The experiment."),
        best: Optional[str] = typer.Option(None, "--best", metavar="RESULT", help="Show the best DONE job by this result."),
        maximize: bool = typer.Option(False, "--max", help="The best job has the largest RESULT (default: smallest)."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Jobs per status, running jobs with worker and heartbeat age, and the best job so far.

        The heartbeat age is the time since the job's worker last renewed its lease, by
        the store's clock ('-', null with --json, for a job with no lease marker).
        """
        from ..names import check_name

        check_name("experiment name", name)
        if best is not None:
            check_name("--best RESULT", best)
        elif maximize:
            raise typer.BadParameter("--max says which end of --best RESULT is best: give --best too", param_hint="--max")
        problems: list[str] = []
        status = experiment_status(state(ctx).db().storage, name, best, maximize, problems)
        for problem in problems:
            warn_skipped(problem)
        typer.echo(json.dumps(status, indent=2, ensure_ascii=False) if as_json else _text(status, best))
        exit_if_unreadable(len(problems))
