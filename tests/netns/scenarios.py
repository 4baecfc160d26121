"""The pod-network scenarios, run by the tests (which assert) and the benchmark (which
prints the figures): a parallel start, a rolling restart, a partition and its heal.

Every node runs the ``local`` gossip profile (probe every 1 s, suspicion at least 3 s and
at most 18 s, a full-state exchange every 15 s), as :class:`PodNetwork` starts it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from tests.netns.pods import (
    Pod,
    PodNetwork,
    digests_equal,
    missed_goodbyes,
    pod_name,
    register,
    routes_correct,
    sees,
    transitions,
    view_gaps,
    view_whole,
    wait_until,
)

SIZE = 5
AGENTS_PER_NODE = 10
CONVERGE_TIMEOUT = 60.0


@dataclass
class StartResult:
    ready_s: float
    """From the first pod's start until every pod answers /health."""
    whole_s: float
    """From the first pod's start until every pod lists all alive at their addresses."""


def start_all(network: PodNetwork, size: int = SIZE) -> StartResult:
    """Start ``size`` pods at once (each record appears as its pod starts); wait until
    every one lists every one alive at the address its own interface has."""
    began = time.monotonic()
    pods = [network.start(pod_name(i)) for i in range(size)]
    network.wait_ready(pods)
    ready = time.monotonic() - began
    wait_until(lambda: view_whole(pods, pods), CONVERGE_TIMEOUT, f"{size} pods see each other")
    return StartResult(ready, time.monotonic() - began)


def seed_agents(network: PodNetwork, per_node: int = AGENTS_PER_NODE) -> dict[str, str]:
    """Register ``per_node`` agents on every running pod; agent id to owner."""
    owners: dict[str, str] = {}
    for pod in network.running():
        for i in range(per_node):
            agent_id = f"{pod.name}-seed{i}"
            if not register(pod, agent_id):
                raise AssertionError(f"{pod.name} refused {agent_id}")
            owners[agent_id] = pod.name
    return owners


def wait_routes(network: PodNetwork, owners: dict[str, str], what: str) -> float:
    pods = network.running()
    return wait_until(
        lambda: routes_correct(pods, owners, network.pods) and digests_equal(pods),
        CONVERGE_TIMEOUT,
        what,
        poll=0.2,
    )


class Writer:
    """Registers a new agent on every running pod, round after round, in a thread; keeps
    the acknowledged ones (agent id to owner)."""

    def __init__(self, network: PodNetwork, pause: float = 0.5) -> None:
        self.network = network
        self.pause = pause
        self.acknowledged: dict[str, str] = {}
        self.refused = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="writer", daemon=True)

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def snapshot(self) -> dict[str, str]:
        with self._lock:
            return dict(self.acknowledged)

    def _run(self) -> None:
        round_ = 0
        while not self._stop.is_set():
            for pod in list(self.network.pods.values()):
                if not pod.running():
                    continue
                agent_id = f"{pod.name}-w{round_}"
                acknowledged = register(pod, agent_id)
                with self._lock:
                    if acknowledged:
                        self.acknowledged[agent_id] = pod.name
                    else:
                        self.refused += 1
            round_ += 1
            self._stop.wait(self.pause)


@dataclass
class Restart:
    name: str
    old_ip: str
    new_ip: str
    stop_s: float
    """SIGTERM until the process exited (it leaves first)."""
    ready_s: float
    """The new pod's start until it answers /health."""
    whole_s: float
    """The new pod's start until every pod lists all alive at their current addresses."""
    routes_s: float
    """The new pod's start until every pod routes the restarted node's agents to it."""
    outage_s: float
    """SIGTERM to the old process until every view is whole again."""


@dataclass
class RollingResult:
    restarts: list[Restart] = field(default_factory=list)
    acknowledged: dict[str, str] = field(default_factory=dict)
    refused: int = 0
    final_s: float = 0.0
    """After the last restart, until every acknowledged agent routes right everywhere."""
    dead: list[str] = field(default_factory=list)
    """Live nodes some pod declared dead."""
    missed_goodbyes: list[str] = field(default_factory=list)
    """Restarted pods declared dead at the address they left, by a pod that never got
    their goodbye, before it took their new address."""
    suspect: list[str] = field(default_factory=list)


def rolling_restart(network: PodNetwork) -> RollingResult:
    """Restart every pod in turn, highest ordinal first (a StatefulSet's rolling update):
    SIGTERM (the node leaves), then the same name in a new namespace with a new address,
    then wait until every view is whole and every route to it is right before the next;
    agents are registered on every running pod throughout."""
    result = RollingResult()
    owners = seed_agents(network)
    wait_routes(network, owners, "the seeded agents routed everywhere")
    with Writer(network) as writer:
        for index in reversed(range(SIZE)):
            name = pod_name(index)
            result.restarts.append(_restart(network, name, {**owners, **writer.snapshot()}))
    result.acknowledged = {**owners, **writer.snapshot()}
    result.refused = writer.refused
    result.final_s = wait_routes(network, result.acknowledged, "every agent routed right")
    result.missed_goodbyes, result.dead = missed_goodbyes(network)
    result.suspect = transitions(network, "suspect")
    return result


def _restart(network: PodNetwork, name: str, acknowledged: dict[str, str]) -> Restart:
    old_ip = network.pods[name].ip
    term = time.monotonic()
    stop_s = network.stop(name)
    mine = {a: o for a, o in acknowledged.items() if o == name}
    pod = network.start(name)
    network.wait_ready([pod])
    ready_s = time.monotonic() - pod.started_at
    everyone = network.running()
    wait_until(
        lambda: view_whole(everyone, everyone),
        CONVERGE_TIMEOUT,
        f"every view whole after {name} restarted",
        explain=lambda: view_gaps(everyone, everyone),
    )
    whole_s = time.monotonic() - pod.started_at
    outage_s = time.monotonic() - term
    wait_until(
        lambda: routes_correct(everyone, mine, network.pods),
        CONVERGE_TIMEOUT,
        f"{name}'s agents routed to its new address",
        poll=0.2,
    )
    routes_s = time.monotonic() - pod.started_at
    return Restart(name, old_ip, pod.ip, stop_s, ready_s, whole_s, routes_s, outage_s)


@dataclass
class PartitionResult:
    detect_s: float
    """The partition until each side lists the other's members dead."""
    held_s: float
    """How long the partition lasted: ``detect_s``, the checks and the hold."""
    served: dict[str, bool]
    """Per pod, during the partition: its side's agents (old and new) active and routed,
    the other side's unreachable, and itself ready."""
    whole_s: float
    """The heal until every pod lists all alive at their addresses."""
    routes_s: float
    """The heal until every agent routes right everywhere and every digest is equal."""
    acknowledged: dict[str, str] = field(default_factory=dict)


def partition_heal(network: PodNetwork, hold: float = 0.0, minority: int = 2) -> PartitionResult:
    """Cut ``minority`` pods off from the rest on the bridge until each side has declared
    the other dead (so longer than the suspicion timeout), and ``hold`` seconds more;
    check that each side goes on serving its own agents and takes new ones; then heal
    and time the convergence.

    Held past ``gossip_to_the_dead_time`` (15 s in ``local``, 30 s in ``lan``), no node
    sends the other side anything any more: the heal waits for a full-state exchange
    with a dead member (every ``push_pull_interval``: 15 s, 30 s). Held short of it, a
    node still gossips to the members it took for dead, which learn of it and refute.
    Past ``failure_detection_timeout`` (60 s) the other side would be forgotten."""
    owners = seed_agents(network)
    wait_routes(network, owners, "the seeded agents routed everywhere")
    names = sorted(network.pods)
    side_b, side_a = names[-minority:], names[:-minority]
    began = time.monotonic()
    network.partition(side_a, side_b)
    sides = ((side_a, side_b), (side_b, side_a))
    detect_s = wait_until(
        lambda: all(sees(network.pods[n], other, "dead") for own, other in sides for n in own),
        CONVERGE_TIMEOUT,
        "each side lists the other dead",
        poll=0.2,
    )
    for pod in network.running():
        for i in range(3):
            agent_id = f"{pod.name}-split{i}"
            if not register(pod, agent_id):
                raise AssertionError(f"{pod.name} refused {agent_id} during the partition")
            owners[agent_id] = pod.name
    served: dict[str, bool] = {}
    for own, other in sides:
        ours = {a: o for a, o in owners.items() if o in own}
        theirs = {a for a, o in owners.items() if o in other}
        for name in own:
            pod = network.pods[name]

            def serving(
                pod: Pod = pod, ours: dict[str, str] = ours, theirs: set[str] = theirs
            ) -> bool:
                listed = pod.agents()
                return (
                    routes_correct([pod], ours, network.pods)
                    and all(listed[a]["status"] == "unreachable" for a in theirs if a in listed)
                    and pod.request("GET", "/health/ready").status == 200
                )

            try:
                wait_until(serving, 20, f"{name} serves its side's agents")
                served[name] = True
            except AssertionError:
                served[name] = False
    time.sleep(max(0.0, began + detect_s + hold - time.monotonic()))
    healed = time.monotonic()
    network.heal()
    held_s = healed - began
    everyone = network.running()
    whole_s = wait_until(
        lambda: view_whole(everyone, everyone), CONVERGE_TIMEOUT, "every view whole after heal"
    )
    wait_routes(network, owners, "every agent routed right after heal")
    routes_s = time.monotonic() - healed
    return PartitionResult(detect_s, held_s, served, whole_s, routes_s, owners)
