"""Packages that only some stores need come with extras (``pip install 'schedy[s3]'``); a
missing one is a clear error naming the extra, not an ImportError.

Example:
    >>> need("json", "http", "the http backend").__name__
    'json'
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import ConfigError


def need(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module``, or raise ConfigError telling how to install ``extra`` for ``what``."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"{what} needs the {module.split('.')[0]} package: pip install 'schedy[{extra}]'") from None
