"""The Typer app, built by a factory so that tests (and plugins) get a fresh one.

Errors are converted once, here: a Schedy error is one line on stderr and exit code 1
(2 when the command's input is invalid); a traceback only with ``--debug`` or
``SCHEDY_DEBUG=1``. Warnings that Schedy logs while a command runs (a store out of reach
being retried, a failed heartbeat) are one line each on stderr too.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
import warnings
from typing import Optional

import typer

from .common import State

#: Modules that each add commands with ``register(app)``, in help order.
COMMAND_MODULES = (
    "schedy.cli.add",
    "schedy.cli.push",
    "schedy.cli.list_",
    "schedy.cli.show",
    "schedy.cli.rm",
    "schedy.cli.plugins",
    "schedy.cli.serve",
    "schedy.cli.token",
    "schedy.cli.run",
    "schedy.cli.status",
)

HELP = """Schedy: record experiments and jobs, suggest hyperparameters, keep workers busy.

The store is --db URL, else SCHEDY_DB, else the user config file, else a files store
in the user data directory. URLs: a directory path, file://..., s3://bucket/prefix,
http(s)://host:port."""


# Typer may vendor its own click: reach its exception classes through Typer's public names.
_ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
_UsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"schedy {__version__}")
        raise typer.Exit()


def get_app() -> typer.Typer:
    """Build the ``schedy`` app: built-in commands, then commands plugins register."""
    app = typer.Typer(
        name="schedy",
        help=HELP,
        no_args_is_help=True,
        add_completion=True,
        pretty_exceptions_enable=False,
        # Plain help: formatting it with rich costs more start-up time than the rest of schedy.
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    @app.callback()
    def root(
        ctx: typer.Context,
        db: Optional[str] = typer.Option(None, "--db", help="Store URL (overrides SCHEDY_DB and the config file)."),
        debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors."),
        version: bool = typer.Option(
            False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ) -> None:
        ctx.obj = State(db_url=db, debug=debug or os.environ.get("SCHEDY_DEBUG") == "1")

    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(app)
    from ..plugins import registry

    registry().register_commands(app)
    return app


def _closed_streams_read_as_empty() -> None:
    # A command started with a standard stream closed (`schedy rm E <&-`) finds it None:
    # reading it gives an end of input (rm then takes it for "no"), writing to it is lost.
    for name, mode in (("stdin", "r"), ("stdout", "w"), ("stderr", "w")):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, mode, encoding="utf-8"))


def _debug_wanted(argv: list[str]) -> bool:
    return os.environ.get("SCHEDY_DEBUG") == "1" or "--debug" in argv


def run(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    from ..errors import SchedyError, ValidationError

    argv = sys.argv[1:] if argv is None else list(argv)
    _closed_streams_read_as_empty()
    debug = _debug_wanted(argv)
    try:
        with _logged_to_stderr(debug):
            command = typer.main.get_command(get_app())
            result = command.main(args=argv, prog_name="schedy", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except typer.Exit as e:
        return e.exit_code
    except _UsageError as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # `schedy` alone: its message is the help, kept as it is
            typer.echo(e.format_message(), err=True)
            return e.exit_code
        # One line, like every other error: what is wrong, and where the help is.
        where = f" (see '{e.ctx.command_path} -h')" if e.ctx is not None else ""
        typer.echo(f"Error: {_one_line(e.format_message())}{where}", err=True)
        return e.exit_code
    except _ClickException as e:
        e.show()
        return e.exit_code
    except typer.Abort:
        typer.echo("Aborted.", err=True)
        return 1
    except KeyboardInterrupt:
        typer.echo("Interrupted.", err=True)
        return 130
    except SchedyError as e:
        if debug:
            raise
        typer.echo(f"Error: {_one_line(e)}", err=True)
        return 2 if isinstance(e, ValidationError) else 1
    except OSError as e:
        # A file the command itself reads or runs (a store's own system errors arrive as
        # StorageErrors): what the system said and about which path.
        if debug:
            raise
        where = f": {e.filename}" if e.filename else ""
        typer.echo(f"Error: {_one_line(e.strerror or e)}{where}", err=True)
        return 1
    except Exception as e:
        if debug:
            raise
        typer.echo(f"Error: {type(e).__name__}: {_one_line(e)} (run with --debug for the traceback)", err=True)
        return 1


class _OneLine(logging.Formatter):
    """``Warning: message``, as errors are shown. The traceback of a logged exception only
    with --debug, or for an error (a request the service failed: its operator's lead)."""

    def __init__(self, debug: bool) -> None:
        super().__init__()
        self.debug = debug

    def format(self, record: logging.LogRecord) -> str:
        line = f"{record.levelname.capitalize()}: {' '.join(record.getMessage().split())}"
        if record.exc_info and (self.debug or record.levelno >= logging.ERROR):
            line += "\n" + self.formatException(record.exc_info)
        return line


@contextlib.contextmanager
def _logged_to_stderr(debug: bool):
    """Schedy's log records of WARNING and above, and warnings (a document skipped, a
    plugin not loaded), go to stderr as one line each while a command runs."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(_OneLine(debug))
    logger = logging.getLogger("schedy")
    logger.addHandler(handler)

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        where = f" ({filename}:{lineno})" if debug else ""
        print(f"Warning: {' '.join(str(message).split())}{where}", file=sys.stderr)

    try:
        with warnings.catch_warnings():
            warnings.showwarning = show
            yield
    finally:
        logger.removeHandler(handler)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
