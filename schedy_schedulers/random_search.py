"""Random search: when no job is queued, a job with hyperparameters drawn from distributions."""

from __future__ import annotations

from typing import Any

from schedy.errors import ValidationError
from schedy.experiment import Experiment, Proposal, SchedulerContext
from schedy.hookspecs import hookimpl
from schedy.random import Distribution, from_cli, from_wire_map


class RandomSearch(Experiment):
    """An experiment that draws each new job's hyperparameters from ``distributions``.

    Queued jobs (``add_job``) are handed out first; they must have exactly the
    hyperparameters that ``distributions`` names. Each job's values come from a random
    generator seeded by the experiment and the job id, stored as the job's ``seed``.

    Args:
        name: name of the experiment.
        distributions: hyperparameter name -> :mod:`schedy.random` distribution.
        status: ``Experiment.RUNNING`` or ``Experiment.DONE``.

    Example:
        >>> import schedy
        >>> exp = RandomSearch("MinimizeRandom", {"x": schedy.random.Normal(0, 5)})
        >>> exp.get_params()
        {'x': {'normal': {'mean': 0, 'std': 5}}}
    """

    SCHEDULER_NAME = "RandomSearch"
    CLI_NAME = "random"
    CLI_USAGE = "random HP DIST PARAMS_JSON [HP DIST PARAMS_JSON ...]"
    PARAMS_SCHEMA = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:schedy:scheduler:RandomSearch",
        "title": "RandomSearch scheduler params",
        "description": "Hyperparameter name to distribution.",
        "$ref": "urn:schedy:distribution#/$defs/distributions",
    }

    def __init__(self, name: str, distributions: dict[str, Distribution], status: str = Experiment.RUNNING):
        super().__init__(name, status)
        self.distributions = dict(_checked(distributions))

    def get_params(self) -> dict:
        return {hp: dist.to_wire() for hp, dist in _checked(self.distributions).items()}

    @classmethod
    def from_params(cls, name: str, status: str, params: dict) -> "RandomSearch":
        return cls(name, from_wire_map(params, "distributions"), status=status)

    @classmethod
    def from_cli(cls, name: str, status: str, args: list[str]) -> "RandomSearch":
        if not args or len(args) % 3:
            raise ValidationError(
                f"random takes one or more triples HP DIST PARAMS_JSON; got {len(args)} argument(s)"
                + (f": {' '.join(args)}" if args else "")
            )
        distributions: dict[str, Distribution] = {}
        for hp, dist_name, params_text in zip(args[0::3], args[1::3], args[2::3]):
            if hp in distributions:
                raise ValidationError(f"hyperparameter {hp!r} is given twice")
            distributions[hp] = from_cli(hp, dist_name, params_text)
        return cls(name, distributions, status=status)

    def check_hyperparameters(self, hyperparameters: dict) -> None:
        missing = sorted(set(self.distributions) - set(hyperparameters))
        extra = sorted(set(hyperparameters) - set(self.distributions))
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"lacks {', '.join(missing)}")
            if extra:
                parts.append(f"has unknown {', '.join(extra)}")
            raise ValidationError(
                f"jobs of random search {self.name!r} need exactly the hyperparameters "
                f"{', '.join(self.distributions) or '(none)'}: this one {' and '.join(parts)}"
            )

    def suggest(self, ctx: SchedulerContext) -> Proposal:
        rng = ctx.rng(ctx.new_job_id)
        return Proposal(hyperparameters={hp: dist.sample(rng) for hp, dist in _checked(self.distributions).items()})


@hookimpl
def register_schedulers(register):
    register(RandomSearch)


def _checked(distributions: Any) -> dict[str, Distribution]:
    """``distributions`` if it maps names to distributions (it may have been set since), else ValidationError."""
    if not isinstance(distributions, dict):
        raise ValidationError("distributions must be a dict of hyperparameter name: distribution")
    for hp, dist in distributions.items():
        if not isinstance(dist, Distribution):
            raise ValidationError(f"distribution of {hp!r} must come from schedy.random, not {dist!r}")
    return distributions
