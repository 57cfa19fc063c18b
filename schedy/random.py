"""Distributions that hyperparameters are drawn from.

Bounds: ``Uniform`` and ``LogUniform`` draw floats in ``[low, high)`` (low included,
high excluded); ``IntUniform`` and ``IntLogUniform`` draw integers in ``[low, high]``
(both included, as ``range(low, high + 1)``). Parameters are checked when a
distribution is made: ``low < high``, ``0 < low`` for log scales, ``0 < std``, one
non-negative weight per value.

Every distribution has a wire form, ``{name: params}``, e.g.
``{"normal": {"mean": 0, "std": 5}}``.

Example:
    >>> import random
    >>> from schedy.random import Choice, Uniform
    >>> rng = random.Random(0)
    >>> 2.1 <= Uniform(2.1, 5).sample(rng) < 5
    True
    >>> Choice(range(1, 4)).to_wire()
    {'choice': {'values': [1, 2, 3]}}
"""

from __future__ import annotations

import math
import sys
import random as _random
from typing import Any, ClassVar, Iterable

from . import jsonio
from .errors import ValidationError

__all__ = [
    "Distribution",
    "Uniform",
    "LogUniform",
    "IntUniform",
    "IntLogUniform",
    "Normal",
    "Choice",
    "Constant",
    "from_wire",
    "DISTRIBUTIONS",
]


def _number(name: str, value: Any) -> float:
    """``value`` if it is a number a 64-bit float holds (what JSON readers use)."""
    if not jsonio.finite_number(value):
        raise ValidationError(f"{name} must be a finite number (within 1.8e308), not {jsonio.short_repr(value)}")
    return value


def _integer(name: str, value: Any) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{name} must be an integer, not {jsonio.short_repr(value)}")
    return _number(name, value)


class Distribution:
    """Base class: a distribution knows its wire name, params and how to sample."""

    #: Name in the wire format and on the command line.
    NAME: ClassVar[str]

    def sample(self, rng: _random.Random) -> Any:
        """Draw one value using ``rng``."""
        raise NotImplementedError

    def params(self) -> dict:
        """Parameters in the wire format."""
        raise NotImplementedError

    @classmethod
    def from_params(cls, params: dict) -> "Distribution":
        """Make the distribution from its wire-format parameters."""
        return cls(**params)

    def to_wire(self) -> dict:
        """``{name: params}``."""
        return {self.NAME: self.params()}

    def bounds(self) -> tuple[float, float] | None:
        """The closed interval values fall in, if bounded (used to keep explored values in range)."""
        return None

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.params() == other.params()  # type: ignore[union-attr]

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


class _Range(Distribution):
    def __init__(self, low: float, high: float):
        self.low = _number("low", low)
        self.high = _number("high", high)
        if not self.low < self.high:
            raise ValidationError(f"low must be < high (got low={low!r}, high={high!r})")
        # In floats, as sampling computes: two whole numbers near 1e308 subtract exactly
        # to one that no float holds.
        if not math.isfinite(float(self.high) - float(self.low)):
            raise ValidationError(f"high - low must be a finite number (got low={low!r}, high={high!r})")
        # The first and last floats in [low, high): whole bounds beyond 2**53 need not be floats.
        first, last = float(self.low), float(self.high)
        self._first = self.low if first == self.low else first if first > self.low else math.nextafter(first, math.inf)
        self._last = last if last < self.high else math.nextafter(last, -math.inf)
        if self._first > self._last:
            raise ValidationError(f"no float lies in [low, high) (got low={low!r}, high={high!r})")

    def params(self) -> dict:
        return {"low": self.low, "high": self.high}

    def bounds(self) -> tuple[float, float]:
        return (self._first, self._last)  # high is excluded

    def _inside(self, value: float) -> float:
        # Float rounding can land on the excluded upper bound, or below a low no float holds.
        return min(max(value, self._first), self._last)


class Uniform(_Range):
    """Floats uniformly distributed in ``[low, high)``.

    >>> Uniform(0, 1).to_wire()
    {'uniform': {'low': 0, 'high': 1}}
    """

    NAME = "uniform"

    def sample(self, rng: _random.Random) -> float:
        low, high = float(self.low), float(self.high)  # as checked: whole bounds subtract exactly
        return self._inside(low + (high - low) * rng.random())


class LogUniform(_Range):
    """Floats in ``[low, high)`` whose logarithm is uniform; needs ``0 < low``.

    >>> LogUniform(1e-6, 1e-1).to_wire()
    {'loguniform': {'low': 1e-06, 'high': 0.1}}
    """

    NAME = "loguniform"

    def __init__(self, low: float, high: float):
        super().__init__(low, high)
        if self.low <= 0:
            raise ValidationError(f"low must be > 0 for a log scale (got {low!r})")

    def sample(self, rng: _random.Random) -> float:
        log_low, log_high = math.log(self.low), math.log(self.high)
        value = math.exp(log_low + (log_high - log_low) * rng.random())
        return self._inside(value)


class IntUniform(Distribution):
    """Integers uniformly distributed in ``[low, high]``, both ends included.

    >>> IntUniform(1, 3).to_wire()
    {'intuniform': {'low': 1, 'high': 3}}
    """

    NAME = "intuniform"

    def __init__(self, low: int, high: int):
        self.low = _integer("low", low)
        self.high = _integer("high", high)
        if not self.low < self.high:
            raise ValidationError(f"low must be < high (got low={low!r}, high={high!r})")

    def params(self) -> dict:
        return {"low": self.low, "high": self.high}

    def bounds(self) -> tuple[float, float]:
        return (self.low, self.high)

    def sample(self, rng: _random.Random) -> int:
        return rng.randint(self.low, self.high)


class IntLogUniform(IntUniform):
    """Integers in ``[low, high]`` (both included), log-uniform; needs ``1 <= low``.

    >>> IntLogUniform(1, 1024).to_wire()
    {'intloguniform': {'low': 1, 'high': 1024}}
    """

    NAME = "intloguniform"

    def __init__(self, low: int, high: int):
        super().__init__(low, high)
        if self.low < 1:
            raise ValidationError(f"low must be >= 1 for a log scale (got {low!r})")

    def sample(self, rng: _random.Random) -> int:
        # Each integer k owns [k, k + 1) on the log scale, so the ends are as likely as they
        # should be: k = low * ((high + 1) / low) ** u, floored. Computed as an offset from
        # low with log1p and expm1, which keep their precision where the range is narrow
        # next to low (10**16 to 10**16 + 4, say), where exp(log(k)) cannot tell k from k + 1.
        span = self.high + 1 - self.low
        try:
            offset = int(self.low * math.expm1(rng.random() * math.log1p(span / self.low)))
        except OverflowError:  # near the top of the float range
            offset = span - 1
        return self.low + min(max(offset, 0), span - 1)


class Normal(Distribution):
    """Floats from a normal distribution with ``mean`` and standard deviation ``std > 0``.

    >>> Normal(0, 5).to_wire()
    {'normal': {'mean': 0, 'std': 5}}
    """

    NAME = "normal"

    def __init__(self, mean: float, std: float):
        self.mean = _number("mean", mean)
        self.std = _number("std", std)
        if self.std <= 0:
            raise ValidationError(f"std must be > 0 (got {std!r})")

    def params(self) -> dict:
        return {"mean": self.mean, "std": self.std}

    def sample(self, rng: _random.Random) -> float:
        value = rng.gauss(self.mean, self.std)
        if math.isinf(value):  # a huge std: the draw left the float range, which JSON cannot hold
            return math.copysign(sys.float_info.max, value)
        return value


class Choice(Distribution):
    """One of ``values`` (any JSON: numbers, strings, booleans, lists, objects, mixed).

    ``values`` may be any iterable, e.g. ``range(1, 10)``. ``weights``, if given, has
    one non-negative number per value and a positive sum.

    >>> Choice(["relu", "tanh"], weights=[3, 1]).to_wire()
    {'choice': {'values': ['relu', 'tanh'], 'weights': [3, 1]}}
    """

    NAME = "choice"

    def __init__(self, values: Iterable[Any], weights: Iterable[float] | None = None):
        if isinstance(values, (str, bytes, dict)):
            raise ValidationError("values must be a list of values, not a single string or object")
        try:
            self.values = jsonio.to_plain(list(values), what="values")
        except TypeError:
            raise ValidationError(f"values must be a list, not {type(values).__name__}") from None
        if not self.values:
            raise ValidationError("values must not be empty")
        self.weights = None
        if weights is not None:
            try:
                self.weights = [_number("each weight", w) for w in weights]
            except TypeError:
                raise ValidationError(f"weights must be a list of numbers, not {type(weights).__name__}") from None
            if len(self.weights) != len(self.values):
                raise ValidationError(
                    f"weights must have one number per value ({len(self.values)} values, {len(self.weights)} weights)"
                )
            if any(w < 0 for w in self.weights) or not 0 < sum(float(w) for w in self.weights) < math.inf:
                raise ValidationError("weights must be >= 0 with a positive sum, and a finite one")

    def params(self) -> dict:
        params: dict = {"values": self.values}
        if self.weights is not None:
            params["weights"] = self.weights
        return params

    def sample(self, rng: _random.Random) -> Any:
        if self.weights is None:
            return rng.choice(self.values)
        return rng.choices(self.values, weights=self.weights)[0]


class Constant(Distribution):
    """Always ``value`` (any JSON), e.g. to pass configuration to workers.

    >>> Constant({"dataset": "mnist"}).to_wire()
    {'constant': {'value': {'dataset': 'mnist'}}}
    """

    NAME = "constant"

    def __init__(self, value: Any):
        self.value = jsonio.to_plain(value, what="value")

    def params(self) -> dict:
        return {"value": self.value}

    def sample(self, rng: _random.Random) -> Any:
        return self.value


#: Wire name to class.
DISTRIBUTIONS: dict[str, type[Distribution]] = {
    cls.NAME: cls for cls in (Uniform, LogUniform, IntUniform, IntLogUniform, Normal, Choice, Constant)
}


def from_wire(definition: Any, what: str = "distribution") -> Distribution:
    """Make a distribution from ``{name: params}``; errors name ``what`` and list what is allowed.

    >>> from_wire({"normal": {"mean": 0, "std": 5}})
    Normal(mean=0, std=5)
    """
    from . import schema

    if isinstance(definition, dict) and len(definition) == 1:
        name = next(iter(definition))
        if name not in DISTRIBUTIONS:
            raise ValidationError(
                f"{what}: unknown distribution {name!r}; use one of {', '.join(DISTRIBUTIONS)}"
            )
    schema.check(definition, "urn:schedy:distribution", what)
    name, params = next(iter(definition.items()))
    try:
        return DISTRIBUTIONS[name].from_params(params)
    except ValidationError as e:
        raise ValidationError(f"{what}: {name}: {e}") from None


def from_cli(hp: str, name: str, params_text: str) -> Distribution:
    """Make the distribution of hyperparameter ``hp`` from command-line words.

    >>> from_cli("x", "normal", '{"mean": 0, "std": 5}')
    Normal(mean=0, std=5)
    """
    from .errors import CorruptDocumentError
    from .names import check_name

    check_name("hyperparameter name", hp)  # as push's -p: a name is typed and printed
    if name not in DISTRIBUTIONS:
        raise ValidationError(f"hyperparameter {hp!r}: unknown distribution {name!r}; use one of {', '.join(DISTRIBUTIONS)}")
    try:
        params = jsonio.loads(params_text, f"hyperparameter {hp!r}: PARAMS_JSON", unique_keys=True)
    except CorruptDocumentError as e:
        raise ValidationError(f"{e}: {params_text}") from None
    return from_wire({name: params}, f"hyperparameter {hp!r}")


def from_wire_map(definitions: Any, what: str) -> dict[str, Distribution]:
    """Make ``{hyperparameter: distribution}`` from its wire form."""
    if not isinstance(definitions, dict):
        raise ValidationError(f"{what} must be an object of hyperparameter: distribution")
    return {hp: from_wire(d, f"{what}.{hp}") for hp, d in definitions.items()}
