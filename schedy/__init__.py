"""Schedy: record experiments, let schedulers suggest hyperparameters, keep workers busy.

Example:
    >>> import schedy
    >>> db = schedy.SchedyDB(config_override={"db": getfixture("tmp_path")})
    >>> db.add_experiment(schedy.RandomSearch("Demo", {"x": schedy.random.Uniform(0, 1)}))
    >>> with db.get_experiment("Demo").next_job() as job:
    ...     job.results["y"] = job.hyperparameters["x"] ** 2
"""

from . import core, errors, random
from .db import SchedyDB
from .experiment import Experiment, Proposal, SchedulerContext
from .job import Job

__version__ = "0.2.0"

__all__ = [
    "SchedyDB",
    "Experiment",
    "Job",
    "ManualSearch",
    "RandomSearch",
    "PopulationBasedTraining",
    "Proposal",
    "SchedulerContext",
    "core",
    "errors",
    "random",
    "pbt",
]


def __getattr__(name: str):
    # Schedulers live in their plugin packages; importing them lazily keeps `import schedy` light.
    if name == "ManualSearch":
        from schedy_schedulers.manual import ManualSearch

        return ManualSearch
    if name == "RandomSearch":
        from schedy_schedulers.random_search import RandomSearch

        return RandomSearch
    if name == "PopulationBasedTraining":
        from schedy_schedulers.pbt import PopulationBasedTraining

        return PopulationBasedTraining
    if name == "pbt":
        import importlib

        return importlib.import_module("schedy.pbt")
    raise AttributeError(f"module 'schedy' has no attribute {name!r}")
