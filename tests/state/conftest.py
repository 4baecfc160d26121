"""Real stores for the state tool tests: a directory, this machine's Redis and PostgreSQL,
and a local S3-compatible server (moto's server mode) that the tests start."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from tests.integration.conftest import free_port

REDIS_URL = "redis://127.0.0.1:6379/0"
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def make_bucket(endpoint: str) -> str:
    name = f"caxton-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture(params=["filesystem", "redis", "postgres", "s3"])
def tool_spec(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """A ``{type, config}`` for each backend, isolated per test."""
    unique = uuid.uuid4().hex[:12]
    kind: str = request.param
    if kind == "filesystem":
        return {"type": kind, "config": {"root": str(tmp_path / "state")}}
    if kind == "redis":
        return {"type": kind, "config": {"url": REDIS_URL, "namespace": f"test-{unique}:"}}
    if kind == "postgres":
        return {"type": kind, "config": {"url": POSTGRES_URL, "table": f"state_{unique}"}}
    endpoint = request.getfixturevalue("s3_endpoint")
    return {
        "type": kind,
        "config": {
            "bucket": make_bucket(endpoint),
            "endpoint_url": endpoint,
            "access_key_id": "test",
            "secret_access_key": "test",
        },
    }
