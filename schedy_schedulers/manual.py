"""Manual search: workers get only the jobs queued beforehand (``add_job``, ``schedy push``)."""

from schedy.experiment import Experiment
from schedy.hookspecs import hookimpl


class ManualSearch(Experiment):
    """An experiment whose jobs are all queued by hand; ``next_job`` hands them out oldest first.

    Args:
        name: name of the experiment.
        status: ``Experiment.RUNNING`` or ``Experiment.DONE``.

    Example:
        >>> exp = ManualSearch("MyTask")
        >>> exp.SCHEDULER_NAME, exp.get_params()
        ('Manual', None)
    """

    SCHEDULER_NAME = "Manual"
    CLI_NAME = "manual"
    CLI_USAGE = "manual"
    PARAMS_SCHEMA = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:schedy:scheduler:Manual",
        "title": "Manual scheduler params",
        "description": "A manual search has no params.",
        "type": "null",
    }


@hookimpl
def register_schedulers(register):
    register(ManualSearch)
