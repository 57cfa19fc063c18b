"""``schedy plugins``: what plugins are loaded and what they register."""

from __future__ import annotations

import json

import typer


def register(app: typer.Typer) -> None:
    @app.command("plugins")
    def plugins_command(
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """List loaded plugins with their versions and what they register."""
        from ..plugins import registry

        infos = [info.as_dict() for info in registry().plugins.values()]
        if as_json:
            typer.echo(json.dumps(infos, indent=2))
            return
        for info in infos:
            parts = [f"{kind}: {', '.join(info[kind])}" for kind in ("backends", "schedulers", "commands") if info[kind]]
            origin = "built-in" if info["builtin"] else "third-party"
            typer.echo(f"{info['name']} {info['version'] or ''} ({origin}) {'; '.join(parts)}".replace("  ", " "))
