"""The Schedy service as an ASGI app on Starlette (served by uvicorn: ``schedy serve``).

Routing is done here on the *raw* request path: Starlette decodes ``%2F`` before
routing, which would split an experiment named ``a/b`` into two segments. Each raw
segment is percent-decoded on its own, so any Unicode name (``/``, ``..``, ``%``,
spaces) reaches the handlers intact.

Example:
    >>> from starlette.testclient import TestClient  # doctest: +SKIP
    >>> client = TestClient(create_app(str(tmp_path), auth=False))  # doctest: +SKIP
    >>> client.get("/api/v1/health").json()["status"]  # doctest: +SKIP
    'ok'
"""

from __future__ import annotations

import contextlib
import logging
import os
from urllib.parse import parse_qsl, unquote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from .. import jsonio
from ..config import open_storage
from ..errors import ConfigError, SchedyError, ValidationError
from ..names import check_name
from ..storage import IndexedStorage
from . import api
from .tokens import TokenStore, parse_bearer

log = logging.getLogger("schedy.server")

#: Largest request body accepted, in bytes (a job with 1000 history entries fits easily).
MAX_BODY = 8 * 1024 * 1024


class _TooLarge(Exception):
    pass


def _json_response(reply: api.Reply) -> Response:
    headers = {"ETag": api.quote_etag(reply.etag)} if reply.etag else {}
    if reply.body is None:
        return Response(status_code=reply.status, headers=headers)
    return Response(jsonio.dumps(reply.body), status_code=reply.status, headers=headers, media_type="application/json")


def _error(status: int, name: str, message: str, headers: dict | None = None) -> Response:
    return JSONResponse(api.error_body(name, message, status), status_code=status, headers=headers)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


class _NoSniff:
    """Adds ``X-Content-Type-Options: nosniff`` to every response: a JSON answer that
    echoes a name is never read as HTML by a browser."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_header(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"x-content-type-options", b"nosniff")]}
            await send(message)

        await self.app(scope, receive, send_with_header)


def _segments(raw_path: bytes) -> list[str]:
    """The decoded segments after /api/v1 of a raw path; ValidationError on bad encoding."""
    text = raw_path.decode("ascii", errors="strict")
    rest = text[len(api.API_PREFIX) + 1 :]
    try:
        return [unquote(part, errors="strict") for part in rest.split("/")]
    except UnicodeDecodeError:
        raise ValidationError("the path is not percent-encoded UTF-8") from None


def _closing(storage):
    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        storage.close()

    return lifespan


def create_app(db_url: str, auth: bool = True, max_body: int = MAX_BODY) -> Starlette:
    """The service over the store at ``db_url``; with ``auth`` every route but health needs a token."""
    storage = open_storage(db_url)
    if not isinstance(storage, IndexedStorage):
        raise ConfigError(f"the service stores through a files or S3 store, not {db_url}")
    handlers = api.API(storage)
    tokens = TokenStore(storage)
    openapi_doc: dict | None = None

    async def dispatch(request: Request) -> Response:
        nonlocal openapi_doc
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        raw_path = raw_path.split(b"?", 1)[0]
        try:
            segments = _segments(raw_path)
        except (UnicodeDecodeError, ValidationError):
            return _error(400, "ValidationError", "the path is not percent-encoded UTF-8")
        if segments != ["health"] and auth:
            token = parse_bearer(request.headers.get("authorization"))
            try:
                name = await run_in_threadpool(tokens.verify, token) if token else None
            except SchedyError as e:  # the store holding the tokens failed
                return _error(api.status_of(e), type(e).__name__, str(e))
            if name is None:
                message = "a valid token is needed (Authorization: Bearer <token>)" if token is None else "the token is not valid"
                return _error(401, "AuthenticationError", message, {"WWW-Authenticate": "Bearer"})
            request.state.token_name = name
        if segments == ["openapi.json"] and request.method == "GET":
            if openapi_doc is None:
                from .openapi import build

                openapi_doc = build()
            return JSONResponse(openapi_doc)
        handler_name, params, allowed = api.match(request.method, segments)
        if handler_name is None:
            if allowed:
                return _error(405, "MethodNotAllowed", f"{request.method} is not allowed here", {"Allow": ", ".join(allowed)})
            return _error(404, "NotFound", f"no such route: {request.url.path}")
        try:
            for param in params:
                check_name("name in the path", param)
            body = await _read_body(request, max_body)
        except ValidationError as e:
            return _error(400, "ValidationError", str(e))
        except _TooLarge:
            return _error(413, "RequestTooLarge", f"the request body is larger than {max_body} bytes")
        call = api.Call(
            params=params,
            query=dict(parse_qsl(request.url.query, keep_blank_values=True)),
            headers={k.lower(): v for k, v in request.headers.items() if k.lower() in ("if-match", "if-none-match")},
            body=body,
        )
        try:
            reply = await run_in_threadpool(api.call_handler, handlers, handler_name, call)
        except Exception:  # a bug or a broken store: log it, answer a JSON 500
            log.exception("%s %s failed", request.method, request.url.path)
            return _error(500, "ServerError", "internal error (logged by the service)")
        return _json_response(reply)

    async def dashboard(request: Request) -> Response:
        from .dashboard import HEADERS, PAGE

        return HTMLResponse(PAGE, headers=HEADERS)

    async def unrouted(request: Request, exc: Exception) -> Response:
        # Starlette's path converter does not match a decoded newline: such API paths still
        # go through dispatch (auth, JSON errors); anything else is a JSON 404.
        if request.scope.get("raw_path", b"").startswith(api.API_PREFIX.encode() + b"/"):
            return await dispatch(request)
        return _error(404, "NotFound", f"no such route: {request.url.path}")

    async def not_allowed(request: Request, exc: Exception) -> Response:
        # A method no route takes (TRACE, say): API paths go through dispatch, which
        # checks the token and names the methods of that very path; the dashboard's JSON
        # error names its own.
        if request.scope.get("raw_path", b"").startswith(api.API_PREFIX.encode() + b"/"):
            return await dispatch(request)
        allow = (getattr(exc, "headers", None) or {}).get("Allow", "GET, HEAD")
        allow = ", ".join(sorted(method.strip() for method in allow.split(",")))  # Starlette's come from a set
        return _error(405, "MethodNotAllowed", f"{request.method} is not allowed here", {"Allow": allow})

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
    app = Starlette(
        middleware=[Middleware(_NoSniff)],
        routes=[
            Route("/", dashboard, methods=["GET"]),
            Route(api.API_PREFIX + "/{rest:path}", dispatch, methods=methods),
        ],
        exception_handlers={404: unrouted, 405: not_allowed},
        lifespan=_closing(storage),
    )
    app.state.storage = storage
    return app


def app_from_environment() -> Starlette:
    """The app ``schedy serve`` runs in each uvicorn worker (settings passed through the environment)."""
    return create_app(
        os.environ["SCHEDY_SERVER_DB"],
        auth=os.environ.get("SCHEDY_SERVER_AUTH", "1") == "1",
        max_body=int(os.environ.get("SCHEDY_SERVER_MAX_BODY", MAX_BODY)),
    )
