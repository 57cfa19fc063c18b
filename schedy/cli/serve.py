"""``schedy serve``: run the Schedy HTTP service over a store."""

from __future__ import annotations

import ipaddress
import os
import socket
from typing import Optional

import typer

from ..extras import need
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


def check_listen(host: str, port: int) -> int:
    """Raise ConfigError unless ``host:port`` can be listened on now: an address in use or a
    host name that does not resolve is one line and exit code 1, not the server's own exit.
    Return the port (for port 0, a free one, which the server then takes).

    >>> check_listen("127.0.0.1", 0) > 0
    True
    """
    from ..errors import ConfigError

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as e:
        raise ConfigError(f"cannot listen on {host}: {getattr(e, 'strerror', None) or e}") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
        try:
            probe.bind(address)
        except OSError as e:
            raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
        return probe.getsockname()[1]


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve_command(
        ctx: typer.Context,
        db: Optional[str] = typer.Option(None, "--db", help="Store the service keeps its data in (files or S3 URL)."),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
        port: int = typer.Option(8421, "--port", min=0, max=65535, help="Port to listen on (0: a free one, printed)."),
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

        uvicorn = need("uvicorn", "server", "schedy serve")
        need("starlette", "server", "schedy serve")
        url = resolve(db=state(ctx).db_url if db is None else db).url
        if no_auth and not is_loopback(host):
            raise ConfigError(f"refusing to listen on {host} without authentication: use a token, or --host 127.0.0.1")
        port = check_listen(host, port)  # (--port 0: the free port found, shown below)
        storage = open_storage(url)
        try:
            tokens = TokenStore(storage)
            if not no_auth and not tokens.list():
                typer.echo(f"Warning: no token exists yet: create one with `schedy token create NAME --db {url}`", err=True)
        finally:
            storage.close()

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
