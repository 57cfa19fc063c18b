"""What every command shares: the global options' state and the store."""

from __future__ import annotations

from dataclasses import dataclass, field

import typer

from ..db import SchedyDB


@dataclass
class State:
    """Global options of one ``schedy`` invocation."""

    db_url: str | None = None
    debug: bool = False
    _db: SchedyDB | None = field(default=None, repr=False)

    def db(self) -> SchedyDB:
        """The store chosen by ``--db``, else SCHEDY_DB, else the config file, else the default."""
        if self._db is None:
            self._db = SchedyDB(db=self.db_url)
        return self._db


def state(ctx: typer.Context) -> State:
    """The global state from any command's context."""
    root = ctx.find_root()
    if not isinstance(root.obj, State):
        root.obj = State()
    return root.obj


def warn_skipped(problem: str) -> None:
    """Warn of a stored document that could not be read; the command goes on without it."""
    typer.echo(f"Warning: skipped {problem}", err=True)


def exit_if_unreadable(count: int) -> None:
    """After a command printed what it could read: exit 1 if ``count`` stored documents
    could not be (each warned of), so that a script does not take a part for the whole."""
    if count:
        typer.echo(f"Error: {count} stored document(s) could not be read (see the warnings)", err=True)
        raise typer.Exit(1)
