"""``schedy push NAME -p NAME VALUE ... [-r NAME VALUE ...]``: add jobs to an experiment.

``-p`` and ``-r`` take any number of NAME VALUE words, up to the next option of the
command, which a plain option cannot do: :class:`PairsCommand` takes them out of the
arguments before the usual parsing. ``--file`` reads many jobs in one process.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Optional

import typer
from typer.core import TyperCommand

from ..names import check_name
from .common import state

#: The options followed by NAME VALUE words, and where their words go.
PAIR_OPTIONS = {"-p": "hyperparameters", "--hyperparameters": "hyperparameters", "-r": "results", "--results": "results"}
_META_KEY = "schedy.pairs"
#: The statuses a job can be pushed with (RUNNING is a worker's: it comes with a lease).
PUSHABLE = ("QUEUED", "DONE", "CRASHED", "PRUNED")


class PairsCommand(TyperCommand):
    """A command whose ``-p``/``-r`` options take every word up to the command's next option.

    A value that looks like an option of the command (``-s``, ``--json``...) must be
    written as JSON (``'"-s"'``), as must ``--``, which ends the options (``-p x 1 -- -E``
    pushes to an experiment named ``-E``); a negative number (``-1``) needs nothing.
    """

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        known = {
            opt for param in self.get_params(ctx) if param.param_type_name == "option"
            for opt in (*param.opts, *param.secondary_opts)
        }  # (an argument's name, such as NAME's "name", is a word like any other here)
        groups: dict[str, list[str]] = {"hyperparameters": [], "results": []}
        rest: list[str] = []
        current = None
        for index, word in enumerate(args):
            if word == "--":  # the end of options (and of pairs): what follows is NAME, whatever it looks like
                rest.extend(args[index:])
                break
            if word in PAIR_OPTIONS:
                current = PAIR_OPTIONS[word]
                continue
            if current is not None and word.split("=", 1)[0] not in known:
                groups[current].append(word)
                continue
            current = None
            rest.append(word)
        ctx.meta[_META_KEY] = groups
        return super().parse_args(ctx, rest)


def job_line(doc: dict) -> str:
    """One line for a job: id first, then status, hyperparameters and results.

    >>> job_line({"id": "a1", "status": "DONE", "hyperparameters": {"x": 1}, "results": {"loss": 0.5}})
    'a1 DONE x=1 | loss=0.5'
    """
    from .render import full, printable

    parts = [doc["id"], doc["status"]]
    parts += [printable(f"{k}={full(v)}") for k, v in doc["hyperparameters"].items()]
    if doc.get("results"):
        parts.append("|")
        parts += [printable(f"{k}={full(v)}") for k, v in doc["results"].items()]
    return " ".join(parts)


def _read_jobs_file(path: str, status: str) -> list[dict]:
    """The jobs of a JSON Lines file (``-`` for stdin), each checked before anything is stored."""
    from ..errors import ValidationError

    try:
        # Bytes, decoded a line at a time, so that a line that is not UTF-8 is named.
        stream = getattr(sys.stdin, "buffer", sys.stdin) if path == "-" else open(path, "rb")
    except OSError as e:
        raise ValidationError(f"cannot read {path}: {e.strerror or e}") from None
    specs = []
    with stream:
        for number, raw in enumerate(stream, 1):
            try:
                line = raw if isinstance(raw, str) else raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ValidationError(f"{path} line {number}: not UTF-8 text") from None
            if line.strip():
                specs.append(_job_spec(f"{path} line {number}", line, status))
    return specs


def _job_spec(where: str, line: str, status: str) -> dict:
    """One line of a jobs file as a job's spec (its own status, else ``status``)."""
    from .. import jsonio
    from ..errors import ValidationError

    try:
        spec = jsonio.loads(line, where, unique_keys=True)
    except Exception as e:
        raise ValidationError(str(e)) from None
    if not isinstance(spec, dict):
        raise ValidationError(f"{where}: a job is a JSON object, e.g. {{\"hyperparameters\": {{\"x\": 1}}}}")
    unknown = set(spec) - {"hyperparameters", "results", "status", "id"}
    if unknown:
        raise ValidationError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; use hyperparameters, results, status, id")
    return {"where": where, "status": status, **spec}


def register(app: typer.Typer) -> None:
    @app.command(
        "push",
        cls=PairsCommand,
        epilog=(
            "Values are JSON: 1, 2.5, true, '\"text\"', '[\"stuff\", true, 6]', '{\"key\": 42}'. "
            "A bare word that is not JSON (-p optimizer adam) is taken as a string; "
            "nan, inf and the like are an error (quote them to store text).\n\n"
            "Examples:\n\n\b\n"  # \b: keep these lines as they are (no re-wrapping)
            "  schedy push MinimizeSimple --status DONE --hyperparameters x 1 y 2 --results result 5\n"
            "  schedy push MinimizeSimple -s DONE -p x 1 y 2 -r result 5\n"
            "  schedy push MyExperiment --file jobs.jsonl   (one {\"hyperparameters\": {...}} per line)"
        ),
    )
    def push_command(
        ctx: typer.Context,
        name: str = typer.Argument(..., help="The experiment."),
        hyperparameters: Optional[str] = typer.Option(
            None, "-p", "--hyperparameters", metavar="NAME VALUE ...", help="Hyperparameters of the job."
        ),
        results: Optional[str] = typer.Option(None, "-r", "--results", metavar="NAME VALUE ...", help="Results of the job."),
        status: str = typer.Option("QUEUED", "-s", "--status", help="QUEUED, DONE, CRASHED or PRUNED."),
        job_id: Optional[str] = typer.Option(None, "--id", help="The job's id (default: 8 random letters and digits)."),
        file: Optional[str] = typer.Option(
            None, "--file", metavar="PATH", help="Push one job per line of this JSON Lines file ('-': stdin)."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the job documents written (JSON Lines), without the revision the store adds."),
        quiet: bool = typer.Option(False, "-q", "--quiet", help="Print only the new jobs' ids."),
    ) -> None:
        """Add a job (or many with --file) to experiment NAME; print it, id first."""
        from ..errors import ValidationError
        from ..job import Job
        from .values import parse_pairs

        if quiet and as_json:
            raise ValidationError("choose one of -q and --json")
        groups = ctx.meta.get(_META_KEY, {"hyperparameters": [], "results": []})
        if file is not None:
            if groups["hyperparameters"] or groups["results"] or job_id:
                raise ValidationError("--file takes the jobs from the file: give no -p, -r or --id with it")
            specs = _read_jobs_file(file, status)
        else:
            specs = [
                {
                    "where": "the job",
                    "status": status,
                    "id": job_id,
                    "hyperparameters": parse_pairs(groups["hyperparameters"], "hyperparameter"),
                    "results": parse_pairs(groups["results"], "result"),
                }
            ]
        experiment = state(ctx).db().get_experiment(name)
        jobs = []
        ids: set[str] = set()
        for spec in specs:
            try:
                if spec["status"] == Job.RUNNING:  # a RUNNING job needs a worker and a lease: next_job() makes those
                    raise ValidationError("a job cannot be pushed RUNNING; push it QUEUED and let a worker claim it")
                if spec["status"] not in PUSHABLE:
                    raise ValidationError(f"a job is pushed {', '.join(PUSHABLE[:-1])} or {PUSHABLE[-1]}, not {spec['status']!r}")
                job = Job(
                    spec.get("id"),
                    experiment,
                    _dict_or_empty(spec, "hyperparameters"),
                    status=spec["status"],
                    results=_dict_or_empty(spec, "results"),
                )
                for kind, group in (("hyperparameter", job.hyperparameters), ("result", job.results)):
                    for key in group:  # as -p and -r check them: a name is typed and printed
                        check_name(f"{kind} name", key)
                experiment._check_hand_made(job.job_id, job.hyperparameters)
                job.to_doc()  # refuses what JSON cannot store, before anything is written
            except ValidationError as e:
                raise ValidationError(f"{spec['where']}: {e}" if file is not None else str(e)) from None
            if job.job_id in ids:
                raise ValidationError(f"{spec['where']}: job id {job.job_id!r} is given twice")
            ids.add(job.job_id)
            jobs.append(job)
        _refuse_taken_ids(experiment, [spec["id"] for spec in specs if spec.get("id")])
        printing = True
        for job in jobs:
            job.put()
            if printing:
                printing = _print(job, as_json, quiet)


def _dict_or_empty(spec: dict, key: str) -> Any:
    """``spec[key]``, ``{}`` when it is missing or null; any other value is left for the
    job to refuse if it is not an object (``0`` or ``[]`` is not an empty object)."""
    value = spec.get(key)
    return {} if value is None else value


def _refuse_taken_ids(experiment: Any, ids: list[str]) -> None:
    # The create would be refused anyway, but only after the store wrote its queue hint.
    from ..errors import ResourceExistsError, ResourceNotFoundError

    storage = experiment._require_db().storage
    for job_id in ids:
        try:
            storage.get_job(experiment._ref(), job_id)
        except ResourceNotFoundError:
            continue
        raise ResourceExistsError(f"job {job_id!r} of experiment {experiment.name!r} exists already", 409)


def _print(job: Any, as_json: bool, quiet: bool) -> bool:
    """Print a job pushed; False once the output is closed (`| head -1`): the jobs still
    to push are pushed all the same, as the command was asked."""
    try:
        if quiet:
            typer.echo(job.job_id)
        elif as_json:
            typer.echo(json.dumps(job.to_doc() | {"updated": job.updated}, ensure_ascii=False))
        else:
            typer.echo(job_line(job.to_doc()))
    except BrokenPipeError:
        # What is still buffered, and later writes, go nowhere instead of failing again at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return False
    return True
