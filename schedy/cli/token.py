"""``schedy token create|list|revoke`` (on the service's store) and ``schedy login`` (on a client)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer

from .common import state


def _token_store(ctx: typer.Context, db: str | None):
    from ..config import open_storage, resolve
    from ..server.tokens import TokenStore

    return TokenStore(open_storage(resolve(db=state(ctx).db_url if db is None else db).url))


def _asked(prompt: str, what: str, hide_input: bool = False) -> str:
    """Asked on a terminal; else one line of standard input (a script piping the token in),
    where an empty line is an error, not a question asked again and again."""
    from ..errors import ValidationError

    if sys.stdin.isatty():
        return typer.prompt(prompt, hide_input=hide_input)
    answer = sys.stdin.readline().strip()
    if not answer:
        raise ValidationError(f"no {what} given: pass it as an argument or option, or on standard input")
    return answer


def _db_option():
    return typer.Option(None, "--db", help="The service's store (files or S3 URL), as given to `schedy serve`.")


def login(url: str, token: str) -> str:
    """Check ``token`` against the service at ``url`` and save both in the user config (mode 0600)."""
    from ..config import original_config_path, read_config, user_config_path
    from ..errors import ConfigError
    from ..plugins import registry

    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"login takes a service URL (http(s)://host:port), not {url!r}")
    storage = registry().backend_for(url).open(url, {"token": token})
    try:
        storage.list_experiments(limit=1)  # raises AuthenticationError for a wrong token
    finally:
        storage.close()
    path = user_config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path = Path(os.path.realpath(path))  # a config kept elsewhere and linked stays where it is
    # The other settings are kept, those of the original client's file too when it is the one
    # in use (the file written here hides it from then on). A file that cannot be read is the
    # user's to fix, not ours to replace.
    kept = path if path.exists() else original_config_path()
    config = read_config(kept) if kept.exists() else {}
    config.update({"db": url, "token": token})
    # Created 0600 from the start: the token is never readable by others, not even briefly.
    # Written aside and renamed: a crash mid-write leaves the old file, not half a new one.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(config, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return str(path)


def register(app: typer.Typer) -> None:
    tokens = typer.Typer(help="Manage the API tokens of a Schedy service (run where its store is reachable).")
    app.add_typer(tokens, name="token")

    @tokens.command("create")
    def create_command(ctx: typer.Context, name: str = typer.Argument(..., help="Name of the token, e.g. a user."),
                       db: Optional[str] = _db_option()) -> None:
        """Make a token and print it: it is shown only this once (only its hash is stored)."""
        typer.echo(_token_store(ctx, db).create(name))

    @tokens.command("list")
    def list_command(ctx: typer.Context, db: Optional[str] = _db_option(),
                     as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """List token names and when they were made."""
        found = _token_store(ctx, db).list()
        if as_json:
            typer.echo(json.dumps(found, indent=2))
            return
        for item in found:
            typer.echo(f"{item['name']}\t{item['created']}")

    @tokens.command("revoke")
    def revoke_command(ctx: typer.Context, name: str = typer.Argument(...), db: Optional[str] = _db_option()) -> None:
        """Delete a token: the service refuses it from then on (within a few seconds on every replica)."""
        _token_store(ctx, db).revoke(name)
        typer.echo(f"Token {name!r} revoked.")

    def _login(url: Optional[str], token: Optional[str]) -> None:
        url = url or _asked("Schedy service URL", "service URL")
        token = token or os.environ.get("SCHEDY_TOKEN") or _asked("Token", "token", hide_input=True)
        path = login(url, token)
        typer.echo(f"Logged in to {url}; saved in {path}.")

    @app.command("login")
    def login_command(
        url: Optional[str] = typer.Argument(None, help="The service, e.g. https://schedy.example.org:8421."),
        token: Optional[str] = typer.Option(None, "--token", help="The token (default: SCHEDY_TOKEN, else asked, or read as a line of standard input that is not a terminal)."),
    ) -> None:
        """Save a service URL and token in the user config, after checking them."""
        _login(url, token)

    @app.command("gen-token")
    def gen_token_command(
        url: Optional[str] = typer.Argument(None, help="The service URL."),
        token: Optional[str] = typer.Option(None, "--token", help="The token (default: SCHEDY_TOKEN, else asked, or read as a line of standard input that is not a terminal)."),
    ) -> None:
        """Alias of `schedy login`."""
        _login(url, token)
