"""One node: its actors started in dependency order and stopped in reverse."""

from __future__ import annotations

import contextlib
import logging
import random
import signal
import ssl
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
from caxton_actors.actors.http import HttpActor, listen, tls_context
from caxton_actors.actors.membership import MembershipActor
from caxton_actors.actors.registry import RegistryActor
from caxton_actors.actors.stage import Peers
from caxton_actors.address import Address
from caxton_actors.clock import SYSTEM, Clock
from caxton_actors.config import Config
from caxton_actors.engine import Engine
from caxton_actors.engine.messages import (
    JoinCluster,
    LeaveCluster,
    MemberState,
    Restarted,
    Stage,
)
from caxton_actors.http.app import create_app
from caxton_actors.http.resources import Actors
from caxton_actors.registry.replica import LIMITS
from caxton_actors.registry.schema import SchemaError
from caxton_actors.registry.store import StoreUnavailable
from caxton_actors.runtime.lag import LoopLagMonitor
from caxton_actors.runtime.supervisor import Slot, Supervisor
from caxton_actors.state.service import StateService
from caxton_actors.swim.messages import HTTP_META_KEY
from caxton_actors.swim.timing import PRESETS, Timing
from caxton_actors.wire.advertise import advertised
from caxton_actors.wire.channel import Channel
from caxton_actors.wire.keyring import Keyring, KeyringError, load_keyring, save_keyring
from caxton_actors.wire.seeds import keep_resolving
from caxton_actors.wire.transport import SocketTransport, Transport

log = logging.getLogger(__name__)

# Seconds an HTTP request waits for an actor's answer before it is a 503.
ASK_TIMEOUT = 5.0
# Least seconds between two hub loop lag reports (each the worst alarm lag since the last).
LAG_SAMPLE_INTERVAL = 0.5
# The settings that override what a node advertises, named in what it logs.
HTTP_ADVERTISE = "http.advertise_address"
GOSSIP_ADVERTISE = "gossip.advertise_address"
# Gossip rounds a leaving node keeps running so that its goodbye spreads.
LEAVE_ROUNDS = 3


# The stage each supervised actor owns: who hears that it was built anew.
STAGE_OF = {"registry": Stage.REGISTRY, "membership": Stage.MEMBERSHIP, "detector": Stage.DETECTION}


class StartError(Exception):
    """The node could not start: a port in use, an unreadable or newer database file."""


class Halted(Exception):
    """The supervisor stopped the node: an actor kept crashing. The message says which;
    the process should exit non-zero, for its own supervisor to start a fresh one."""


def keyring_path(sqlite_path: Path) -> Path:
    """Where a node keeps its gossip keys: beside its database, so they restart together."""
    return sqlite_path.with_name(sqlite_path.name + ".keyring")


TransportFactory = Callable[[Address], Transport]


def _sockets(bind: Address) -> Transport:
    return SocketTransport(bind)


class Node:
    """``transport`` makes the gossip transport from the bind address: real sockets
    unless a test gives several nodes in one process an in-memory network; ``clock``
    is the system's unless a test sets one node's wall clock apart.

    Every actor runs under a :class:`Supervisor` in a :class:`Slot` (peers and the HTTP
    resources hold slots): a crashed one is built anew from what its disk or its peers
    know, and a crash loop stops the node.
    """

    # Set by start(), for as long as the node runs.
    _stages: Engine
    """The stages the actors hold: replaced one by one as actors are restarted."""
    _peers: Peers
    _app: Any
    _tls: ssl.SSLContext | None
    http_address: str
    """``host:port`` of the HTTP API, as peers are told it."""

    def __init__(
        self, config: Config, transport: TransportFactory = _sockets, clock: Clock = SYSTEM
    ) -> None:
        self.config = config
        self._transport = transport
        self._clock = clock
        self.stats: metrics.Metrics = metrics.NullMetrics()
        self._lag = LoopLagMonitor(
            LAG_SAMPLE_INTERVAL,
            lambda lag: self.stats.timing(metrics.HUB_LOOP_LAG, lag * 1000),
        )
        self._gauges: gevent.Greenlet[..., None] | None = None
        """Sends every gauge again each metrics.GAUGE_INTERVAL, while metrics are on."""
        self._supervisor: Supervisor | None = None
        self._listener: gevent.socket.socket | None = None
        self._registry: Slot[RegistryActor] | None = None
        self.membership: Slot[MembershipActor] | None = None
        """The membership actor, while the node runs with gossip."""
        self._detector: Slot[DetectorActor] | None = None
        self._http: Slot[HttpActor] | None = None
        self.gossip_address: Address | None = None
        """Where peers reach this node's gossip, while it runs with gossip."""
        self._gossip_bound = config.gossip.bind_address
        """The address gossip is bound to, its port as bound (a restart binds it again)."""
        self._seeds: gevent.Greenlet[..., None] | None = None
        self._seed_addresses: tuple[Address, ...] = ()
        """Seeds resolved so far: a restarted membership actor joins through them too."""
        self._state: StateService | None = None
        self.failure: str | None = None
        """Why the supervisor stopped the node, if it did."""
        self._stopping = False
        self._started = gevent.event.Event()
        """Set once start() has returned or raised: a halt waits for it."""
        self._stopped = gevent.event.Event()

    @property
    def registry(self) -> Slot[RegistryActor]:
        """The registry actor; only while the node runs."""
        if self._registry is None:
            raise RuntimeError("the node is not running")
        return self._registry

    def start(self) -> None:
        """Start every actor; on failure stop those already running and raise StartError."""
        self.failure = None
        self._stopping = False
        self._started.clear()
        self._stopped.clear()
        try:
            self._start()
        except (OSError, SchemaError, StoreUnavailable, ValueError, KeyringError) as exc:
            self.stop(started=False)
            raise StartError(str(exc)) from exc
        except BaseException:
            self.stop(started=False)
            raise
        finally:
            self._started.set()
        self._lag.start()
        if isinstance(self.stats, metrics.StatsdMetrics):
            self._gauges = gevent.spawn(metrics.resend_gauges_forever, self.stats)
        log.info("node %s started (database %s)", self.config.node_name, self.config.sqlite_path)

    def _start(self) -> None:
        config = self.config
        self.stats = metrics.make_metrics(config.statsd)
        supervisor = self._supervisor = Supervisor(self.stats, self._restarted, self._halt)
        listener = self._listener = listen(config.http.bind_address)
        http = config.http
        route = advertised(
            http.bind_address, listener.getsockname()[1], http.advertise_address, HTTP_ADVERTISE
        )
        self.http_address = f"{route.host}:{route.port}"
        transport = self._bind_gossip() if config.gossip.enabled else None
        registry = self._registry = Slot("registry")
        peers: list[tuple[Stage, Slot[Any]]] = [(Stage.REGISTRY, registry)]
        if transport is not None:
            self.membership, self._detector = Slot("membership"), Slot("detector")
            peers += [(Stage.MEMBERSHIP, self.membership), (Stage.DETECTION, self._detector)]
        self._peers = Peers(tuple(peers))
        try:
            self._stages = self._engine(transport, self.http_address)
            supervisor.start(registry, self._start_registry, self._restart_registry)
        except BaseException:
            if transport is not None:
                transport.close()
            raise
        if transport is not None:
            self._start_gossip(transport)
        else:
            self.stats.gauge(metrics.GOSSIP_PEERS, 0)
        self._start_api()

    def _start_gossip(self, transport: Transport) -> None:
        assert self._supervisor is not None
        assert self.membership is not None
        assert self._detector is not None
        self.gossip_address = self._stages.membership.members.addr
        # The port first bound, which the advertised address may not show (behind NAT).
        self._gossip_bound = Address(self.config.gossip.bind_address.host, transport.port)
        self._supervisor.start(
            self.membership, lambda: self._start_membership(transport), self._restart_membership
        )
        self._supervisor.start(self._detector, self._start_detector, self._restart_detector)
        self._seeds = keep_resolving(self.config.gossip.seed_nodes, self.gossip_address, self._join)

    def _start_api(self) -> None:
        config, http = self.config, self.config.http
        assert self._supervisor is not None
        self._state = StateService(
            config.state_tools, config.state_timeout, self.stats, config.state_tools_inline
        )
        self._http = Slot("http")
        slots = (self._registry, self.membership, self._detector, self._http)
        named = tuple((slot.name, slot) for slot in slots if slot is not None)
        assert self._registry is not None
        actors = Actors(
            self._registry,
            self.membership,
            self._detector,
            named,
            ASK_TIMEOUT,
            self._state,
            self.config.registry_scopes,
        )
        self._app = create_app(actors, self.stats, http.tokens, http.allowed_hosts, http.access_log)
        self._tls = None
        if http.tls_cert is not None and http.tls_key is not None:
            self._tls = tls_context(http.tls_cert, http.tls_key)
        self._supervisor.start(self._http, self._start_http)

    # Each actor's start, and its restart from a consistent state.

    def _start_registry(self) -> pykka.ActorRef[RegistryActor]:
        config = self.config
        ref = RegistryActor.start(
            config.sqlite_path, self._stages.registry, config.reap_interval, self.stats, self._clock
        )
        ref.tell(self._peers)
        ref.tell(MemberState(config.node_name, True, self.http_address))
        return ref

    def _restart_registry(self) -> pykka.ActorRef[RegistryActor]:
        """From the file, as at start; membership then tells it who is up."""
        self._stages.rebuild(Stage.REGISTRY, self._clock.monotonic())
        return self._start_registry()

    def _start_membership(self, transport: Transport) -> pykka.ActorRef[MembershipActor]:
        config = self.config
        try:
            ref = MembershipActor.start(
                self._stages.membership,
                transport,
                Channel(config.gossip.cluster_label, self._keyring()),
                self.stats,
                keyring_path(config.sqlite_path),
                self._clock,
            )
        except BaseException:
            transport.close()
            raise
        ref.tell(self._peers)
        return ref

    def _restart_membership(self) -> pykka.ActorRef[MembershipActor]:
        """A fresh member table under a higher incarnation, on the same port, joining
        everyone the old table had up and the seeds: peers take the news of a higher
        incarnation, so they keep the node alive and send it their tables."""
        assert self.gossip_address is not None
        old = self._stages.membership.members
        rejoin = tuple(dict.fromkeys([m.addr for m in old.peers()] + [*self._seed_addresses]))
        incarnation = max(self._clock.wall_ms(), old.me.incarnation + 1)
        self._stages.rebuild(Stage.MEMBERSHIP, self._clock.monotonic(), incarnation)
        ref = self._start_membership(self._transport(self._gossip_bound))
        if rejoin:
            ref.tell(JoinCluster(rejoin))
        return ref

    def _start_detector(self) -> pykka.ActorRef[DetectorActor]:
        ref = DetectorActor.start(self._stages.detection, self.stats)
        ref.tell(self._peers)
        return ref

    def _restart_detector(self) -> pykka.ActorRef[DetectorActor]:
        """Probing no one, until membership tells it every member (``Restarted``)."""
        self._stages.rebuild(Stage.DETECTION, self._clock.monotonic())
        return self._start_detector()

    def _start_http(self) -> pykka.ActorRef[HttpActor]:
        """On a copy of the listening socket: a server closes its copy when it stops, and
        the port, with the connections waiting on it, stays for the next server."""
        if self._listener is None:
            raise RuntimeError("the node is stopping")
        listener = self._listener.dup()
        return HttpActor.start(self._app, listener, self.config.drain_timeout, self._tls)

    def _restarted(self, name: str) -> None:
        """Tell the other stages that ``name``'s was built anew; the engine decides what
        each tells it again."""
        stage = STAGE_OF.get(name)
        if stage is None:
            return
        for other, slot in self._peers.refs:
            if other is not stage:
                with contextlib.suppress(pykka.ActorDeadError):
                    slot.tell(Restarted(stage))

    def _join(self, found: tuple[Address, ...]) -> None:
        self._seed_addresses = tuple(dict.fromkeys(self._seed_addresses + found))
        if self.membership is not None:
            with contextlib.suppress(pykka.ActorDeadError):  # restarting: it joins them then
                self.membership.tell(JoinCluster(found))

    def _halt(self, reason: str) -> None:
        """The supervisor gave up: stop the node, in a greenlet of its own (the caller's
        is the supervisor's, which the stop ends), once start() is done with it."""
        self.failure = reason

        def stop() -> None:
            self._started.wait()
            self.stop()

        gevent.spawn(stop)

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
            gossip = config.gossip
            addr = advertised(
                gossip.bind_address, transport.port, gossip.advertise_address, GOSSIP_ADVERTISE
            )
        return Engine(
            config.node_name,
            addr,
            self._timing(),
            random.Random(),
            self._clock.monotonic(),
            meta=((HTTP_META_KEY, http_address),),
            # Starting from the wall clock, a restarted node outranks its former self.
            incarnation=self._clock.wall_ms(),
            limits=replace(LIMITS, max_agents_per_node=config.registry_max_agents),
        )

    def stop(self, *, started: bool = True) -> None:
        """Stop in reverse order: no new requests, say goodbye, then the last writes commit.

        ``started``: False when undoing a start that failed, whose one line is the error.
        Once stopped, or while another greenlet stops it, this returns when it is stopped.
        """
        if self._stopping:
            self._stopped.wait()
            return
        self._stopping = True
        self._lag.stop()
        if self._gauges is not None:
            self._gauges.kill()
            self._gauges = None
        if self._seeds is not None:
            self._seeds.kill()
            self._seeds = None
        membership = self.membership
        if membership is not None and membership.is_alive():
            with contextlib.suppress(pykka.ActorDeadError, pykka.Timeout):
                membership.ask(LeaveCluster(), block=False).get(timeout=ASK_TIMEOUT)
            interval = PRESETS[self.config.gossip.profile].gossip_interval
            gevent.sleep(LEAVE_ROUNDS * interval)
        if self._supervisor is not None:
            self._supervisor.stop()
            self._supervisor = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self._registry = self.membership = self._detector = self._http = None
        self.gossip_address = None
        if self._state is not None:
            self._state.close()  # after HTTP has drained: no call is in flight
            self._state = None
        level = logging.INFO if started else logging.DEBUG
        log.log(level, "node %s stopped", self.config.node_name)
        self._stopped.set()

    def run_until_signalled(self) -> None:
        """Serve until SIGTERM or SIGINT, then stop cleanly; raise :class:`Halted` when
        the supervisor stopped the node first."""
        signalled = gevent.event.Event()
        handlers = [
            gevent.signal_handler(signum, signalled.set)
            for signum in (signal.SIGTERM, signal.SIGINT)
        ]
        self.start()
        try:
            gevent.wait([signalled, self._stopped], count=1)
            if signalled.is_set():
                log.info("signal received, stopping")
        finally:
            for handler in handlers:
                handler.cancel()
            self.stop()
        if self.failure is not None:
            raise Halted(self.failure)
