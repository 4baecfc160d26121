"""State tool calls through the node's HTTP API, against the backend's own client.

One node with a tool per backend (a directory, this machine's Redis and PostgreSQL, an S3
server in moto's server mode, and the Redis tool again behind our MCP server on stdio).
For each: ``--calls`` stores then retrieves of a small JSON value, one at a time on one
kept-open connection (``PUT``/``GET /agents/{id}/state/{key}``), then the same keys
straight through the backend's own client from this process (redis-py, SQLAlchemy over
psycopg, the file system, boto3). The ratio is what the node adds: HTTP, the actor hop,
the worker thread, scoping and validation.

Run: python -m bench.state [--calls 1000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import yaml
from moto.server import ThreadedMotoServer

from bench.common import table
from caxton_actors.state.backends import open_backend
from caxton_actors.state.contract import Backend, scope
from tests.integration.conftest import free_port, start_node
from tests.state.conftest import POSTGRES_URL, REDIS_URL, make_bucket

VALUE = {"step": 42, "plan": ["search", "summarise", "reply"], "done": False}


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _timed(samples: list[float], call: Callable[[], Any]) -> None:
    started = time.perf_counter()
    call()
    samples.append(time.perf_counter() - started)


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f} µs"


def _tools(workdir: Path, endpoint: str) -> dict[str, dict[str, Any]]:
    unique = uuid.uuid4().hex[:8]
    redis = {"url": REDIS_URL, "namespace": f"b-{unique}:"}
    serve = [sys.executable, "-m", "caxton_actors", "state-tool", "serve", "--backend", "redis"]
    return {
        "filesystem": {"type": "filesystem", "config": {"root": str(workdir / "files")}},
        "redis": {"type": "redis", "config": redis},
        "postgres": {
            "type": "postgres",
            "config": {"url": POSTGRES_URL, "table": f"bench_{unique}"},
        },
        "s3": {
            "type": "s3",
            "config": {
                "bucket": make_bucket(endpoint),
                "endpoint_url": endpoint,
                "access_key_id": "test",
                "secret_access_key": "test",
            },
        },
        "mcp-redis": {
            "type": "mcp",
            "config": {"command": [*serve, "--backend-config", json.dumps(redis)]},
        },
    }


def _through_api(port: int, agent: str, calls: int) -> tuple[list[float], list[float]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body, headers = json.dumps(VALUE), {"Content-Type": "application/json"}

    def put(key: str) -> None:
        conn.request("PUT", f"/agents/{agent}/state/{key}", body, headers)
        response = conn.getresponse()
        response.read()
        assert response.status == 204, response.status

    def get(key: str) -> None:
        conn.request("GET", f"/agents/{agent}/state/{key}")
        assert json.loads(conn.getresponse().read()) == VALUE

    put("warm")  # opens the tool: connects, creates the table, starts the MCP server
    puts: list[float] = []
    gets: list[float] = []
    for i in range(calls):
        _timed(puts, partial(put, f"checkpoints/{agent}/v{i}"))
        _timed(gets, partial(get, f"checkpoints/{agent}/v{i}"))
    conn.close()
    return puts, gets


def _direct(spec: dict[str, Any], agent: str, calls: int) -> tuple[list[float], list[float]]:
    backend: Backend = open_backend(spec["type"], spec["config"], 10.0)
    data = json.dumps(VALUE).encode()
    puts: list[float] = []
    gets: list[float] = []
    for i in range(calls):
        key = f"{scope(agent)}direct/v{i}"
        _timed(puts, partial(backend.put, key, data))
        _timed(gets, partial(backend.get, key))
    backend.close()
    return puts, gets


def _rows(name: str, api: tuple[list[float], ...], direct: tuple[list[float], ...]) -> list[Any]:
    rows = []
    for i, call in enumerate(("store", "retrieve")):
        row = [name, call, _us(_percentile(api[i], 0.5)), _us(_percentile(api[i], 0.99))]
        if direct:
            ratio = _percentile(api[i], 0.5) / _percentile(direct[i], 0.5)
            row += [_us(_percentile(direct[i], 0.5)), _us(_percentile(direct[i], 0.99))]
            row.append(f"{ratio:.1f}x")
        else:
            row += ["-", "-", "-"]
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args(argv)
    print(f"reproduce: {sys.executable} -m bench.state {' '.join(argv or sys.argv[1:])}")
    workdir = Path(tempfile.mkdtemp(prefix="bench-state-"))
    s3_port = free_port()
    s3 = ThreadedMotoServer(ip_address="127.0.0.1", port=s3_port, verbose=False)
    s3.start()
    tools = _tools(workdir, f"http://127.0.0.1:{s3_port}")
    config = {"caxton_config": {"state_tools": tools, "state_timeout": "10s"}}
    (workdir / "caxton.yaml").write_text(yaml.safe_dump(config))
    node = start_node(workdir, "--config", str(workdir / "caxton.yaml"))
    rows = []
    try:
        for name, spec in tools.items():
            agent = f"bench-{name}"
            body = {"capabilities": [], "state_tool": name}
            assert node.request("PUT", f"/agents/{agent}", body).status in (200, 201)
            api = _through_api(node.port, agent, args.calls)
            direct = _direct(spec, agent, args.calls) if spec["type"] != "mcp" else ()
            rows += _rows(name, api, direct)
            print(table(HEADERS, rows[-2:]), flush=True)
    finally:
        node.proc.terminate()
        node.proc.wait(timeout=30)
        s3.stop()
    print(f"\n{args.calls} calls each, one at a time:")
    print(table(HEADERS, rows))


HEADERS = ["tool", "call", "HTTP p50", "HTTP p99", "direct p50", "direct p99", "p50 ratio"]

if __name__ == "__main__":
    main()
