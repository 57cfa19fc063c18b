"""Strategies of Population Based Training (see ``schedy.PopulationBasedTraining``).

*Exploit* strategies decide when a population member drops its own model and copies a
better member's (hyperparameters and results, so its model pointer too); *explore*
strategies move one hyperparameter's value away from the copied one.

Every strategy has a wire form, e.g. ``{"truncate": 0.2}`` or
``{"perturb": {"minFactor": 0.8, "maxFactor": 1.2}}``, and every explore move returns a
JSON description of what it did, which the new job keeps in its lineage.

Example:
    >>> import random
    >>> from schedy.pbt import Perturb, Truncate
    >>> from schedy.random import Uniform
    >>> rng = random.Random(1)
    >>> Truncate(0.25).donor(["a", "b", "c", "d"], "d", rng) in ("a",)
    True
    >>> value, move = Perturb(resample_probability=0).explore(0.5, Uniform(0, 1), rng)
    >>> 0.4 <= value < 0.6 and sorted(move)
    ['perturb']
"""

from __future__ import annotations

import math
import random as _random
from typing import Any, ClassVar

from . import jsonio
from .errors import ValidationError
from .random import Choice, Distribution, IntUniform, LogUniform, Uniform

__all__ = [
    "MINIMIZE",
    "MAXIMIZE",
    "ExploitStrategy",
    "Truncate",
    "ExploreStrategy",
    "Perturb",
    "Resample",
    "exploit_from_wire",
    "explore_from_wire",
]

#: Minimize the objective.
MINIMIZE = "min"
#: Maximize the objective.
MAXIMIZE = "max"
OBJECTIVES = (MINIMIZE, MAXIMIZE)


def _fraction(name: str, value: Any, low: float, high: float, low_included: bool) -> float:
    if not jsonio.finite_number(value):
        raise ValidationError(f"{name} must be a finite number, not {jsonio.short_repr(value)}")
    if not ((low <= value if low_included else low < value) and value <= high):
        raise ValidationError(f"{name} must satisfy {low} {'<=' if low_included else '<'} {name} <= {high}, not {value!r}")
    return value


class ExploitStrategy:
    """Base class of exploit strategies.

    A subclass implements ``donor(ranking, member, rng)``: given the members' ids best
    first, the member whose slice just finished and a seeded random generator, the id
    of the member it should copy, or None to go on with its own model.
    """

    NAME: ClassVar[str]

    def donor(self, ranking: list[str], member: str, rng: _random.Random) -> str | None:
        raise NotImplementedError

    def to_wire(self) -> dict:
        raise NotImplementedError


class Truncate(ExploitStrategy):
    """Truncation selection: a member ranked in the bottom ``proportion`` copies a member
    drawn at random from the top ``proportion``.

    Both groups hold ``ceil(n * proportion)`` of the ``n`` ranked members (at most half
    of them, at least one when ``n >= 2``).

    Args:
        proportion: ``0 < proportion <= 0.5``.

    Example:
        >>> Truncate().to_wire()
        {'truncate': 0.2}
    """

    NAME = "truncate"

    def __init__(self, proportion: float = 0.2):
        self.proportion = _fraction("proportion", proportion, 0, 0.5, low_included=False)

    def group_size(self, n: int) -> int:
        """How many members the top (and the bottom) group holds among ``n``."""
        # (- 1e-9: 10 * 0.3 is 3.0000000000000004 in floats, three members, not four)
        return min(max(math.ceil(n * self.proportion - 1e-9), 1), n // 2)

    def donor(self, ranking: list[str], member: str, rng: _random.Random) -> str | None:
        k = self.group_size(len(ranking))
        if k == 0 or member not in ranking[len(ranking) - k:]:
            return None
        return rng.choice(ranking[:k])

    def to_wire(self) -> dict:
        return {self.NAME: self.proportion}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Truncate) and other.proportion == self.proportion

    def __repr__(self) -> str:
        return f"Truncate(proportion={self.proportion!r})"


class ExploreStrategy:
    """Base class of explore strategies.

    A subclass implements ``explore(value, distribution, rng) -> (new_value, move)``:
    ``distribution`` is the hyperparameter's initial distribution or None, ``move`` a
    JSON object saying what was done (kept in the job's lineage).
    """

    NAME: ClassVar[str]

    def explore(self, value: Any, distribution: Distribution | None, rng: _random.Random) -> tuple[Any, dict]:
        raise NotImplementedError

    def to_wire(self) -> dict:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.to_wire() == other.to_wire()  # type: ignore[union-attr]


def _resample(distribution: Distribution, rng: _random.Random) -> tuple[Any, dict]:
    value = distribution.sample(rng)
    return value, {"resample": value}


class Perturb(ExploreStrategy):
    """Multiply a numeric hyperparameter by a factor drawn uniformly from
    ``[min_factor, max_factor)``.

    With probability ``resample_probability`` the value is redrawn from the
    hyperparameter's initial distribution instead (when it has one), so that a value
    a product cannot leave, such as 0, is not a dead end. A perturbed value stays inside
    the initial distribution's range; an integer stays an integer and moves by at least
    one. A categorical value (initial distribution ``Choice``) moves to a neighbouring
    value of the list, passing over values of weight 0 (never drawn, never moved to).

    A product that would leave the float range (which no document can hold) leaves the
    value as it is.

    Args:
        min_factor: smallest factor (included), > 0.
        max_factor: largest factor (excluded).
        resample_probability: chance of a redraw, ``0 <= p <= 1``.

    Example:
        >>> Perturb().to_wire()
        {'perturb': {'minFactor': 0.8, 'maxFactor': 1.2, 'resampleProbability': 0.25}}
    """

    NAME = "perturb"

    def __init__(self, min_factor: float = 0.8, max_factor: float = 1.2, resample_probability: float = 0.25):
        self.min_factor = _fraction("min_factor", min_factor, 0, math.inf, False)
        self.max_factor = _fraction("max_factor", max_factor, 0, math.inf, False)
        if not self.min_factor < self.max_factor:
            raise ValidationError(f"min_factor must be < max_factor (got {min_factor!r}, {max_factor!r})")
        self.resample_probability = _fraction("resample_probability", resample_probability, 0, 1, True)

    def explore(self, value: Any, distribution: Distribution | None, rng: _random.Random) -> tuple[Any, dict]:
        # Always draw both numbers so a run's random stream does not depend on the branch taken.
        redraw = rng.random() < self.resample_probability
        factor = self.min_factor + (self.max_factor - self.min_factor) * rng.random()
        if distribution is not None and redraw:
            return _resample(distribution, rng)
        if isinstance(distribution, Choice):
            return _neighbour(value, distribution, factor >= 1, rng)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return value, {}
        moved: float = value * factor
        if not math.isfinite(moved):  # past the float range: a value no document could hold
            return value, {}
        if isinstance(distribution, IntUniform):
            whole = True
        elif isinstance(distribution, (Uniform, LogUniform)):
            whole = False
        else:
            whole = isinstance(value, int)
        if whole:
            moved = round(moved)
            if moved == value and factor != 1:
                moved += 1 if (factor > 1) == (value >= 0) else -1
        bounds = distribution.bounds() if distribution is not None else None
        if bounds is not None:
            moved = min(max(moved, bounds[0]), bounds[1])
        return (int(moved) if whole else float(moved)), {"perturb": factor}

    def to_wire(self) -> dict:
        return {
            self.NAME: {
                "minFactor": self.min_factor,
                "maxFactor": self.max_factor,
                "resampleProbability": self.resample_probability,
            }
        }

    def __repr__(self) -> str:
        return (
            f"Perturb(min_factor={self.min_factor!r}, max_factor={self.max_factor!r}, "
            f"resample_probability={self.resample_probability!r})"
        )


def _neighbour(value: Any, choice: Choice, up: bool, rng: _random.Random) -> tuple[Any, dict]:
    values = choice.values
    if value not in values:
        return _resample(choice, rng)
    i = values.index(value)
    # Values of weight 0 are never drawn, so never moved to either: the nearest other one.
    drawable = [k for k in range(len(values)) if k != i and (choice.weights is None or choice.weights[k] > 0)]
    above, below = [k for k in drawable if k > i][:1], [k for k in drawable if k < i][-1:]
    nearest = (above or below) if up else (below or above)
    if not nearest:
        return value, {}
    return values[nearest[0]], {"neighbour": values[nearest[0]]}


class Resample(ExploreStrategy):
    """Always redraw the hyperparameter from its initial distribution (a hyperparameter
    without one keeps its value).

    Example:
        >>> Resample().to_wire()
        {'resample': {}}
    """

    NAME = "resample"

    def explore(self, value: Any, distribution: Distribution | None, rng: _random.Random) -> tuple[Any, dict]:
        if distribution is None:
            return value, {}
        return _resample(distribution, rng)

    def to_wire(self) -> dict:
        return {self.NAME: {}}

    def __repr__(self) -> str:
        return "Resample()"


def exploit_from_wire(definition: dict) -> ExploitStrategy:
    """The exploit strategy of a wire form (already checked against the params schema).

    >>> exploit_from_wire({"truncate": 0.3})
    Truncate(proportion=0.3)
    """
    (name, params), = definition.items()
    if name == Truncate.NAME:
        return Truncate(params)
    raise ValidationError(f"unknown exploit strategy {name!r}; use truncate")


def explore_from_wire(definition: dict, what: str = "explore strategy") -> ExploreStrategy:
    """The explore strategy of a wire form (already checked against the params schema).

    >>> explore_from_wire({"perturb": {"minFactor": 0.5, "maxFactor": 2}})
    Perturb(min_factor=0.5, max_factor=2, resample_probability=0.25)
    """
    (name, params), = definition.items()
    try:
        if name == Perturb.NAME:
            return Perturb(
                params.get("minFactor", 0.8), params.get("maxFactor", 1.2), params.get("resampleProbability", 0.25)
            )
        if name == Resample.NAME:
            return Resample()
    except ValidationError as e:
        raise ValidationError(f"{what}: {e}") from None
    raise ValidationError(f"{what}: unknown strategy {name!r}; use perturb or resample")
