"""Grid search for Schedy: every combination of the given values, each run once.

Example:
    >>> exp = GridSearch("Sweep", {"lr": [0.1, 0.01], "layers": [2, 4]})
    >>> exp.size, exp.point(3)
    (4, {'lr': 0.01, 'layers': 4})
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from schedy import schema
from schedy.errors import CorruptDocumentError, ValidationError
from schedy.experiment import Experiment, Proposal, SchedulerContext
from schedy.hookspecs import hookimpl
from schedy.random import Choice

_CURSOR = "grid-cursor"
#: The cursor state document: the index of the first grid point that may not have a job yet.
CURSOR_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "urn:schedy-grid:cursor",
    "type": "object",
    "required": ["next"],
    "properties": {"next": {"type": "integer", "minimum": 0}},
}
_POINT_ID = re.compile(r"grid-[0-9]+")


class GridSearch(Experiment):
    """An experiment that hands out every point of a grid once, in a fixed order.

    Args:
        name: name of the experiment.
        grid: hyperparameter name -> list of values (or a ``schedy.random.Choice``).
        status: ``Experiment.RUNNING`` or ``Experiment.DONE``.

    Point ``i`` becomes job ``grid-<i>``: two workers proposing the same point make one
    job, because creating a job is create-only.
    """

    SCHEDULER_NAME = "GridSearch"
    CLI_NAME = "grid"
    CLI_USAGE = "grid HP VALUES_JSON [HP VALUES_JSON ...]"
    PARAMS_SCHEMA = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:schedy:scheduler:GridSearch",
        "title": "GridSearch scheduler params",
        "description": "Hyperparameter name to the list of its values.",
        "type": "object",
        "additionalProperties": {"type": "array", "minItems": 1},
    }

    def __init__(self, name: str, grid: dict[str, Any], status: str = Experiment.RUNNING):
        super().__init__(name, status)
        if not isinstance(grid, dict) or not grid:
            raise ValidationError("grid must be a non-empty dict of hyperparameter: values")
        self.grid = {hp: list(v.values if isinstance(v, Choice) else Choice(v).values) for hp, v in grid.items()}

    @property
    def size(self) -> int:
        """How many points the grid has."""
        return math.prod(len(values) for values in self.grid.values())

    def point(self, index: int) -> dict:
        """The hyperparameters of point ``index`` (the last hyperparameter varies fastest)."""
        values = {}
        for hp in reversed(list(self.grid)):
            index, position = divmod(index, len(self.grid[hp]))
            values[hp] = self.grid[hp][position]
        return {hp: values[hp] for hp in self.grid}

    def get_params(self) -> dict:
        return self.grid

    def check_job_id(self, job_id: str) -> None:
        # A hand-made job named like a point would be taken for that point, which would never run.
        if _POINT_ID.fullmatch(job_id):
            raise ValidationError(f"job id {job_id!r} names a grid point; this experiment keeps such ids for its points")

    @classmethod
    def from_params(cls, name: str, status: str, params: dict) -> "GridSearch":
        return cls(name, params, status=status)

    @classmethod
    def from_cli(cls, name: str, status: str, args: list[str]) -> "GridSearch":
        if not args or len(args) % 2:
            raise ValidationError(f"grid takes pairs HP VALUES_JSON; got {len(args)} argument(s)")
        grid = {}
        for hp, text in zip(args[0::2], args[1::2]):
            try:
                values = json.loads(text)
            except ValueError:
                raise ValidationError(f"hyperparameter {hp!r}: values must be a JSON list, got {text}") from None
            if not isinstance(values, list):
                raise ValidationError(f"hyperparameter {hp!r}: values must be a JSON list, got {text}")
            if hp in grid:
                raise ValidationError(f"hyperparameter {hp!r} is given twice")
            grid[hp] = values
        return cls(name, grid, status=status)

    def suggest(self, ctx: SchedulerContext) -> Proposal | None:
        # The cursor is only a hint of where to look: a stale one costs a few reads, never a duplicate.
        state = ctx.storage.get_state(ctx.ref, _CURSOR)
        if state is not None:
            # Plain JSON a person can edit: checked, as every state document should be.
            try:
                schema.check(state.doc, CURSOR_SCHEMA, f"the grid cursor of experiment {self.name!r}")
            except ValidationError as e:
                raise CorruptDocumentError(str(e)) from None
        index = state.doc["next"] if state else 0
        while index < self.size and self._exists(ctx, index):
            index += 1
        ctx.storage.put_state(ctx.ref, _CURSOR, {"next": index}, None)
        if index >= self.size:
            return None
        return Proposal(hyperparameters=self.point(index), job_id=f"grid-{index}", lineage={"point": index})

    @staticmethod
    def _exists(ctx: SchedulerContext, index: int) -> bool:
        from schedy.errors import ResourceNotFoundError

        try:
            ctx.storage.get_job(ctx.ref, f"grid-{index}")
        except ResourceNotFoundError:
            return False
        return True


@hookimpl
def register_schedulers(register):
    register(GridSearch)
