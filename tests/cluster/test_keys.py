"""Encrypted gossip on real processes: a sealed cluster, and a key rotation with the CLI."""

from __future__ import annotations

import signal
from pathlib import Path

from caxton_actors.wire.keyring import fingerprint, generate_key, load_keyring, parse_key
from tests.cluster.conftest import Cluster, cli, wait_until

NAMES = {"n0", "n1", "n2"}


def _sealed_cluster(tmp_path: Path, key: str) -> Cluster:
    cluster = Cluster(tmp_path)
    for i in range(3):
        cluster.start(f"n{i}", ["n0"] if i else [], "--gossip-keys", key)
    cluster.wait_converged()
    return cluster


def _keys(cluster: Cluster, *args: str) -> str:
    http = f"127.0.0.1:{cluster.nodes['n0'].port}"
    done = cli("keys", *args, "--http", http)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _listed(cluster: Cluster) -> dict[str, tuple[int, int]]:
    """``keys list`` as {fingerprint: (members holding it, members sealing with it)}."""
    rows = [line.split() for line in _keys(cluster, "list").splitlines()[2:]]
    return {row[0]: (int(row[1]), int(row[2])) for row in rows}


def test_a_key_rotation_reaches_every_member_and_nobody_is_ever_suspected(
    tmp_path: Path,
) -> None:
    old, new = generate_key(), generate_key()
    cluster = _sealed_cluster(tmp_path, old)
    try:
        assert cluster.nodes["n1"].request("GET", "/members").json["encrypted"] is True
        assert cluster.nodes["n2"].request("GET", "/health/gossip").json["encrypted"] is True
        assert "3 of 3 members acknowledged" in _keys(cluster, "install", new)
        listed = _listed(cluster)
        assert listed[fingerprint(parse_key(new))] == (3, 0)  # installed on 3, primary on 0
        assert listed[fingerprint(parse_key(old))] == (3, 3)
        assert "3 of 3 members acknowledged" in _keys(cluster, "use", new)
        assert "3 of 3 members acknowledged" in _keys(cluster, "remove", old)
        for name in NAMES:  # every node keeps the rotated keys beside its database
            kept = load_keyring(tmp_path / f"{name}.db.keyring")
            assert kept is not None
            assert kept.keys == (parse_key(new),)
        # Gossip goes on under the new key alone: a restarted node (still configured
        # with the old key) comes back with the kept one and rejoins.
        cluster.nodes["n2"].proc.kill()
        cluster.nodes["n2"].proc.wait(timeout=10)
        cluster.start("n2", ["n0"], "--gossip-keys", old)
        cluster.wait_converged()
        for observer, member in (("n0", "n1"), ("n1", "n0"), ("n2", "n0"), ("n2", "n1")):
            assert not cluster.declared(observer, member, "suspect")  # only n2 ever was
    finally:
        cluster.stop_all()


def test_removing_the_primary_key_is_refused(tmp_path: Path) -> None:
    key = generate_key()
    cluster = _sealed_cluster(tmp_path, key)
    try:
        done = cli("keys", "remove", key, "--http", f"127.0.0.1:{cluster.nodes['n0'].port}")
        assert done.returncode != 0
        assert "cannot remove the primary key" in done.stderr
        assert _listed(cluster) == {fingerprint(parse_key(key)): (3, 3)}
    finally:
        cluster.stop_all()


def test_a_node_down_through_a_rotation_takes_the_new_keys_when_it_comes_back(
    tmp_path: Path,
) -> None:
    old, new = generate_key(), generate_key()
    cluster = _sealed_cluster(tmp_path, old)
    try:
        assert cluster.nodes["n2"].signal(signal.SIGTERM) == 0  # down: left, not dead
        wait_until(lambda: cluster.view("n0").get("n2") == "left", 10, "n2 left")
        assert "2 of 2 members acknowledged" in _keys(cluster, "install", new)
        assert "2 of 2 members acknowledged" in _keys(cluster, "use", new)
        # n2 comes back sealing with the old key, which the others still hold: they
        # answer it in that key, with their newer keyring.
        cluster.start("n2", ["n0"], "--gossip-keys", old)
        cluster.wait_converged()
        kept = load_keyring(tmp_path / "n2.db.keyring")
        assert kept is not None
        assert kept.keys[0] == parse_key(new)
        assert "took a member's newer keys" in cluster.nodes["n2"].log()
        assert "3 of 3 members acknowledged" in _keys(cluster, "remove", old)
        for name in NAMES:
            assert cluster.nodes[name].request("GET", "/health/gossip").json["peer_count"] == 2
    finally:
        cluster.stop_all()
