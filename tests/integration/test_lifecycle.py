"""Start-up, shutdown, crash and restart of the real `caxton-actors run`."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from caxton_actors.engine.messages import Packet
from caxton_actors.swim.messages import Gossip, Left
from caxton_actors.wire.channel import Channel
from caxton_actors.wire.codec import encode
from caxton_actors.wire.keyring import Keyring, generate_key, parse_key
from tests.integration.conftest import StatsdListener, free_port, start_node


def _run_cli(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "caxton_actors", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--http-bind", "127.0.0.1:99999"], "--http-bind"),
        (["--node-name", "bad name!"], "--node-name"),
        (["--sqlite-path", "/no/such/dir/state.db"], "--sqlite-path"),
        (["--config", "missing.yaml"], "missing.yaml"),
        # Gossip on every interface without keys: secure by default.
        (["--gossip-enabled", "true", "--gossip-bind", "0.0.0.0:0"], "gossip.keys"),
        (["--gossip-enabled", "true", "--gossip-keys", "c2hvcnQ="], "32 random bytes"),
    ],
)
def test_invalid_config_stops_startup_with_one_line_and_status_2(
    tmp_path: Path, args: list[str], words: str
) -> None:
    result = _run_cli(tmp_path, "run", *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert words in lines[0]
    assert list(tmp_path.iterdir()) == []  # no database file was created


def test_invalid_env_value_names_the_variable(tmp_path: Path) -> None:
    env = {**os.environ, "CAXTON_GOSSIP_SEEDS": "caxton-1:notaport"}
    result = _run_cli(tmp_path, "run", env=env)
    assert result.returncode == 2
    assert "CAXTON_GOSSIP_SEEDS" in result.stderr


def test_port_in_use_is_a_clear_start_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run_cli(
            tmp_path, "run", "--http-bind", f"127.0.0.1:{port}", "--sqlite-path", "s.db"
        )
    assert result.returncode == 1
    assert "cannot listen on" in result.stderr


def test_sigterm_drains_commits_and_exits_zero(tmp_path: Path) -> None:
    node = start_node(tmp_path)
    acknowledged: list[str] = []
    twenty_in = threading.Event()

    def writer() -> None:
        for i in range(500):
            try:
                reply = node.request("PUT", f"/agents/w{i}", {"capabilities": ["w"]})
            except OSError:
                return  # the server stopped listening
            if reply.status == 201:
                acknowledged.append(f"w{i}")
            if len(acknowledged) == 20:
                twenty_in.set()

    thread = threading.Thread(target=writer)
    thread.start()
    assert twenty_in.wait(timeout=15)
    assert node.signal(signal.SIGTERM) == 0
    thread.join(timeout=15)
    assert "stopped" in node.log()
    again = start_node(tmp_path)
    stored = again.request("GET", "/agents?capability=w&limit=1000").json["agents"]
    assert set(acknowledged) <= {a["id"] for a in stored}
    again.signal(signal.SIGTERM)


def test_sigkill_loses_no_acknowledged_write_and_restart_serves_it(tmp_path: Path) -> None:
    node = start_node(tmp_path)
    acknowledged = []
    for i in range(100):
        reply = node.request("PUT", f"/agents/k{i}", {"capabilities": ["k", f"n{i % 3}"]})
        assert reply.status == 201
        acknowledged.append(f"k{i}")
    node.request("POST", "/conversations", {"id": "kc", "participants": ["k1", "k2"]})
    node.request(
        "POST", "/correlations", {"correlation_id": "kcor", "sender_id": "k1", "ttl": "1h"}
    )
    node.proc.kill()
    node.proc.wait(timeout=10)

    again = start_node(tmp_path)
    stored = again.request("GET", "/agents?capability=k&limit=1000").json["agents"]
    assert [a["id"] for a in stored] == sorted(acknowledged)
    assert again.request("GET", "/health/gossip").json["agent_count"] == 100
    assert again.request("GET", "/conversations/kc").json["participants"] == ["k1", "k2"]
    assert again.request("GET", "/correlations/kcor").status == 200
    assert again.signal(signal.SIGTERM) == 0


def test_statsd_receives_the_real_datagrams(tmp_path: Path) -> None:
    listener = StatsdListener()
    node = start_node(tmp_path, "--statsd", listener.address)
    node.request("PUT", "/agents/s1", {"capabilities": ["m"]})
    node.request("GET", "/agents/nope")
    lines = listener.collect(until=1.5)
    node.signal(signal.SIGTERM)
    names = {line.split(":", 1)[0] for line in lines}
    assert "caxton_gossip_peers" in names
    assert "caxton_agent_registry_size:1|g" in lines
    assert "caxton_http_requests_total.agent:1|c" in lines
    assert "caxton_http_responses_total.4xx:1|c" in lines
    assert "caxton_http_request_ms.agent" in names
    assert "caxton_hub_loop_lag_ms" in names
    assert "caxton_registry_commit_ms" in names
    assert all("|" in line and ":" in line for line in lines)


def test_gossip_a_node_cannot_open_is_dropped_and_counted_by_reason(tmp_path: Path) -> None:
    listener = StatsdListener()
    node = start_node(
        tmp_path,
        "--statsd",
        listener.address,
        "--gossip-enabled",
        "true",
        "--gossip-bind",
        "127.0.0.1:0",
        "--gossip-keys",
        generate_key(),
    )
    [me] = node.request("GET", "/members").json["members"]
    host, port = me["address"].rsplit(":", 1)
    gossip = (host, int(port))
    packet = Packet("intruder", Gossip(), (Left("itest", 1),))
    wrong = Channel("caxton", Keyring((parse_key(generate_key()),)))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(encode(packet, "caxton"), gossip)  # plaintext to a sealed node
        sock.sendto(wrong.pack(packet), gossip)  # sealed with a key it does not hold
        sock.sendto(b"\x01" + b"\x00" * 10, gossip)  # too short to be sealed
    lines = listener.collect(until=1.5)
    assert node.request("GET", "/health/gossip").json["encrypted"] is True
    [me] = node.request("GET", "/members").json["members"]
    assert me["state"] == "alive"  # the forged goodbye was never read
    node.signal(signal.SIGTERM)
    for reason in ("unencrypted", "auth_failed", "truncated"):
        assert f"caxton_gossip_dropped_total.{reason}:1|c" in lines


def test_python_m_and_console_script_agree(tmp_path: Path) -> None:
    result = _run_cli(tmp_path, "--version")
    assert result.returncode == 0
    assert result.stdout.startswith("caxton-actors ")


def test_default_run_uses_the_documented_file_and_port(tmp_path: Path) -> None:
    """With no flags, no file and no variables: caxton_local.db in the working directory."""
    port = free_port()
    node = start_node(
        tmp_path,
        env={"CAXTON_HTTP_BIND": f"127.0.0.1:{port}"},
        port=port,
        db_name="caxton_local.db",
        test_flags=False,
    )
    assert node.request("PUT", "/agents/d1", {"capabilities": []}).status == 201
    assert node.signal(signal.SIGTERM) == 0
    assert node.db_path.exists()


def test_sigterm_lets_a_request_in_flight_finish(tmp_path: Path) -> None:
    node = start_node(tmp_path)
    body = b'{"capabilities": ["inflight"]}'
    with socket.create_connection(("127.0.0.1", node.port), timeout=10) as sock:
        head = (
            "PUT /agents/inflight HTTP/1.1\r\nHost: localhost\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        sock.sendall(head.encode() + body[:5])
        time.sleep(0.3)  # the server is now reading this request's body
        node.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        sock.sendall(body[5:])
        reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 201"), reply[:100]
    assert node.proc.wait(timeout=15) == 0


def test_a_locked_database_is_a_503_that_says_so(tmp_path: Path) -> None:
    node = start_node(tmp_path)
    holder = sqlite3.connect(node.db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        started = time.monotonic()
        reply = node.request("PUT", "/agents/locked", {"capabilities": []})
        assert reply.status == 503
        assert "database is unavailable: database is locked" in reply.json["description"]
        assert time.monotonic() - started < 4.0
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert node.request("PUT", "/agents/locked", {"capabilities": []}).status == 201
    node.signal(signal.SIGTERM)


def test_a_second_node_on_the_same_database_is_refused(tmp_path: Path) -> None:
    first = start_node(tmp_path)
    second = _run_cli(
        tmp_path,
        "run",
        "--node-name",
        "other",
        "--sqlite-path",
        str(first.db_path),
        "--http-bind",
        f"127.0.0.1:{free_port()}",
    )
    assert second.returncode == 2
    assert "Traceback" not in second.stderr
    [line] = [x for x in second.stderr.splitlines() if x.startswith("caxton-actors:")]
    assert str(first.db_path) in line
    assert "node itest" in line  # who holds it
    assert first.request("GET", "/health").status == 200
    assert first.signal(signal.SIGTERM) == 0


def test_a_node_never_adopts_the_agents_another_node_left_in_its_file(tmp_path: Path) -> None:
    before = start_node(tmp_path, name="before")
    assert before.request("PUT", "/agents/theirs", {"capabilities": ["x"]}).status == 201
    assert before.signal(signal.SIGTERM) == 0
    after = start_node(tmp_path, name="after")  # the same file, under another name
    assert after.request("GET", "/agents?scope=local").json["agents"] == []
    assert after.request("GET", "/agents/theirs").status == 404
    assert after.signal(signal.SIGTERM) == 0
