"""``schedy serve``: run the Schedy HTTP service over a store."""

from __future__ import annotations

import ipaddress
import os
from typing import Optional

import typer

from .common import state


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine.

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve_command(
        ctx: typer.Context,
        db: Optional[str] = typer.Option(None, "--db", help="Store the service keeps its data in (files or S3 URL)."),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
        port: int = typer.Option(8421, "--port", min=0, max=65535, help="Port to listen on."),
        workers: int = typer.Option(1, "--workers", min=1, max=256, help="Worker processes."),
        no_auth: bool = typer.Option(False, "--no-auth", help="Accept requests without a token (loopback only)."),
        max_body: int = typer.Option(8 * 1024 * 1024, "--max-body", min=1024, help="Largest request body, in bytes."),
    ) -> None:
        """Serve the store over HTTP: REST API under /api/v1, dashboard at /.

        Clients use SCHEDY_DB=http://HOST:PORT and a token made with `schedy token create`.
        """
        from ..config import open_storage, resolve
        from ..errors import ConfigError
        from ..server.tokens import TokenStore

        url = resolve(db=db or state(ctx).db_url).url
        if no_auth and not is_loopback(host):
            raise ConfigError(f"refusing to listen on {host} without authentication: use a token, or --host 127.0.0.1")
        storage = open_storage(url)
        try:
            tokens = TokenStore(storage)
            if not no_auth and not tokens.list():
                typer.echo(f"Warning: no token exists yet: create one with `schedy token create NAME --db {url}`", err=True)
        finally:
            storage.close()
        import uvicorn

        os.environ["SCHEDY_SERVER_DB"] = url
        os.environ["SCHEDY_SERVER_AUTH"] = "0" if no_auth else "1"
        os.environ["SCHEDY_SERVER_MAX_BODY"] = str(max_body)
        typer.echo(f"Serving {url} on http://{host}:{port} ({'no authentication' if no_auth else 'token authentication'})", err=True)
        uvicorn.run(
            "schedy.server.app:app_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
            timeout_graceful_shutdown=10,
        )
