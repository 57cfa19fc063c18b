"""SchedyDB: the entry point of the Python API.

Example:
    >>> import schedy
    >>> db = schedy.SchedyDB(config_override={"db": getfixture("tmp_path")})
    >>> db.add_experiment(schedy.ManualSearch("TestExperiment"))
    >>> type(db.get_experiment("TestExperiment")).__name__
    'ManualSearch'
"""

from __future__ import annotations

import os
import warnings
from typing import IO, Iterator

from .config import ClientConfig, open_storage, resolve
from .experiment import Experiment
from .errors import ValidationError
from .names import check_name


class SchedyDB:
    """The store holding your experiments and jobs.

    Args:
        config_path: path (or open file) of a JSON config file, e.g.
            ``{"db": "s3://bucket/prefix"}`` or ``{"db": "https://host:8421", "token": "..."}``.
        config_override: the configuration as a dict, instead of a file.
        db: a store URL, taking precedence over everything else.

    With no configuration, the store is chosen as :mod:`schedy.config` describes
    (``SCHEDY_DB``, the user config file, else a files store in the user data directory).
    """

    def __init__(
        self,
        config_path: str | os.PathLike | IO[str] | None = None,
        config_override: dict | None = None,
        db: str | None = None,
    ):
        self.config: ClientConfig = resolve(config_path, config_override, db)
        self._storage = None

    @property
    def url(self) -> str:
        """The store's URL."""
        return self.config.url

    @property
    def storage(self):
        """The opened storage backend (opened on first use)."""
        if self._storage is None:
            self._storage = open_storage(self.config.url, {**self.config.extra, "token": self.config.token})
        return self._storage

    def add_experiment(self, exp: Experiment) -> None:
        """Store a new experiment; ``ResourceExistsError`` if the name is taken.

        Example:
            >>> import schedy
            >>> db = schedy.SchedyDB(config_override={"db": getfixture("tmp_path")})
            >>> db.add_experiment(schedy.ManualSearch("Other"))
        """
        if not isinstance(exp, Experiment):
            raise ValidationError(f"add_experiment takes an experiment (schedy.ManualSearch, ...), not {type(exp).__name__}")
        doc = exp._to_doc()
        etag = self.storage.create_experiment(doc)
        exp._attach(self, doc, etag)

    def get_experiment(self, name: str) -> Experiment:
        """The experiment named ``name``, as an object of its scheduler's class.

        Raises ``ResourceNotFoundError`` if there is none.
        """
        check_name("experiment name", name)
        return Experiment._from_versioned(self, self.storage.get_experiment(name))

    def get_experiments(self) -> Iterator[Experiment]:
        """Iterate over all experiments, paging through storage.

        An experiment whose stored document cannot be read is skipped with a warning.
        """
        from .errors import CorruptDocumentError

        for item in self.storage.iter_experiments():
            if isinstance(item, str):
                self._warn(item)
                continue
            try:
                yield Experiment._from_versioned(self, item)
            except CorruptDocumentError as e:
                self._warn(str(e))

    def _warn(self, message: str) -> None:
        warnings.warn(f"skipped: {message}", stacklevel=3)

    def close(self) -> None:
        """Close the storage's connections."""
        if self._storage is not None:
            self._storage.close()
            self._storage = None

    def __enter__(self) -> "SchedyDB":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SchedyDB(url={self.url!r})"
