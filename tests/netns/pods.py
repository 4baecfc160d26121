"""Pods on a bridge: each node in a Linux network namespace of its own, as in Kubernetes.

A :class:`PodNetwork` is one bridge in the root namespace (the "node's" network) holding
``<prefix>.1/24``, so this process reaches every pod directly. Each :class:`Pod` is a
network namespace with one veth (``eth0`` inside, its other end on the bridge), a fresh
address from the subnet, and ``caxton-actors run`` bound to ``0.0.0.0`` with no advertise
setting, so the node must find its own address. A restarted pod gets a new namespace and
a new address (as a pod does), and keeps its data directory (its volume).

Names resolve as a headless Service's records would: ``ip netns exec`` bind-mounts
``/etc/netns/<namespace>/hosts`` over ``/etc/hosts``, and every namespace's file lists
``<pod>.caxton-gossip`` for each pod that is running now. A pod's record is written when
it starts, changed when it restarts elsewhere and removed when it stops; files are
rewritten in place, since a bind mount holds the inode. ``resolv.conf`` names a server on
the pod's own loopback, where nothing listens, so a name not in the file fails at once
rather than after a DNS timeout.

A partition drops every frame between two groups of pods on the bridge (an nftables
``bridge`` table): the pods on each side still reach each other, and this process still
reaches them all.

Everything is named ``cx<run id>...`` and recorded under ``/run/caxton-netns``: a run
that dies before its finalizers ran is cleaned up by the next one.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from caxton_actors.wire.keyring import generate_key

SERVICE = "caxton-gossip"
GOSSIP_PORT = 7946
HTTP_PORT = 8080
SEEDS = 3  # as deploy/kubernetes: the StatefulSet's first three pods
REGISTRY_DIR = Path("/run/caxton-netns")
NETNS_ETC = Path("/etc/netns")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
_PR_SET_PDEATHSIG = 1


def pod_name(index: int) -> str:
    return f"caxton-{index}"


def seeds(count: int = SEEDS) -> str:
    return ",".join(f"{pod_name(i)}.{SERVICE}:{GOSSIP_PORT}" for i in range(count))


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=check)


def unavailable_reason() -> str | None:
    """Why pods cannot run here, or None: root, iproute2, namespaces and bridges needed."""
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    if shutil.which("ip") is None:
        return "iproute2 (the ip command) is not installed"
    probe = f"cxprobe{os.getpid()}"
    try:
        made = _ip("netns", "add", probe, check=False)
        if made.returncode != 0:
            return f"ip netns add failed: {made.stderr.strip()}"
        _ip("netns", "del", probe, check=False)
        made = _ip("link", "add", probe, "type", "bridge", check=False)
        if made.returncode != 0:
            return f"ip link add type bridge failed: {made.stderr.strip()}"
        _ip("link", "del", probe, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"ip failed: {exc}"
    return None


def partition_unavailable_reason() -> str | None:
    if shutil.which("nft") is None:
        return "nft (nftables) is not installed: partitions are nftables bridge rules"
    return None


@dataclass
class Reply:
    status: int
    raw: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw)


@dataclass
class Pod:
    name: str
    namespace: str
    ip: str
    veth: str
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes]
    token: str
    started_at: float = field(default_factory=time.monotonic)

    @property
    def http_route(self) -> str:
        return f"http://{self.ip}:{HTTP_PORT}"

    @property
    def gossip_address(self) -> str:
        return f"{self.ip}:{GOSSIP_PORT}"

    def running(self) -> bool:
        return self.proc.poll() is None

    def request(self, method: str, path: str, body: Any = None, timeout: float = 5.0) -> Reply:
        """One request from the root namespace, over the bridge, with the admin token."""
        conn = http.client.HTTPConnection(self.ip, HTTP_PORT, timeout=timeout)
        headers = {"Authorization": f"Bearer {self.token}"}
        if body is not None or method == "POST":
            headers["Content-Type"] = "application/json"
        payload = json.dumps(body).encode() if body is not None else None
        try:
            conn.request(method, path, body=payload, headers=headers)
            resp = conn.getresponse()
            return Reply(resp.status, resp.read())
        finally:
            conn.close()

    def get(self, path: str, timeout: float = 5.0) -> Any:
        reply = self.request("GET", path, timeout=timeout)
        if reply.status != 200:
            raise AssertionError(f"{self.name} GET {path}: {reply.status} {reply.raw[:300]!r}")
        return reply.json

    def members(self) -> dict[str, dict[str, Any]]:
        return {m["name"]: m for m in self.get("/members")["members"]}

    def agents(self) -> dict[str, dict[str, Any]]:
        """Every agent this node lists, whole cluster, all pages."""
        found: dict[str, dict[str, Any]] = {}
        after: str | None = None
        while True:
            page = self.get("/agents?limit=1000" + (f"&cursor={after}" if after else ""))
            found.update((a["id"], a) for a in page["agents"])
            after = page["next"]
            if after is None:
                return found

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it if this test process dies, so no node outlives
    a crashed run (``ip netns exec`` execs the node in the same process)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class PodNetwork:
    """One bridge, its pods, their records and the partitions between them."""

    def __init__(self, workdir: Path, profile: str = "local") -> None:
        sweep_stale()
        self.workdir = workdir
        self.profile = profile
        self.run = secrets.token_hex(3)
        self.prefix = _free_subnet()
        self.bridge = f"cx{self.run}br"
        self.host_ip = f"{self.prefix}.1"
        self.token = secrets.token_hex(16)
        self.keys = generate_key()
        self.pods: dict[str, Pod] = {}
        self._next_host = 10
        self._seq = 0
        self._records: dict[str, str] = {}
        self._namespaces: set[str] = set()
        REGISTRY_DIR.mkdir(parents=True, exist_ok=True)
        (REGISTRY_DIR / self.run).write_text(str(os.getpid()))
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.host_ip}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
        except BaseException:
            self.close()
            raise

    # -- pods -------------------------------------------------------------------------

    def start(self, name: str) -> Pod:
        """Start pod ``name`` in a new namespace with a new address; its record appears
        in every pod's hosts file now. Returns at once: see :meth:`wait_ready`."""
        if name in self.pods and self.pods[name].running():
            raise AssertionError(f"{name} is running")
        self._seq += 1
        namespace = f"cx{self.run}-{name}-{self._seq}"
        veth = f"cx{self.run}v{self._seq}"
        ip = f"{self.prefix}.{self._next_host}"
        self._next_host += 1
        if self._next_host > 250:
            raise AssertionError("subnet exhausted")
        (NETNS_ETC / namespace).mkdir(parents=True, exist_ok=True)
        (NETNS_ETC / namespace / "resolv.conf").write_text(
            "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"
        )
        (NETNS_ETC / namespace / "hosts").write_text("")
        _ip("netns", "add", namespace)
        _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", namespace)
        _ip("link", "set", veth, "master", self.bridge)
        _ip("link", "set", veth, "up")
        _ip("-n", namespace, "addr", "add", f"{ip}/24", "dev", "eth0")
        _ip("-n", namespace, "link", "set", "eth0", "up")
        _ip("-n", namespace, "link", "set", "lo", "up")
        data_dir = self.workdir / name  # the pod's volume: kept across restarts
        data_dir.mkdir(exist_ok=True)
        log_path = self.workdir / f"{name}-{self._seq}.log"
        old = self.pods.get(name)
        if old is not None:
            self._remove_namespace(old)
        self._namespaces.add(namespace)
        self._records[name] = ip
        self._write_hosts()  # the record appears as the pod starts
        with log_path.open("wb") as log_file:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", namespace, sys.executable, "-m", "caxton_actors", "run"],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=data_dir,
                env=self._env(name, data_dir),
                preexec_fn=_die_with_parent,  # noqa: PLW1509 (pods are started by one thread)
            )
        pod = Pod(name, namespace, ip, veth, data_dir, log_path, proc, self.token)
        self.pods[name] = pod
        return pod

    def _env(self, name: str, data_dir: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAXTON_")}
        env.update(
            CAXTON_NODE_NAME=name,
            CAXTON_SQLITE_PATH=str(data_dir / "caxton.db"),
            CAXTON_HTTP_BIND=f"0.0.0.0:{HTTP_PORT}",
            CAXTON_HTTP_TOKENS=f"test:admin:{self.token}",
            CAXTON_GOSSIP_ENABLED="true",
            CAXTON_GOSSIP_BIND=f"0.0.0.0:{GOSSIP_PORT}",
            CAXTON_GOSSIP_SEEDS=seeds(),
            CAXTON_GOSSIP_PROFILE=self.profile,
            CAXTON_GOSSIP_KEYS=self.keys,
        )
        return env

    def wait_ready(self, pods: Iterable[Pod], timeout: float = START_TIMEOUT) -> None:
        """Until each pod answers ``/health`` over the bridge."""
        waiting = list(pods)
        deadline = time.monotonic() + timeout
        while waiting:
            for pod in list(waiting):
                if pod.proc.poll() is not None:
                    raise AssertionError(
                        f"{pod.name} exited with {pod.proc.returncode}:\n{pod.log()[-3000:]}"
                    )
                try:
                    if pod.request("GET", "/health", timeout=2).status == 200:
                        waiting.remove(pod)
                except OSError:
                    pass
            if waiting and time.monotonic() > deadline:
                logs = "\n".join(f"--- {p.name}\n{p.log()[-2000:]}" for p in waiting)
                raise AssertionError(f"no /health within {timeout}s: {logs}")
            if waiting:
                time.sleep(0.1)

    def stop(self, name: str, signum: int = signal.SIGTERM) -> float:
        """Stop pod ``name`` (SIGTERM: it leaves), wait for its exit, remove its record
        and its namespace. Returns how long the process took to exit."""
        pod = self.pods[name]
        began = time.monotonic()
        if pod.running():
            pod.proc.send_signal(signum)
            try:
                pod.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pod.proc.kill()
                pod.proc.wait(timeout=10)
                raise AssertionError(f"{name} did not exit within {STOP_TIMEOUT}s") from None
        took = time.monotonic() - began
        self._records.pop(name, None)
        self._write_hosts()
        self._remove_namespace(pod)
        return took

    def running(self) -> list[Pod]:
        return [p for p in self.pods.values() if p.running()]

    def _remove_namespace(self, pod: Pod) -> None:
        _ip("netns", "del", pod.namespace, check=False)  # takes the veth pair with it
        _ip("link", "del", pod.veth, check=False)
        shutil.rmtree(NETNS_ETC / pod.namespace, ignore_errors=True)
        self._namespaces.discard(pod.namespace)

    def _write_hosts(self) -> None:
        """Every running pod's record, in every pod's hosts file, rewritten in place."""
        lines = ["127.0.0.1 localhost"]
        lines += [
            f"{ip} {name}.{SERVICE} {name}.{SERVICE}.default.svc.cluster.local"
            for name, ip in sorted(self._records.items())
        ]
        text = "\n".join(lines) + "\n"
        for namespace in self._namespaces:
            with (NETNS_ETC / namespace / "hosts").open("r+") as f:  # the mount holds the inode
                f.write(text)
                f.truncate()

    # -- partitions -------------------------------------------------------------------

    def partition(self, side_a: Iterable[str], side_b: Iterable[str]) -> None:
        """Drop every frame between the two groups' pods on the bridge, both ways."""
        a = ", ".join(self.pods[n].ip for n in side_a)
        b = ", ".join(self.pods[n].ip for n in side_b)
        rules = (
            f"table bridge cx{self.run} {{\n"
            "  chain forward {\n"
            "    type filter hook forward priority 0; policy accept;\n"
            f"    ip saddr {{ {a} }} ip daddr {{ {b} }} drop\n"
            f"    ip saddr {{ {b} }} ip daddr {{ {a} }} drop\n"
            "  }\n"
            "}\n"
        )
        subprocess.run(["nft", "-f", "-"], input=rules, text=True, check=True, timeout=30)

    def heal(self) -> None:
        subprocess.run(
            ["nft", "delete", "table", "bridge", f"cx{self.run}"],
            check=False,
            capture_output=True,
            timeout=30,
        )

    # -- teardown ---------------------------------------------------------------------

    def close(self) -> None:
        for pod in self.pods.values():
            if pod.running():
                pod.proc.kill()
                pod.proc.wait(timeout=10)
        teardown(self.run)


def _free_subnet() -> str:
    """A 10.x.y.0/24 no address or route of this machine overlaps."""
    taken = _ip("-4", "addr").stdout + _ip("-4", "route").stdout
    for _ in range(200):
        prefix = f"10.{secrets.choice(range(200, 250))}.{secrets.randbelow(256)}"
        if f" {prefix}." not in taken and f"\n{prefix}." not in taken:
            return prefix
    raise AssertionError("no free 10.x.y.0/24 subnet")


def teardown(run: str) -> None:
    """Remove every namespace, link, rule and hosts file of run ``run``, killing what
    still runs in its namespaces."""
    stem = f"cx{run}"
    for line in _ip("netns", "list", check=False).stdout.splitlines():
        namespace = line.split(" ")[0]
        if namespace.startswith(stem + "-"):
            for pid in _ip("netns", "pids", namespace, check=False).stdout.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            _ip("netns", "del", namespace, check=False)
    for line in _ip("-o", "link", "show", check=False).stdout.splitlines():
        link = line.split(":")[1].strip().split("@")[0]
        if link.startswith(stem):
            _ip("link", "del", link, check=False)
    if shutil.which("nft"):
        subprocess.run(
            ["nft", "delete", "table", "bridge", stem], check=False, capture_output=True, timeout=30
        )
    if NETNS_ETC.exists():
        for directory in NETNS_ETC.glob(f"{stem}-*"):
            shutil.rmtree(directory, ignore_errors=True)
    (REGISTRY_DIR / run).unlink(missing_ok=True)


def sweep_stale() -> None:
    """Tear down the runs whose test process is gone (killed before its finalizers)."""
    if not REGISTRY_DIR.exists():
        return
    for marker in REGISTRY_DIR.iterdir():
        try:
            os.kill(int(marker.read_text()), 0)
        except ProcessLookupError:
            teardown(marker.name)
        except (ValueError, OSError):
            continue


# -- what the scenarios look at -----------------------------------------------------------


def wait_until(
    check: Callable[[], bool],
    timeout: float,
    what: str,
    poll: float = 0.1,
    explain: Callable[[], object] | None = None,
) -> float:
    """Seconds until ``check()`` held; past ``timeout``, an error naming ``what`` and, when
    given, what ``explain()`` says is still wrong."""
    began = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - began
        except (OSError, AssertionError, ValueError):
            pass  # a node restarting, a reply cut short: ask again
        if time.monotonic() - began > timeout:
            still = f"; still: {_explained(explain)}" if explain is not None else ""
            raise AssertionError(f"not within {timeout}s: {what}{still}")
        time.sleep(poll)


def _explained(explain: Callable[[], object]) -> object:
    try:
        return explain()
    except (OSError, AssertionError, ValueError) as exc:
        return f"(cannot tell: {exc})"


def view_gaps(observers: Iterable[Pod], expected: Iterable[Pod]) -> list[str]:
    """How each observer's member list differs from the expected pods, alive at their
    current addresses: empty when every view is whole."""
    want = {p.name: (p.gossip_address, f"{p.ip}:{HTTP_PORT}") for p in expected}
    gaps = []
    for observer in observers:
        members = observer.members()
        for name in sorted(set(members) ^ set(want)):
            gaps.append(f"{observer.name} {'lists' if name in members else 'lacks'} {name}")
        for name, (gossip, http_address) in want.items():
            member = members.get(name)
            seen = member and (member["state"], member["address"], member["http_address"])
            if member is not None and seen != ("alive", gossip, http_address):
                gaps.append(f"{observer.name} sees {name} as {seen}")
    return gaps


def view_whole(observers: Iterable[Pod], expected: Iterable[Pod]) -> bool:
    """Each observer lists exactly the expected pods, alive, at their current addresses."""
    return not view_gaps(observers, expected)


def sees(observer: Pod, names: Iterable[str], state: str) -> bool:
    members = observer.members()
    return all(members.get(n, {}).get("state") == state for n in names)


def digests_equal(pods: Iterable[Pod]) -> bool:
    return len({p.get("/registry/digest")["digest"] for p in pods}) == 1


def routes_correct(pods: Iterable[Pod], owners: dict[str, str], current: dict[str, Pod]) -> bool:
    """Every node lists every agent in ``owners`` (agent id to owner name) as active, on
    its owner, at the owner's current route."""
    for pod in pods:
        listed = pod.agents()
        for agent_id, owner in owners.items():
            agent = listed.get(agent_id)
            if agent is None or agent["node_id"] != owner or agent["status"] != "active":
                return False
            if agent["route"] != current[owner].http_route:
                return False
    return True


def missing_or_wrong(pod: Pod, owners: dict[str, str], current: dict[str, Pod]) -> list[str]:
    """What ``pod`` gets wrong of ``owners``, for a failure message."""
    listed = pod.agents()
    wrong = []
    for agent_id, owner in sorted(owners.items()):
        agent = listed.get(agent_id)
        if agent is None:
            wrong.append(f"{agent_id}: missing")
        elif (agent["node_id"], agent["status"], agent["route"]) != (
            owner,
            "active",
            current[owner].http_route,
        ):
            wrong.append(f"{agent_id}: {agent['node_id']} {agent['status']} {agent['route']}")
    return wrong


def register(pod: Pod, agent_id: str) -> bool:
    """Register an agent on ``pod``; True once acknowledged (committed)."""
    try:
        reply = pod.request("PUT", f"/agents/{agent_id}", {"capabilities": ["work", pod.name]})
    except OSError:
        return False
    return reply.status in (200, 201)


_TRANSITION = re.compile(r"member (\S+) (\w+) -> (\w+) \(incarnation")


def missed_goodbyes(network: PodNetwork) -> tuple[list[str], list[str]]:
    """Each ``dead`` in any pod's log, split in two: a member whose goodbye that pod never
    logged (no ``-> left`` since it last came alive there) and that came back alive there
    later, at its new address (a restarted pod, whose old address did stop); and every
    other death: a live node declared dead."""
    missed: list[str] = []
    unexplained: list[str] = []
    for log_path in sorted(network.workdir.glob("*.log")):
        observer = log_path.stem.rsplit("-", 1)[0]
        seen = [
            (m[1], m[2], m[3])
            for line in log_path.read_text(errors="replace").splitlines()
            if (m := _TRANSITION.search(line))
        ]
        for i, (member, before, after) in enumerate(seen):
            if after != "dead":
                continue
            shown = f"{observer} ({log_path.name}): {member} {before} -> dead"
            back = any(m == member and to == "alive" for m, _, to in seen[i + 1 :])
            last_life = max(
                (j for j, (m, _, to) in enumerate(seen[:i]) if m == member and to == "alive"),
                default=-1,
            )
            said = any(m == member and to == "left" for m, _, to in seen[last_life + 1 : i])
            (missed if back and not said else unexplained).append(shown)
    return missed, unexplained


def transitions(network: PodNetwork, to: str) -> list[str]:
    """Every change of a member to state ``to`` that any pod's log shows, as
    ``observer: member from -> to``: the complete record, where polling would sample."""
    found = []
    for log_path in sorted(network.workdir.glob("*.log")):
        observer = log_path.stem.rsplit("-", 1)[0]
        for line in log_path.read_text(errors="replace").splitlines():
            match = _TRANSITION.search(line)
            if match and match[3] == to:
                found.append(f"{observer} ({log_path.name}): {match[1]} {match[2]} -> {to}")
    return found
