"""Write the command-line reference (docs/cli.md) from the commands' own ``--help``.

Run ``python -m schedy.cli.docgen > docs/cli.md``; a test fails when the file is stale.
Only built-in plugins are loaded, and the help is rendered at a fixed width, so the
output depends on the code alone.
"""

from __future__ import annotations

import contextlib
import io
import os

WIDTH = "100"

INTRO = """# Command-line reference

Generated from `schedy --help` by `python -m schedy.cli.docgen > docs/cli.md`; do not edit by hand.

Exit codes: 0 success, 1 runtime error (missing experiment, conflict, unreachable store,
unreadable stored document, declined `rm`, an address `serve` cannot listen on), 2 invalid
input or usage; `schedy run` stopped by a signal exits 128 + its number (130 for Ctrl-C,
143 for SIGTERM, 129 for SIGHUP). Errors are one line on stderr; `--debug` or
`SCHEDY_DEBUG=1` shows the traceback. Warnings are one line each on stderr too
(`Warning: ...`): a store still out of reach 2 s after a request was sent (its
retries wait about 13 s in all on average against a service, 8 s against S3, before the
error), or a failed heartbeat of a job that `schedy run` runs.

Values of `-p`/`-r` are JSON (`1`, `2.5`, `true`, `'"text"'`, `'["stuff", true, 6]'`,
`'{"key": 42}'`); a bare word that is not JSON (`-p optimizer adam`) is taken as a string.
A number JSON cannot hold is an error in any spelling (`NaN`, `nan`, `inf`, `-Infinity`):
give `null`, or quote it (`'"nan"'`) to store the text.
"""


def _command_paths(command, path=()):
    yield path
    for name, sub in sorted(getattr(command, "commands", {}).items()) if hasattr(command, "commands") else []:
        if not getattr(sub, "hidden", False):
            yield from _command_paths(sub, (*path, name))


def _help(path) -> str:
    from .app import run

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        run([*path, "--help"])
    return "\n".join(line.rstrip() for line in buffer.getvalue().strip("\n").splitlines())


def generate() -> str:
    """The reference as Markdown."""
    os.environ.update(
        {"TERMINAL_WIDTH": WIDTH, "COLUMNS": WIDTH, "NO_COLOR": "1", "TERM": "dumb", "SCHEDY_NO_ENTRY_POINTS": "1"}
    )
    os.environ.pop("FORCE_COLOR", None)
    import typer

    from .app import get_app

    root = typer.main.get_command(get_app())
    sections = [INTRO]
    for path in _command_paths(root):
        title = " ".join(("schedy", *path))
        sections.append(f"## `{title}`\n\n```\n{_help(path)}\n```\n")
    return "\n".join(sections)


if __name__ == "__main__":
    print(generate(), end="")
