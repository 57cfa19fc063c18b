"""``schedy add NAME SCHEDULER [ARGS...]``: create an experiment.

The SCHEDULER word is a scheduler class's ``CLI_NAME`` and its ARGS go to that class's
``from_cli``: schedulers from plugins get their ``add`` form without changes here.
"""

from __future__ import annotations

from typing import Optional

import typer

from .common import state


def _forms() -> str:
    from ..plugins import registry

    lines = [f"  schedy add NAME {cls.CLI_USAGE or name}" for name, cls in sorted(registry().cli_schedulers.items())]
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    forms = _forms()

    @app.command(
        "add",
        context_settings={"ignore_unknown_options": True},
        epilog=(
            "Forms (one per installed scheduler):\n\n\b\n" + forms + "\n\n"  # \b: no re-wrapping
            "Distributions for random: uniform, loguniform, intuniform, intloguniform "
            "'{\"low\": L, \"high\": H}'; normal '{\"mean\": M, \"std\": S}'; "
            "choice '{\"values\": [...], \"weights\": [...]}'; constant '{\"value\": V}'.\n\n"
            "\b\nExample:\n  schedy add MinimizeRandom random x normal '{\"mean\": 0, \"std\": 5}'"
        ),
    )
    def add_command(
        ctx: typer.Context,
        name: str = typer.Argument(..., help="Name of the new experiment."),
        scheduler: str = typer.Argument(..., help="Scheduler: manual, random, or one from a plugin."),
        args: Optional[list[str]] = typer.Argument(None, metavar="ARGS", help="The scheduler's arguments."),
        status: str = typer.Option("RUNNING", "-s", "--status", help="RUNNING, or DONE (paused: hands out no job)."),
    ) -> None:
        """Create an experiment that SCHEDULER runs."""
        from ..errors import ValidationError
        from ..plugins import registry

        schedulers = registry().cli_schedulers
        cls = schedulers.get(scheduler)
        if cls is None:
            known = "; ".join(f"{n} ({c.CLI_USAGE or n})" for n, c in sorted(schedulers.items()))
            raise ValidationError(f"unknown scheduler {scheduler!r}; installed: {known}")
        experiment = cls.from_cli(name, status, list(args or []))
        state(ctx).db().add_experiment(experiment)
        typer.echo(f"Added experiment {experiment.name} ({experiment.SCHEDULER_NAME}, {experiment.status}).")
