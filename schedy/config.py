"""Where the store is, and how to open it.

The store URL is the first of these that is set:

1. ``db`` given directly (the CLI's ``--db``);
2. ``config_override`` (a dict, e.g. ``{"db": "s3://bucket/prefix", "token": "..."}``);
3. the JSON file at ``config_path``;
4. the ``SCHEDY_DB`` environment variable;
5. the user config file, ``client.json`` in the platform's config directory
   (``$XDG_CONFIG_HOME/schedy``, ``~/.config/schedy``; ``~/Library/Application
   Support/schedy`` on macOS; ``%APPDATA%\\schedy`` on Windows), if it exists, else
   ``~/.schedy/client.json``, where the original client kept it, if that exists;
6. the embedded default: a files store in the platform's data directory
   (``$XDG_DATA_HOME/schedy/store``, ``~/.local/share/schedy/store``; ``~/Library/
   Application Support/schedy/store`` on macOS; ``%LOCALAPPDATA%\\schedy\\store`` on Windows).

The token (for ``http(s)://`` stores, ``SCHEDY_TOKEN`` in the environment) and the
store's other settings (an S3 ``endpoint_url``, ``profile``, ``region``) are looked for in
the same order, in the layers that name the same store URL or none: settings kept next to
another store's URL are that store's, and a token is never sent to another server. A
user config file that cannot be read is an error, unless an earlier layer gives the store
URL: then it is skipped with a warning (``--db`` works around a broken file). A URL is a directory path, ``file://...``,
``s3://bucket/prefix`` or ``http(s)://host:port``.

Example:
    >>> resolve(config_override={"db": "/tmp/store"}).url
    '/tmp/store'
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .errors import ConfigError
from .jsonio import valid_unicode


@dataclass(frozen=True)
class ClientConfig:
    """The resolved configuration: store URL, token, and where the URL came from."""

    url: str
    token: str | None
    source: str
    extra: dict


def _platform_dir(kind: str) -> Path:
    home = Path.home()
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA" if kind == "data" else "APPDATA") or str(home / "AppData" / "Roaming")
        return Path(base) / "schedy"
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / "schedy"
    variable, fallback = ("XDG_DATA_HOME", ".local/share") if kind == "data" else ("XDG_CONFIG_HOME", ".config")
    return Path(os.environ.get(variable) or home / fallback) / "schedy"


def data_dir() -> Path:
    """The platform's user data directory for Schedy."""
    return _platform_dir("data")


def config_dir() -> Path:
    """The platform's user config directory for Schedy."""
    return _platform_dir("config")


def user_config_path() -> Path:
    """The user config file (it may not exist)."""
    return config_dir() / "client.json"


def original_config_path() -> Path:
    """``~/.schedy/client.json``, the original client's config file: read when the user
    config file does not exist."""
    return Path.home() / ".schedy" / "client.json"


def default_store() -> Path:
    """The embedded default store's directory."""
    return data_dir() / "store"


def read_config(source: str | os.PathLike | IO[str]) -> dict:
    """The JSON object in a config file (a path or an open file); ConfigError otherwise.

    >>> import io
    >>> read_config(io.StringIO('{"db": "/tmp/store"}'))
    {'db': '/tmp/store'}
    """
    try:
        if hasattr(source, "read"):
            data = json.load(source)  # type: ignore[arg-type]
            where = getattr(source, "name", "config file")
        else:
            where = str(source)
            with open(source, encoding="utf-8") as f:
                data = json.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {source} does not exist") from None
    except (OSError, ValueError, RecursionError) as e:
        raise ConfigError(f"config file {source} cannot be read: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {where} must hold a JSON object")
    return data


def _url_of(config: dict) -> Any:
    # "root" is the original client's key for the service URL. A value that is there but
    # false (false, 0, "") is a mistake to report, not a layer to skip: the data would go
    # to the next layer's store.
    for key in ("db", "url", "root"):
        if config.get(key) is not None:
            return config[key]
    return None


def resolve(
    config_path: str | os.PathLike | IO[str] | None = None,
    config_override: dict | None = None,
    db: str | None = None,
) -> ClientConfig:
    """Resolve the store URL and token; see the module docstring for the order."""
    layers: list[tuple[str, dict]] = []
    if db is not None:
        layers.append(("--db", {"db": db}))
    if config_override is not None:
        if not isinstance(config_override, dict):
            raise ConfigError("config_override must be a dict")
        layers.append(("config_override", config_override))
    if config_path is not None:
        layers.append((f"config file {config_path}", read_config(config_path)))
    env = {"db": os.environ.get("SCHEDY_DB") or None, "token": os.environ.get("SCHEDY_TOKEN") or None}
    layers.append(("SCHEDY_DB", {k: v for k, v in env.items() if v}))
    user_file = user_config_path()
    if not user_file.exists():
        user_file = original_config_path()
    if user_file.exists():
        try:
            layers.append((f"config file {user_file}", read_config(user_file)))
        except ConfigError as e:
            given = next((name for name, layer in layers if _url_of(layer) is not None), None)
            if given is None:
                raise
            logging.getLogger(__name__).warning("%s; skipped: the store is the one %s gives", e, given)
    url = source = None
    for name, layer in layers:
        if _url_of(layer) is not None:
            url, source = _text(_url_of(layer), f"the store URL from {name}"), name
            break
    token = None
    extra: dict[str, Any] = {}
    for name, layer in layers:
        layer_url = _url_of(layer)
        if isinstance(layer_url, os.PathLike):
            layer_url = os.fspath(layer_url)
        if layer_url is not None and layer_url != url:
            continue  # settings kept next to another store's URL (its token, its endpoint) are that store's
        if token is None and layer.get("token") is not None:
            token = _text(layer["token"], f"the token from {name}")
        for key, value in layer.items():
            extra.setdefault(key, value)
    if url is None:
        url, source = str(default_store()), "default store"
    return ClientConfig(url=url, token=token, source=source, extra=extra)


def _text(value: Any, what: str) -> str:
    # A path object is a store URL too; anything else (bytes, a number) is a mistake that
    # str() would turn into a directory named "b'/tmp/x'" or "5".
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise ConfigError(f"{what} must be a string, not {type(value).__name__}")
    if not value:
        raise ConfigError(f"{what} is empty")
    if "\x00" in value:
        raise ConfigError(f"{what} has a NUL character")
    if not valid_unicode(value):
        raise ConfigError(f"{what} is not valid Unicode (it has a lone surrogate)")
    return value


def open_storage(url: str, config: dict | None = None):
    """Open the store at ``url`` with the backend plugin that handles its scheme."""
    from .plugins import registry

    backend = registry().backend_for(url)
    return backend.open(url, dict(config or {}))
