"""A real S3-protocol server for the tests: moto's WSGI app on a loopback port.

Run as ``python -m tests.backends.moto_s3 [--faults RATE] [--seed N]``; it prints the
port it bound, then serves until killed.

Served single-threaded: moto checks a write's condition and then writes with no lock in
between, so a threaded server lets two conditional writers of one key both win. One
request at a time makes its conditional writes linearizable, as S3's are.

``--faults RATE`` fails that share of requests, each in one of these ways: 503 SlowDown
or 500 InternalError before the request is handled, the connection dropped before it
is handled, or dropped (or answered 500) after it was handled: the client cannot tell
whether its write happened.

``--ignore-conditions`` drops the If-Match / If-None-Match headers before moto sees
them, like the gateways that accept conditional writes and silently ignore them.
"""

from __future__ import annotations

import argparse
import faulthandler
import signal
import random
import socket
import sys

FAULTS = ("503-before", "500-before", "drop-before", "drop-after", "500-after")

_ERROR_BODY = (
    '<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
    "<Message>injected fault</Message><RequestId>0</RequestId></Error>"
)


class FaultInjector:
    """WSGI middleware failing a share of requests (see the module docstring)."""

    def __init__(self, app, rate: float, seed: int):
        self.app = app
        self.rate = rate
        self.random = random.Random(seed)
        self.injected = dict.fromkeys(FAULTS, 0)

    def __call__(self, environ, start_response):
        if self.random.random() >= self.rate:
            return self.app(environ, start_response)
        fault = self.random.choice(FAULTS)
        self.injected[fault] += 1
        if fault.endswith("-after"):
            body = b"".join(self.app(environ, lambda status, headers, exc_info=None: None))
            del body
        if fault.startswith("drop"):
            self._drop(environ)
        status, code = ("503 Service Unavailable", "SlowDown") if fault.startswith("503") else (
            "500 Internal Server Error", "InternalError")
        body = _ERROR_BODY.format(code=code).encode()
        start_response(status, [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
        return [body]

    @staticmethod
    def _drop(environ):
        connection = environ["werkzeug.socket"]
        try:
            connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        raise ConnectionResetError("injected: connection dropped")


class IgnoreConditions:
    """WSGI middleware that drops conditional-write headers (a non-conforming store)."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        environ.pop("HTTP_IF_MATCH", None)
        environ.pop("HTTP_IF_NONE_MATCH", None)
        return self.app(environ, start_response)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--faults", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ignore-conditions", action="store_true")
    args = parser.parse_args(argv)
    faulthandler.register(signal.SIGUSR1)  # a stack dump of a stuck server, for debugging

    from moto.server import create_backend_app
    from werkzeug.serving import WSGIRequestHandler, make_server

    class QuietHandler(WSGIRequestHandler):
        def log_request(self, code="-", size="-"):
            pass  # a line per request cost the single-threaded server a few percent; errors still go to the log

    # moto's S3 app itself: its multi-service dispatcher looked up the service again on
    # every request, about a sixth of the server's time under the stress tests.
    app = create_backend_app("s3")
    if args.ignore_conditions:
        app = IgnoreConditions(app)
    if args.faults:
        app = FaultInjector(app, args.faults, args.seed)
    server = make_server("127.0.0.1", 0, app, threaded=False, processes=1, request_handler=QuietHandler)
    print(server.socket.getsockname()[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
