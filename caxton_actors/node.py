"""One node: its actors started in dependency order and stopped in reverse."""

from __future__ import annotations

import logging
import signal
from typing import Any

import gevent
import gevent.event
import pykka
import sqlalchemy.exc

from caxton_actors import metrics
from caxton_actors.actors.http import HttpActor
from caxton_actors.actors.registry import RegistryActor
from caxton_actors.config import Address, Config
from caxton_actors.http.app import create_app
from caxton_actors.http.resources import Actors
from caxton_actors.registry.schema import SchemaError
from caxton_actors.runtime.lag import LoopLagMonitor

log = logging.getLogger(__name__)

# Seconds an HTTP request waits for an actor's answer before it is a 503.
ASK_TIMEOUT = 5.0
# Seconds between two hub loop lag samples.
LAG_SAMPLE_INTERVAL = 0.5


class StartError(Exception):
    """The node could not start: a port in use, an unreadable or newer database file."""


class Node:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.stats = metrics.make_metrics(config.statsd)
        self._lag = LoopLagMonitor(
            LAG_SAMPLE_INTERVAL,
            lambda lag: self.stats.timing(metrics.HUB_LOOP_LAG, lag * 1000),
        )
        self._refs: dict[str, pykka.ActorRef[Any]] = {}
        self.http_address: Address | None = None

    def start(self) -> None:
        """Start every actor; on failure stop those already running and re-raise."""
        config = self.config
        if config.gossip.enabled:
            log.warning(
                "gossip.enabled is set, but this version has no membership yet: "
                "running as a single node"
            )
        try:
            registry = RegistryActor.start(
                config.sqlite_path, config.node_name, config.reap_interval, self.stats
            )
            self._refs["registry"] = registry
            app = create_app(Actors(registry, self._refs, ASK_TIMEOUT), self.stats)
            http = HttpActor.start(app, config.http_bind, config.drain_timeout)
            self._refs["http"] = http
        except (OSError, SchemaError, sqlalchemy.exc.SQLAlchemyError) as exc:
            self.stop()
            raise StartError(str(exc)) from exc
        except BaseException:
            self.stop()
            raise
        self.http_address = http.proxy().address.get()
        self.stats.gauge(metrics.GOSSIP_PEERS, 0)
        self._lag.start()
        log.info("node %s started (database %s)", config.node_name, config.sqlite_path)

    def stop(self) -> None:
        """Stop in reverse order: no new requests, then the last writes commit."""
        self._lag.stop()
        for name in reversed(list(self._refs)):
            self._refs.pop(name).stop(block=True)
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
