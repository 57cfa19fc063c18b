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
