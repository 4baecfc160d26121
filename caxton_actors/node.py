"""One node: its actors started in dependency order and stopped in reverse."""

from __future__ import annotations

import ipaddress
import logging
import random
import signal
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import gevent.socket
import pykka

from caxton_actors import metrics
from caxton_actors.actors.detector import DetectorActor
from caxton_actors.actors.http import HttpActor, listen
from caxton_actors.actors.membership import MembershipActor
from caxton_actors.actors.registry import RegistryActor
from caxton_actors.actors.stage import Peers, StageActor
from caxton_actors.address import Address
from caxton_actors.config import Config
from caxton_actors.engine import Engine
from caxton_actors.engine.messages import JoinCluster, LeaveCluster, MemberState, Stage
from caxton_actors.http.app import create_app
from caxton_actors.http.resources import Actors
from caxton_actors.registry.replica import LIMITS
from caxton_actors.registry.schema import SchemaError
from caxton_actors.registry.store import StoreUnavailable
from caxton_actors.runtime.lag import LoopLagMonitor
from caxton_actors.state.service import StateService
from caxton_actors.swim.messages import HTTP_META_KEY
from caxton_actors.swim.timing import PRESETS, Timing
from caxton_actors.wire.channel import Channel
from caxton_actors.wire.keyring import Keyring, KeyringError, load_keyring, save_keyring
from caxton_actors.wire.seeds import keep_resolving
from caxton_actors.wire.transport import SocketTransport, Transport

log = logging.getLogger(__name__)

# Seconds an HTTP request waits for an actor's answer before it is a 503.
ASK_TIMEOUT = 5.0
# Seconds between two hub loop lag samples.
LAG_SAMPLE_INTERVAL = 0.5
# Gossip rounds a leaving node keeps running so that its goodbye spreads.
LEAVE_ROUNDS = 3


class StartError(Exception):
    """The node could not start: a port in use, an unreadable or newer database file."""


def _advertised_host(bind_host: str) -> str:
    """The IP address peers should use: the bind address, or this host's when bound to all.

    Always a literal, as peers take no names off the wire (a name here is resolved once, at
    start, by gevent's resolver, off the hub).
    """
    if bind_host in ("0.0.0.0", "::", ""):
        bind_host = gevent.socket.gethostname()
    try:
        return str(ipaddress.ip_address(bind_host))
    except ValueError:
        return str(gevent.socket.getaddrinfo(bind_host, None)[0][4][0])


def keyring_path(sqlite_path: Path) -> Path:
    """Where a node keeps its gossip keys: beside its database, so they restart together."""
    return sqlite_path.with_name(sqlite_path.name + ".keyring")


TransportFactory = Callable[[Address], Transport]


def _sockets(bind: Address) -> Transport:
    return SocketTransport(bind)


def _peer(stage: Stage, ref: pykka.ActorRef[Any]) -> tuple[Stage, pykka.ActorRef[StageActor]]:
    return stage, ref


class Node:
    """``transport`` makes the gossip transport from the bind address: real sockets
    unless a test gives several nodes in one process an in-memory network."""

    def __init__(self, config: Config, transport: TransportFactory = _sockets) -> None:
        self.config = config
        self._transport = transport
        self.stats: metrics.Metrics = metrics.NullMetrics()
        self._lag = LoopLagMonitor(
            LAG_SAMPLE_INTERVAL,
            lambda lag: self.stats.timing(metrics.HUB_LOOP_LAG, lag * 1000),
        )
        self._refs: dict[str, pykka.ActorRef[Any]] = {}
        self._registry: pykka.ActorRef[RegistryActor] | None = None
        self.membership: pykka.ActorRef[MembershipActor] | None = None
        """The membership actor, while the node runs with gossip."""
        self.gossip_address: Address | None = None
        """Where peers reach this node's gossip, while it runs with gossip."""
        self._seeds: gevent.Greenlet[..., None] | None = None
        self._state: StateService | None = None

    @property
    def registry(self) -> pykka.ActorRef[RegistryActor]:
        """The registry actor; only while the node runs."""
        if self._registry is None:
            raise RuntimeError("the node is not running")
        return self._registry

    def start(self) -> None:
        """Start every actor; on failure stop those already running and raise StartError."""
        try:
            self._start()
        except (OSError, SchemaError, StoreUnavailable, ValueError, KeyringError) as exc:
            self.stop()
            raise StartError(str(exc)) from exc
        except BaseException:
            self.stop()
            raise
        self._lag.start()
        log.info("node %s started (database %s)", self.config.node_name, self.config.sqlite_path)

    def _start(self) -> None:
        config = self.config
        self.stats = metrics.make_metrics(config.statsd)
        listener = listen(config.http_bind)
        http_address = f"{_advertised_host(config.http_bind.host)}:{listener.getsockname()[1]}"
        transport = self._bind_gossip() if config.gossip.enabled else None
        try:
            engine = self._engine(transport, http_address)
            registry = RegistryActor.start(
                config.sqlite_path, engine.registry, config.reap_interval, self.stats
            )
        except BaseException:
            if transport is not None:
                transport.close()
            raise
        self._refs["registry"] = self._registry = registry
        registry.tell(MemberState(config.node_name, True, http_address))
        peers = [_peer(Stage.REGISTRY, registry)]
        membership = detector = None
        if transport is not None:
            channel = Channel(config.gossip.cluster_label, self._keyring())
            membership = MembershipActor.start(
                engine.membership,
                transport,
                channel,
                self.stats,
                keyring_path(config.sqlite_path),
            )
            self._refs["membership"] = self.membership = membership
            self.gossip_address = engine.membership.members.addr
            detector = DetectorActor.start(engine.detection, self.stats)
            self._refs["detector"] = detector
            peers += [_peer(Stage.MEMBERSHIP, membership), _peer(Stage.DETECTION, detector)]
        else:
            self.stats.gauge(metrics.GOSSIP_PEERS, 0)
        for _, ref in peers:
            ref.tell(Peers(tuple(peers)))
        self._state = StateService(
            config.state_tools, config.state_timeout, self.stats, config.state_tools_inline
        )
        actors = Actors(
            registry, membership, detector, tuple(self._refs.items()), ASK_TIMEOUT, self._state
        )
        app = create_app(actors, self.stats)
        self._refs["http"] = HttpActor.start(app, listener, config.drain_timeout)
        if membership is not None:
            me = engine.membership.members.addr
            self._seeds = keep_resolving(
                config.gossip.seed_nodes, me, lambda found: membership.tell(JoinCluster(found))
            )

    def _bind_gossip(self) -> Transport:
        bind = self.config.gossip.bind_address
        try:
            return self._transport(bind)
        except OSError as exc:
            raise OSError(f"cannot listen on {bind} (gossip.bind_address): {exc.strerror}") from exc

    def _keyring(self) -> Keyring | None:
        """The keys this node last had (kept beside its data through rotations), or the
        configured ones."""
        path = keyring_path(self.config.sqlite_path)
        configured = self.config.gossip.keys
        kept = load_keyring(path)
        if kept is not None:
            if configured and set(configured) != set(kept.keys):
                log.warning(
                    "gossip keys from %s (rotated since gossip.keys was set); "
                    "delete it to start from gossip.keys",
                    path,
                )
            return kept
        if not configured:
            return None
        keyring = Keyring(configured)
        save_keyring(path, keyring)
        return keyring

    def _timing(self) -> Timing:
        gossip = self.config.gossip
        return PRESETS[gossip.profile].with_overrides(
            probe_interval=gossip.gossip_interval,
            dead_node_reclaim_time=gossip.failure_detection_timeout,
        )

    def _engine(self, transport: Transport | None, http_address: str) -> Engine:
        """This node's protocol; without gossip only its registry stage is used, and
        its gossip address (no host name looked up) is never told to anyone."""
        config = self.config
        addr = Address("", 0)
        if transport is not None:
            addr = Address(_advertised_host(config.gossip.bind_address.host), transport.port)
        return Engine(
            config.node_name,
            addr,
            self._timing(),
            random.Random(),
            time.monotonic(),
            meta=((HTTP_META_KEY, http_address),),
            # Starting from the wall clock, a restarted node outranks its former self.
            incarnation=time.time_ns() // 1_000_000,
            limits=replace(LIMITS, max_agents_per_node=config.registry_max_agents),
        )

    def stop(self) -> None:
        """Stop in reverse order: no new requests, say goodbye, then the last writes commit."""
        self._lag.stop()
        if self._seeds is not None:
            self._seeds.kill()
            self._seeds = None
        membership = self.membership
        if membership is not None and membership.is_alive():
            membership.ask(LeaveCluster(), timeout=ASK_TIMEOUT)
            interval = PRESETS[self.config.gossip.profile].gossip_interval
            gevent.sleep(LEAVE_ROUNDS * interval)
        for name in reversed(list(self._refs)):
            self._refs.pop(name).stop(block=True)
        self._registry = self.membership = self.gossip_address = None
        if self._state is not None:
            self._state.close()  # after HTTP has drained: no call is in flight
            self._state = None
        log.info("node %s stopped", self.config.node_name)

    def run_until_signalled(self) -> None:
        """Serve until SIGTERM or SIGINT, then stop cleanly."""
        stopping = gevent.event.Event()
        handlers = [
            gevent.signal_handler(signum, stopping.set)
            for signum in (signal.SIGTERM, signal.SIGINT)
        ]
        self.start()
        try:
            stopping.wait()
            log.info("signal received, stopping")
        finally:
            for handler in handlers:
                handler.cancel()
            self.stop()
