"""The experiment classes under the module name the original client gave them, so code
written for it (``from schedy.experiments import RandomSearch``) keeps working. The
classes live in the core (``schedy.experiment``) and the scheduler plugins
(``schedy_schedulers``).

Example:
    >>> import schedy
    >>> from schedy.experiments import ManualSearch
    >>> ManualSearch is schedy.ManualSearch
    True
"""

from schedy_schedulers.manual import ManualSearch
from schedy_schedulers.pbt import PopulationBasedTraining
from schedy_schedulers.random_search import RandomSearch

from .experiment import Experiment

__all__ = ["Experiment", "ManualSearch", "RandomSearch", "PopulationBasedTraining"]
