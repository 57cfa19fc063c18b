"""A real S3-protocol server (moto) on loopback for the tests of the s3 backend.

One server process per session (see ``moto_s3.py``: single-threaded, so conditional
writes are linearizable); every test gets a fresh bucket, and the environment points
boto3 at the server through ``AWS_ENDPOINT_URL`` with dummy credentials.
``faulty_s3_server`` is a second server that fails a share of requests.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


class MotoServer:
    """A ``moto_s3`` server process; ``endpoint`` is its loopback URL."""

    def __init__(self, log_dir: Path, faults: float = 0.0, seed: int = 0, ignore_conditions: bool = False):
        args = [sys.executable, "-m", "tests.backends.moto_s3", "--faults", str(faults), "--seed", str(seed)]
        if ignore_conditions:
            args.append("--ignore-conditions")
        self.log = open(log_dir / f"moto-{faults}-{ignore_conditions}.log", "ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SCHEDY_"))}
        self.process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=self.log, env=env)
        line = self.process.stdout.readline()
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError("the moto S3 server did not start")
        self.endpoint = f"http://127.0.0.1:{int(line)}"

    def new_bucket(self) -> str:
        import boto3
        from botocore.config import Config

        name = f"t-{uuid.uuid4().hex[:20]}"
        client = boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id="testing",
            aws_secret_access_key="testing", config=Config(retries={"mode": "standard", "max_attempts": 20}),
        )
        client.create_bucket(Bucket=name)
        client.close()
        return name

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)
        self.log.close()


def point_boto3_at(monkeypatch, endpoint: str, tmp_path: Path) -> None:
    """Environment of a test (and the processes it starts) talking to ``endpoint``."""
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """The session's moto S3 server."""
    server = MotoServer(tmp_path_factory.mktemp("moto"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def faulty_s3_server(tmp_path_factory):
    """A moto S3 server failing one request in eight (503, 500, dropped connections)."""
    server = MotoServer(tmp_path_factory.mktemp("moto-faults"), faults=0.125, seed=5)
    yield server
    server.stop()


@pytest.fixture
def s3_store_url(s3_server, monkeypatch, tmp_path):
    """A fresh bucket on the session's server, under a prefix."""
    point_boto3_at(monkeypatch, s3_server.endpoint, tmp_path)
    return f"s3://{s3_server.new_bucket()}/schedy"
