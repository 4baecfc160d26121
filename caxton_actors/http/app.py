"""The Falcon application: routes, JSON through ujson, errors that explain.

Resources raise domain errors; the handlers here are the one place that turns
them into HTTP statuses, so no resource needs to know how the store or an actor
fails.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import falcon

from caxton_actors import metrics
from caxton_actors.http import resources as r
from caxton_actors.http.access import Token, Tokens
from caxton_actors.http.guard import Guard
from caxton_actors.http.media import json_handler
from caxton_actors.http.openapi import OpenApi
from caxton_actors.registry.store import StoreUnavailable
from caxton_actors.state.contract import StateError

log = logging.getLogger(__name__)


class _Metrics:
    """Counts and times every request under its route's fixed name."""

    def __init__(self, stats: metrics.Metrics) -> None:
        self._stats = stats

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.started = time.perf_counter()

    def process_response(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        resource: object,
        req_succeeded: bool,
    ) -> None:
        route = metrics.sanitize(getattr(resource, "name", "unrouted"))
        self._stats.incr(f"{metrics.HTTP_REQUESTS}.{route}")
        self._stats.incr(f"{metrics.HTTP_RESPONSES}.{str(resp.status)[0]}xx")
        elapsed_ms = (time.perf_counter() - req.context.started) * 1000
        self._stats.timing(f"{metrics.HTTP_REQUEST_TIME}.{route}", elapsed_ms)


def _route_not_found(
    req: falcon.Request, resp: falcon.Response, ex: Exception, params: dict[str, Any]
) -> None:
    raise falcon.HTTPNotFound(description=f"no route {req.path}; GET /openapi.json lists them")


def _method_not_allowed(
    req: falcon.Request,
    resp: falcon.Response,
    ex: falcon.HTTPMethodNotAllowed,
    params: dict[str, Any],
) -> None:
    allowed = dict(ex.headers or {}).get("Allow", "")
    raise falcon.HTTPMethodNotAllowed(
        allowed.split(", ") if allowed else [],
        description=f"{req.method} is not allowed on {req.path}; allowed: {allowed}",
    )


def _actor_unavailable(
    req: falcon.Request, resp: falcon.Response, ex: r.ActorUnavailable, params: dict[str, Any]
) -> None:
    raise falcon.HTTPServiceUnavailable(description=str(ex))


def _store_unavailable(
    req: falcon.Request, resp: falcon.Response, ex: StoreUnavailable, params: dict[str, Any]
) -> None:
    """Locked by another process, disk full: the client may retry later; the log says so."""
    log.warning("%s %s: the database is unavailable: %s", req.method, req.path, ex)
    raise falcon.HTTPServiceUnavailable(description=f"the database is unavailable: {ex}")


# A failed state call's kind: the caller's fault (400), the tool's (502), too slow (504).
_STATE_STATUS = {
    "bad_key": falcon.HTTPBadRequest,
    "bad_value": falcon.HTTPBadRequest,
    "unavailable": falcon.HTTPBadGateway,
    "backend": falcon.HTTPBadGateway,
    "timeout": falcon.HTTPGatewayTimeout,
}


def _state_error(
    req: falcon.Request, resp: falcon.Response, ex: StateError, params: dict[str, Any]
) -> None:
    raise _STATE_STATUS[ex.kind](description=str(ex))


def create_app(
    actors: r.Actors,
    stats: metrics.Metrics,
    tokens: tuple[Token, ...] = (),
    allowed_hosts: tuple[str, ...] = (),
) -> falcon.App[Any, Any]:
    """The API; without tokens every route is open (the node's config keeps that to
    loopback)."""
    guard = Guard(Tokens(tokens), allowed_hosts, stats)
    app = falcon.App(middleware=(_Metrics(stats), guard))
    app.req_options.media_handlers[falcon.MEDIA_JSON] = json_handler
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = json_handler
    app.add_error_handler(falcon.HTTPRouteNotFound, _route_not_found)
    app.add_error_handler(falcon.HTTPMethodNotAllowed, _method_not_allowed)
    app.add_error_handler(r.ActorUnavailable, _actor_unavailable)
    app.add_error_handler(StoreUnavailable, _store_unavailable)
    app.add_error_handler(StateError, _state_error)

    app.add_route("/health", r.Health(actors))
    app.add_route("/health/ready", r.Ready(actors))
    app.add_route("/health/gossip", r.GossipHealth(actors))
    app.add_route("/agents", r.AgentList(actors))
    app.add_route("/agents/{agent_id}", r.AgentItem(actors))
    app.add_route("/agents/{agent_id}/route", r.AgentRoute(actors))
    app.add_route("/agents/{agent_id}/state", r.AgentStateList(actors))
    app.add_route("/agents/{agent_id}/state/{key:path}", r.AgentStateItem(actors))
    app.add_route("/registry/digest", r.RegistryDigestResource(actors))
    app.add_route("/conversations", r.ConversationList(actors))
    app.add_route("/conversations/{conversation_id}", r.ConversationItem(actors))
    app.add_route("/conversations/{conversation_id}/activity", r.ConversationActivity(actors))
    app.add_route("/correlations", r.CorrelationList(actors))
    app.add_route("/correlations/{correlation_id}", r.CorrelationItem(actors))
    app.add_route("/members", r.MemberList(actors))
    app.add_route("/keyring", r.Keyring(actors))
    app.add_route("/events", r.Events(actors))
    app.add_route("/cluster/join", r.ClusterJoin(actors))
    app.add_route("/cluster/leave", r.ClusterLeave(actors))
    app.add_route("/openapi.json", OpenApi())
    return app
