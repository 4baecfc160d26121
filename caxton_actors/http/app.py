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
from caxton_actors.http.status import StatusPage
from caxton_actors.registry.store import StoreUnavailable
from caxton_actors.state.contract import StateError

log = logging.getLogger(__name__)
access = logging.getLogger("caxton_actors.access")
"""One INFO line per request, when http.access_log is on."""


class _Metrics:
    """Counts and times every request under its route's fixed name; with ``access_log``,
    logs it too (:func:`_log_access`)."""

    def __init__(self, stats: metrics.Metrics, access_log: bool = False) -> None:
        self._stats = stats
        self._access_log = access_log

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
        if self._access_log:
            _log_access(req, resp, elapsed_ms)


def _log_access(req: falcon.Request, resp: falcon.Response, elapsed_ms: float) -> None:
    """Method, route template (``/agents/{agent_id}``: what to group by), status, time and
    client, as fields of their own in a JSON line. The path is the client's text,
    percent-decoded: a line shows it quoted (``%r``), so a ``%0A`` in it cannot start a
    forged line, as is a method that is not letters. A stream (``/events``) is logged
    when its headers go, with the time taken until then."""
    method, route, status = req.method, req.uri_template, resp.status_code
    access.info(
        "%s %s %d %.2f ms from %s, path %r",
        method if method.isalpha() else repr(method),
        route or "-",
        status,
        elapsed_ms,
        req.remote_addr,
        req.path,
        extra={
            "method": method,
            "route": route,
            "path": req.path,
            "status": status,
            "duration_ms": round(elapsed_ms, 3),
            "client": req.remote_addr,
        },
    )


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
    access_log: bool = False,
) -> falcon.App[Any, Any]:
    """The API; without tokens every route is open (the node's config keeps that to
    loopback). ``access_log``: one line per request on the ``caxton_actors.access`` logger."""
    guard = Guard(Tokens(tokens), allowed_hosts, stats)
    app = falcon.App(middleware=(_Metrics(stats, access_log), guard))
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
    app.add_route("/agents/watch", r.AgentWatch(actors))
    app.add_route("/agents/{agent_id}", r.AgentItem(actors))
    card = r.AgentCard(actors)
    app.add_route("/agents/{agent_id}/.well-known/agent-card.json", card)
    app.add_route("/scopes/{scope}/agents/{agent_id}/.well-known/agent-card.json", card)
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
    app.add_route("/", StatusPage())
    return app
