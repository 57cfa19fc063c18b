"""A real ``schedy serve`` subprocess for the tests that go through the http backend.

Each test gets a fresh service on a free loopback port, over a fresh files store with
one token (``SCHEDY_TOKEN`` is set for the test). Starting a service takes about a
second, so the next one is started while the current test runs.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from schedy.config import open_storage
from schedy.server.tokens import TokenStore


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """A ``schedy serve`` process over ``store``; ``restart()`` keeps the store and port."""

    def __init__(self, store: str, no_auth: bool = False, workers: int = 1):
        self.store = store
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.no_auth = no_auth
        self.workers = workers
        self.token = None
        if not no_auth:
            storage = open_storage(store)
            self.token = TokenStore(storage).create("tests")
            storage.close()
        self.process: subprocess.Popen | None = None
        self.log_path = os.path.join(os.path.dirname(store), f"serve-{self.port}.log")
        self.log = open(self.log_path, "ab")
        self.up = False

    def start(self) -> "Service":
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDY_")}
        # Its own home and config: a service started ahead for the next test must not read
        # the config files of the test running meanwhile.
        here = os.path.dirname(self.store)
        env.update(HOME=os.path.join(here, "home"), XDG_CONFIG_HOME=os.path.join(here, "config"),
                   XDG_DATA_HOME=os.path.join(here, "data"))
        args = [sys.executable, "-m", "schedy", "serve", "--db", self.store, "--port", str(self.port),
                "--workers", str(self.workers)]
        if self.no_auth:
            args.append("--no-auth")
        self.process = subprocess.Popen(args, env=env, stdout=self.log, stderr=self.log)
        return self

    def wait(self, timeout: float = 60.0) -> "Service":
        deadline = time.monotonic() + timeout
        moves = 3
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                with open(self.log_path, "rb") as log:
                    said = log.read().decode(errors="replace")
                # free_port() gives the port up before serve takes it: another process may
                # have taken it meanwhile. A service never up yet moves to another port.
                if not self.up and moves and "cannot listen on" in said:
                    moves -= 1
                    self.port = free_port()
                    self.url = f"http://127.0.0.1:{self.port}"
                    self.start()
                    continue
                raise RuntimeError(f"schedy serve exited with {self.process.returncode}: {said[-500:]}")
            try:
                with urllib.request.urlopen(self.url + "/api/v1/health", timeout=2) as response:
                    if response.status == 200:
                        self.up = True
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("schedy serve did not start in time")

    def kill(self) -> None:
        """SIGKILL: no chance to finish anything."""
        self.process.kill()
        self.process.wait(30)

    def restart(self) -> None:
        self.start().wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(15)
        self.log.close()


@pytest.fixture(scope="session")
def _service_factory(tmp_path_factory):
    spare: list[Service] = []
    started: list[Service] = []

    def new() -> Service:
        service = Service(str(tmp_path_factory.mktemp("served") / "store")).start()
        started.append(service)
        return service

    def take() -> Service:
        service = spare.pop() if spare else new()
        spare.append(new())  # warm up the next test's service meanwhile
        return service.wait()

    yield take
    for service in started:
        service.stop()


@pytest.fixture
def http_service(_service_factory, monkeypatch):
    """A running service of its own for this test, with SCHEDY_TOKEN set."""
    service = _service_factory()
    monkeypatch.setenv("SCHEDY_TOKEN", service.token)
    yield service
    service.stop()


@pytest.fixture
def http_store_url(http_service):
    return http_service.url
