"""``schedy list [NAME]``: the experiments, or the jobs of experiment NAME.

Plain ids, paragraphs (``-p``) and ``--json`` stream page by page from storage; a
table, CSV or sorted listing needs every row first (for the columns and the order).
"""

from __future__ import annotations

import csv
import itertools
import json
import sys
from typing import Iterator, Optional

import typer

from .common import exit_if_unreadable, state, warn_skipped


def _documents(ctx: typer.Context, name: str | None, status: str | None, problems: list[str]) -> Iterator[dict]:
    from ..storage import ExperimentRef

    from ..names import check_name

    storage = state(ctx).db().storage
    if name is None:
        items = storage.iter_experiments()
    else:
        exp = storage.get_experiment(check_name("experiment name", name)).doc
        items = storage.iter_jobs(ExperimentRef(exp["name"], exp["uid"]), status)
    for item in items:
        if isinstance(item, str):
            problems.append(item)
            warn_skipped(item)
        elif name is not None or status is None or item.doc["status"] == status:
            yield item.doc


def _paragraph(doc: dict, columns) -> str:
    from .render import full, paragraph, printable

    if columns:  # the first field titles each paragraph, whatever its value (a number, none)
        return paragraph(printable(full(columns[0].get(doc))), [(c.label, c.get(doc)) for c in columns[1:]])
    if "id" in doc:
        return paragraph(f"Job {doc['id']}", [("status", doc["status"]), ("hyperparameters", doc["hyperparameters"]),
                                              ("results", doc["results"])])
    (scheduler, params), = doc["scheduler"].items()
    return paragraph(f"Experiment {doc['name']}", [("scheduler", scheduler), ("status", doc["status"]),
                                                   ("params", params), ("created", doc.get("created"))])


def register(app: typer.Typer) -> None:
    @app.command(
        "list",
        epilog=(
            "FIELD is id, status, created, updated, attempt, seed, error, a hyperparameter or a result "
            "(hyperparameter.x / result.x when both have an x); for experiments: name, scheduler, status, "
            "created, updated, params.\n\n"
            "Examples:\n\n\b\n"  # \b: keep these lines as they are (no re-wrapping)
            "  schedy list -t MinimizeSimple -s result\n"
            "  schedy list MinimizeSimple --status DONE -s result -d --limit 5 -f id -f result --csv"
        ),
    )
    def list_command(
        ctx: typer.Context,
        name: Optional[str] = typer.Argument(None, help="An experiment: list its jobs (default: list the experiments)."),
        as_table: bool = typer.Option(False, "-t", "--table", help="Show a table with the hyperparameters and results."),
        as_paragraphs: bool = typer.Option(False, "-p", "--paragraphs", help="Show one paragraph per item."),
        as_json: bool = typer.Option(False, "--json", help="Print the stored documents as a JSON array."),
        as_csv: bool = typer.Option(False, "--csv", help="Print CSV with a header row."),
        sort: Optional[list[str]] = typer.Option(
            None, "-s", "--sort", metavar="FIELD", help="Sort on FIELD (repeatable); missing values come last."
        ),
        descending: bool = typer.Option(False, "-d", "--descending", help="Sort in descending order."),
        fields: Optional[list[str]] = typer.Option(
            None, "-f", "--field", metavar="FIELD", help="Show only these fields (repeatable; implies -t by default)."
        ),
        status: Optional[str] = typer.Option(None, "--status", help="Only items with this status."),
        limit: Optional[int] = typer.Option(None, "--limit", min=0, max=sys.maxsize, help="Show at most N items."),
    ) -> None:
        """List experiments, or the jobs of experiment NAME (ids by default)."""
        from ..errors import ValidationError
        from . import columns as cols

        if sum((as_table, as_paragraphs, as_json, as_csv)) > 1:
            raise ValidationError("choose one of -t, -p, --json and --csv")
        if as_json and fields:
            raise ValidationError("--json prints whole documents: -f goes with -t, -p or --csv")
        if descending and not sort:
            raise ValidationError("-d reverses the order of -s FIELD: give the field to sort on")
        own = cols.JOB_FIELDS if name is not None else cols.EXPERIMENT_FIELDS
        statuses = _statuses(name)
        if status is not None and status not in statuses:
            raise ValidationError(f"unknown status {status!r}; use one of {', '.join(statuses)}")
        if fields and not (as_paragraphs or as_csv):
            as_table = True
        problems: list[str] = []
        docs: Iterator[dict] | list[dict] = _documents(ctx, name, status, problems)
        columns = []
        if sort or fields or as_table or as_csv:
            docs = list(docs)
            if sort:
                docs = cols.sort_rows(docs, [cols.resolve(f, own, docs) for f in sort], descending)
            if fields:
                columns = [cols.resolve(f, own, docs) for f in fields]
            docs = docs[:limit] if limit is not None else docs
            if not fields and (as_table or as_csv):
                columns = cols.job_columns(docs) if name is not None else cols.experiment_columns()
        elif limit is not None:
            docs = itertools.islice(docs, limit)
        _print(docs, columns, as_table, as_paragraphs, as_json, as_csv)
        exit_if_unreadable(len(problems))


def _statuses(name: str | None) -> tuple[str, ...]:
    if name is None:
        from ..experiment import Experiment

        return Experiment.STATUSES
    from ..job import Job

    return Job.STATUSES


class _Echo:
    """Output written as every command writes it, through typer.echo (whose stream an
    ASCII-only terminal does not turn into a UnicodeEncodeError), a piece at a time."""

    def write(self, text: str) -> None:
        typer.echo(text, nl=False)


def _print(docs, columns, as_table: bool, as_paragraphs: bool, as_json: bool, as_csv: bool) -> None:
    from .render import full, table

    out = _Echo()
    if as_table:
        out.write(table([c.label for c in columns], [[c.get(d) for c in columns] for d in docs]) + "\n")
    elif as_csv:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([c.label for c in columns])
        writer.writerows([full(c.get(d)) for c in columns] for d in docs)
    elif as_json:
        separator = "[\n"
        for doc in docs:
            out.write(separator + json.dumps(doc, ensure_ascii=False))
            separator = ",\n"
        out.write("[]\n" if separator == "[\n" else "\n]\n")
    elif as_paragraphs:
        first = True
        for doc in docs:
            out.write(("" if first else "\n") + _paragraph(doc, columns) + "\n")
            first = False
    else:
        for doc in docs:
            out.write(doc.get("id", doc.get("name")) + "\n")
