"""The replicated agent registry on real node processes (properties: tests/sim)."""

from __future__ import annotations

import signal
from concurrent.futures import ThreadPoolExecutor

from tests.cluster.conftest import SIZE, Cluster, cli, wait_until

PER_NODE = 200  # 1,000 agents over 5 nodes


def _digests(cluster: Cluster, exclude: str = "") -> set[tuple[int, str]]:
    answers = set()
    for name, node in cluster.nodes.items():
        if name != exclude and node.proc.poll() is None:
            body = node.request("GET", "/registry/digest").json
            answers.add((body["agents"], body["digest"]))
    return answers


def _register_everywhere(cluster: Cluster) -> None:
    def register(name: str) -> None:
        node = cluster.nodes[name]
        for i in range(PER_NODE):
            body = {"capabilities": [f"skill{i % 4}"]}
            assert node.request("PUT", f"/agents/{name}-a{i}", body).status == 201

    with ThreadPoolExecutor(SIZE) as pool:
        list(pool.map(register, cluster.nodes))


def test_agents_from_every_node_converge_and_route_to_their_owner(cluster: Cluster) -> None:
    _register_everywhere(cluster)
    total = SIZE * PER_NODE
    wait_until(lambda: len(_digests(cluster)) == 1, 30, "one digest at every node")
    assert {agents for agents, _ in _digests(cluster)} == {total}

    n0 = cluster.nodes["n0"]
    page = n0.request("GET", "/agents?capability=skill1&limit=1000").json["agents"]
    assert len(page) == total // 4
    owners = {agent["node_id"] for agent in page}
    assert owners == set(cluster.nodes)
    for agent in page:
        assert agent["route"] == f"http://127.0.0.1:{cluster.nodes[agent['node_id']].port}"
        assert agent["status"] == "active"
    route = n0.request("GET", "/agents/n3-a7/route").json
    assert route == {
        "agent_id": "n3-a7",
        "node_id": "n3",
        "route": f"http://127.0.0.1:{cluster.nodes['n3'].port}",
        "status": "active",
    }
    local = n0.request("GET", "/agents?local=true&limit=1000").json["agents"]
    assert {a["node_id"] for a in local} == {"n0"}
    assert len(local) == PER_NODE
    listed = cli("agents", "--http", f"127.0.0.1:{n0.port}", "--capability", "skill1")
    assert listed.returncode == 0, listed.stderr
    rows = listed.stdout.splitlines()[1:]
    assert len(rows) == total // 4
    assert any(row.split()[:3] == ["n3-a5", "n3", "active"] for row in rows)
    refused = n0.request("DELETE", "/agents/n3-a7")
    assert refused.status == 409
    assert "n3" in refused.json["description"]


def test_a_killed_owners_agents_turn_unreachable_elsewhere(cluster: Cluster) -> None:
    _register_everywhere(cluster)
    wait_until(lambda: len(_digests(cluster)) == 1, 30, "one digest at every node")
    cluster.nodes["n4"].proc.kill()

    def unreachable_everywhere() -> bool:
        return all(
            node.request("GET", "/agents/n4-a3").json["status"] == "unreachable"
            for name, node in cluster.nodes.items()
            if name != "n4"
        )

    wait_until(unreachable_everywhere, 30, "n4's agents unreachable at every other node")
    digest = cluster.nodes["n1"].request("GET", "/registry/digest").json
    assert digest["unreachable"] == PER_NODE


def test_a_restarted_node_answers_from_its_replica_before_it_rejoins(cluster: Cluster) -> None:
    _register_everywhere(cluster)
    wait_until(lambda: len(_digests(cluster)) == 1, 30, "one digest at every node")
    assert cluster.nodes["n2"].signal(signal.SIGTERM) == 0
    # Back with gossip off: it can reach no one, and still knows the whole cluster's agents.
    alone = cluster.start("n2", [], "--gossip-enabled", "false")
    body = alone.request("GET", "/registry/digest").json
    assert body["agents"] == SIZE * PER_NODE
    assert alone.request("GET", "/agents/n4-a9").json["node_id"] == "n4"
