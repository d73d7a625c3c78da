"""A local S3-compatible server for the S3 tests: moto's server mode on a loopback port.

``moto.server.ThreadedMotoServer`` answers the S3 HTTP API (it is a real HTTP server; etlrun
reaches it through s3fs/aiobotocore exactly as it would reach AWS or MinIO, with the endpoint
given as ``?endpoint_url=`` in the URL). One server per test session; each test gets its own
bucket and the credentials in the environment, as a user would set them. Without moto the tests
skip with the reason, unless ``ETLRUN_REQUIRE_SERVERS=1`` (then they fail).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest


@dataclass
class S3Server:
    endpoint: str
    bucket: str

    def url(self, path: str = "") -> str:
        return f"s3://{self.bucket}/{path}?endpoint_url={self.endpoint}"

    def fs(self) -> Any:
        import s3fs

        return s3fs.S3FileSystem(
            client_kwargs={"endpoint_url": self.endpoint}, skip_instance_cache=True
        )

    def read(self, path: str) -> bytes:
        data: bytes = self.fs().cat_file(f"{self.bucket}/{path}")
        return data

    def find(self, prefix: str = "") -> list[str]:
        """Every object under ``prefix``, as paths relative to the bucket."""
        found = self.fs().find(f"{self.bucket}/{prefix}")
        return sorted(str(p).removeprefix(f"{self.bucket}/") for p in found)


def _missing(reason: str) -> None:
    if os.environ.get("ETLRUN_REQUIRE_SERVERS") == "1":
        pytest.fail(f"{reason} (ETLRUN_REQUIRE_SERVERS=1)")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "etlrun-test",
    "AWS_SECRET_ACCESS_KEY": "etlrun-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 for the session: its endpoint URL."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        _missing('no moto server (pip install "moto[server]")')
    try:
        import s3fs  # noqa: F401
    except ImportError:
        _missing('no s3fs (pip install "etlrun[s3]")')
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_server(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """A fresh bucket on the session's S3 server, and its credentials in the environment."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    server = S3Server(s3_endpoint, f"etlrun-{uuid.uuid4().hex[:12]}")
    server.fs().mkdir(server.bucket)
    return server
