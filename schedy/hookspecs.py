"""Hooks a Schedy plugin can implement (pluggy project name and entry-point group: ``schedy``).

Built-in backends and schedulers use these hooks exactly as third-party plugins do.

Example plugin module::

    from schedy.hookspecs import hookimpl

    @hookimpl
    def register_schedulers(register):
        register(GridSearch)
"""

import pluggy

hookspec = pluggy.HookspecMarker("schedy")
hookimpl = pluggy.HookimplMarker("schedy")


@hookspec
def register_backends(register):
    """Register storage backends: call ``register(cls)`` for each.

    ``cls`` has ``NAME`` (str), ``SCHEMES`` (URL schemes it opens; ``""`` for plain paths)
    and a classmethod ``open(url, config) -> schedy.storage.Storage``.
    """


@hookspec
def register_schedulers(register):
    """Register schedulers: call ``register(cls)`` for each subclass of ``schedy.Experiment``.

    ``cls.SCHEDULER_NAME`` is its wire name, ``cls.CLI_NAME`` its name in ``schedy add``.
    """


@hookspec
def register_commands(cli):
    """Add commands to the ``schedy`` command line: ``cli`` is its ``typer.Typer`` app."""
