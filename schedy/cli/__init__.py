"""The ``schedy`` command line. See docs/cli.md."""

import sys


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``schedy`` console script."""
    from .app import run

    sys.exit(run(argv))
