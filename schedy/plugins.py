"""Loading plugins and the registry of what they register.

Built-in plugins are modules listed in ``BUILTIN_PLUGINS``, registered exactly like
third-party ones, which are found through the ``schedy`` entry-point group. A
third-party plugin that fails to load is a warning, not a crash. ``SCHEDY_PLUGINS``
narrows which third-party plugins load: a comma-separated list of entry-point names,
or empty for none.

Example:
    >>> reg = registry()
    >>> reg.scheduler("Manual").__name__
    'ManualSearch'
"""

from __future__ import annotations

import importlib
import os
import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import pluggy

from . import hookspecs
from .errors import ConfigError

BUILTIN_PLUGINS = (
    "schedy_backends.files",
    "schedy_backends.http",
    "schedy_backends.s3",
    "schedy_schedulers.manual",
    "schedy_schedulers.random_search",
    "schedy_schedulers.pbt",
)


class DuplicateNameError(ConfigError):
    """Two plugins registered the same name."""


@dataclass
class PluginInfo:
    """One loaded plugin and what it registered."""

    name: str
    distribution: str | None  # the installed package it comes from
    builtin: bool
    backends: list[str] = field(default_factory=list)
    schedulers: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)

    @property
    def version(self) -> str | None:
        # Read on demand: looking versions up at every start would cost each command milliseconds.
        return _version(self.distribution)

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "builtin": self.builtin,
            "backends": self.backends,
            "schedulers": self.schedulers,
            "commands": self.commands,
        }


def _register_params_schema(cls: Any) -> None:
    """Register a scheduler's params schema once it is known to be usable: a JSON object
    with an ``$id`` of its own (``schema.register`` refuses the wire format's) that the
    checker can apply (one it cannot would fail every read of every experiment)."""
    from . import schema

    params = cls.PARAMS_SCHEMA
    if not isinstance(params, dict) or not isinstance(params.get("$id"), str):
        raise ConfigError(f"scheduler {cls.SCHEDULER_NAME!r}: PARAMS_SCHEMA must be a JSON Schema with an $id")
    try:
        schema.compile_check(params)
    except Exception as e:
        raise ConfigError(f"scheduler {cls.SCHEDULER_NAME!r}: PARAMS_SCHEMA cannot be applied: {type(e).__name__}: {e}") from None
    schema.register(params)


class Registry:
    """What the loaded plugins registered: backends by URL scheme, schedulers by name."""

    def __init__(self, pm: pluggy.PluginManager, infos: dict[str, PluginInfo]):
        self.pm = pm
        self.plugins = infos
        self.backends: dict[str, Any] = {}
        self.schemes: dict[str, Any] = {}
        self.schedulers: dict[str, type] = {}
        self.cli_schedulers: dict[str, type] = {}
        self._collect("register_backends", self._add_backend)
        self._collect("register_schedulers", self._add_scheduler)

    def _collect(self, hook_name: str, add: Callable[[Any, PluginInfo], None]) -> None:
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            info = self.plugins[self.pm.get_name(impl.plugin)]
            before = self._tables(info)
            try:
                impl.function(lambda cls, info=info: add(cls, info))
            except DuplicateNameError:
                raise  # two plugins disagree: which one to use is the user's choice
            except Exception as e:
                if info.builtin:
                    raise
                # A broken third-party plugin is skipped, as one that fails to import is:
                # every command would fail otherwise, its own and everyone else's.
                self._restore(info, before)
                warnings.warn(f"plugin {info.name!r} is skipped: its {hook_name} failed: {e}", stacklevel=2)

    def _tables(self, info: PluginInfo) -> list:
        tables = [self.backends, self.schemes, self.schedulers, self.cli_schedulers, info.backends, info.schedulers]
        return [(table, table.copy()) for table in tables]

    @staticmethod
    def _restore(info: PluginInfo, before: list) -> None:
        for table, saved in before:
            table.clear()
            if isinstance(table, dict):
                table.update(saved)
            else:
                table.extend(saved)

    def _claim(self, table: dict, key: str, value: Any, what: str, info: PluginInfo) -> None:
        if key in table and table[key] is not value:
            owner = getattr(table[key], "_schedy_plugin", "?")
            raise DuplicateNameError(f"{what} {key!r} is registered by both plugin {owner!r} and plugin {info.name!r}")
        table[key] = value

    def _add_backend(self, cls: Any, info: PluginInfo) -> None:
        cls._schedy_plugin = info.name
        self._claim(self.backends, cls.NAME, cls, "backend", info)
        for scheme in cls.SCHEMES:
            if scheme and not _SCHEME.fullmatch(scheme):  # ("": plain paths, the files store's)
                raise ConfigError(f"backend {cls.NAME!r}: {scheme!r} is not a URL scheme (a letter, then letters, "
                                  "digits, '+', '-' or '.'; two characters at least)")
            self._claim(self.schemes, scheme.lower(), cls, "URL scheme", info)
        info.backends.append(cls.NAME)

    def _add_scheduler(self, cls: Any, info: PluginInfo) -> None:
        cls._schedy_plugin = info.name
        self._claim(self.schedulers, cls.SCHEDULER_NAME, cls, "scheduler", info)
        for alias in getattr(cls, "SCHEDULER_ALIASES", ()):
            self._claim(self.schedulers, alias, cls, "scheduler", info)
        if getattr(cls, "CLI_NAME", None):
            self._claim(self.cli_schedulers, cls.CLI_NAME, cls, "scheduler command-line name", info)
        if getattr(cls, "PARAMS_SCHEMA", None) is not None:  # ({} and [] are broken schemas, not none)
            _register_params_schema(cls)
        info.schedulers.append(cls.SCHEDULER_NAME)

    def scheduler(self, name: str) -> type:
        """The experiment class whose wire name is ``name``."""
        try:
            return self.schedulers[name]
        except KeyError:
            known = ", ".join(sorted(self.schedulers))
            raise ConfigError(f"no installed plugin provides scheduler {name!r} (known: {known})") from None

    def backend_for(self, url: str) -> Any:
        """The backend class that opens ``url``."""
        scheme = _scheme(url)
        try:
            return self.schemes[scheme]
        except KeyError:
            known = ", ".join(sorted(f"{s}://" for s in self.schemes if s))
            raise ConfigError(f"no installed backend opens {url!r} (known: {known}, or a directory path)") from None

    def register_commands(self, cli: Any) -> None:
        """Let every plugin add its commands to ``cli``, recording which plugin added which."""
        for impl in self.pm.hook.register_commands.get_hookimpls():
            info = self.plugins[self.pm.get_name(impl.plugin)]
            commands, groups = list(cli.registered_commands), list(cli.registered_groups)
            try:
                impl.function(cli)
            except Exception as e:
                if info.builtin:
                    raise
                cli.registered_commands[:], cli.registered_groups[:] = commands, groups  # none of its commands
                warnings.warn(f"plugin {info.name!r}: its commands are skipped: its register_commands failed: {e}", stacklevel=2)
                continue
            taken = _command_names(commands, groups)
            added = _command_names(cli.registered_commands[len(commands):], cli.registered_groups[len(groups):])
            clashes = sorted({n for n in added if n in taken or added.count(n) > 1})
            if clashes:
                cli.registered_commands[:], cli.registered_groups[:] = commands, groups
                message = (f"plugin {info.name!r}: its commands are skipped: {', '.join(clashes)} is taken "
                           "(a command of Schedy's or of another plugin)")
                if info.builtin:
                    raise DuplicateNameError(message)
                warnings.warn(message, stacklevel=2)
                continue
            info.commands = sorted(added)


def _command_names(commands: list, groups: list) -> list[str]:
    """The names on the command line of typer commands and groups, as typer gives them:
    a command's own name, else its function's (``my_cmd`` is ``my-cmd``), a group's name."""
    from typer.main import get_command_name

    names = []
    for command in commands:
        if isinstance(command.name, str):
            names.append(command.name)
        elif command.callback is not None:
            names.append(get_command_name(command.callback.__name__))
    for group in groups:
        name = group.name if isinstance(group.name, str) else getattr(group.typer_instance.info, "name", None)
        if isinstance(name, str):
            names.append(name)
    return names


#: A URL scheme (RFC 3986), two characters at least: "C://..." is a Windows path.
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+")


def _scheme(url: str) -> str:
    head, sep, _ = url.partition("://")
    if sep and _SCHEME.fullmatch(head):
        return head.lower()
    if url.startswith("file:"):
        return "file"
    return ""


def _version(dist_name: str | None) -> str | None:
    if not dist_name:
        return None
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist_name)
    except PackageNotFoundError:
        return None


def _load_entry_points(pm: pluggy.PluginManager, infos: dict[str, PluginInfo]) -> None:
    from importlib.metadata import entry_points

    wanted = os.environ.get("SCHEDY_PLUGINS")
    allowed = None if wanted is None else {n.strip() for n in wanted.split(",") if n.strip()}
    for ep in entry_points(group="schedy"):
        if allowed is not None and ep.name not in allowed:
            continue
        dist = getattr(ep, "dist", None)
        if pm.has_plugin(ep.name):
            known = infos.get(ep.name)
            if known is not None and dist is not None and known.distribution != dist.name:
                warnings.warn(f"schedy plugin {ep.name!r} of {dist.name} was skipped: "
                              f"{known.distribution or 'schedy'} has a plugin of that name", stacklevel=2)
            continue  # (the same distribution found twice on the path: loaded once)
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as e:  # a broken plugin must not break schedy
            warnings.warn(f"schedy plugin {ep.name!r} failed to load and was skipped: {e}", stacklevel=2)
            continue
        try:
            pm.check_pending()  # a hook no spec names (a misspelt one): this plugin's, the others passed
        except pluggy.PluginValidationError as e:
            pm.unregister(name=ep.name)
            warnings.warn(f"schedy plugin {ep.name!r} was skipped: {e}", stacklevel=2)
            continue
        infos[ep.name] = PluginInfo(ep.name, dist.name if dist else None, builtin=False)


_REGISTRY: Registry | None = None


def registry() -> Registry:
    """The process-wide registry (plugins load on first use)."""
    global _REGISTRY
    if _REGISTRY is None:
        pm = pluggy.PluginManager("schedy")
        pm.add_hookspecs(hookspecs)
        infos: dict[str, PluginInfo] = {}
        for module_name in BUILTIN_PLUGINS:
            pm.register(importlib.import_module(module_name), name=module_name)
            infos[module_name] = PluginInfo(module_name, "schedy", builtin=True)
        if not os.environ.get("SCHEDY_NO_ENTRY_POINTS"):
            _load_entry_points(pm, infos)
        pm.check_pending()
        _REGISTRY = Registry(pm, infos)
    return _REGISTRY


def register_plugin(plugin: object, name: str) -> None:
    """Register a plugin object at run time (tests, notebooks) and rebuild the registry."""
    reg = registry()
    reg.pm.register(plugin, name=name)
    reg.plugins[name] = PluginInfo(name, None, builtin=False)
    try:
        reg.pm.check_pending()  # a hook no spec names (a misspelt one)
        reset(reg.pm, reg.plugins)
    except Exception:
        # Nothing of it is kept: later registrations would fail on it again.
        reg.pm.unregister(name=name)
        reg.plugins.pop(name, None)
        reset(reg.pm, reg.plugins)
        raise


def unregister_plugin(name: str) -> None:
    """Undo :func:`register_plugin`."""
    reg = registry()
    reg.pm.unregister(name=name)
    reg.plugins.pop(name, None)
    reset(reg.pm, reg.plugins)


def reset(pm: pluggy.PluginManager | None = None, infos: dict | None = None) -> None:
    """Rebuild the registry (from ``pm`` if given, else from scratch on next use)."""
    global _REGISTRY
    if pm is None:
        _REGISTRY = None
        return
    for info in infos.values():
        info.backends, info.schedulers, info.commands = [], [], []
    _REGISTRY = Registry(pm, infos)


