"""Falcon resources: validate the request, ask an actor, shape the answer.

Resources hold no state of their own. Every question goes to an actor as an
immutable message with a deadline; an actor that does not answer in time is
a 503 that names it, never a hung request.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import falcon
import pykka

from caxton_actors.actors.registry import (
    CheckDatabase,
    CountAgents,
    CreateConversation,
    CreateCorrelation,
    DeleteAgent,
    DeleteCorrelation,
    GetAgent,
    GetConversation,
    GetCorrelation,
    ListAgents,
    PutAgent,
    TouchConversation,
)
from caxton_actors.config import ConfigError, parse_duration
from caxton_actors.http.media import read_json_object
from caxton_actors.runtime.actor import Ping

MAX_ID_LENGTH = 128
MAX_CAPABILITIES = 64
MAX_PARTICIPANTS = 64
DEFAULT_PAGE = 100
MAX_PAGE = 1000
MAX_TTL_SECONDS = 7 * 24 * 3600
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$"
_ID = re.compile(ID_PATTERN)


@dataclass(frozen=True, slots=True)
class Actors:
    """What the resources may ask, and how long they wait for an answer."""

    registry: pykka.ActorRef[Any]
    all: Mapping[str, pykka.ActorRef[Any]]
    timeout: float


def _ask(ref: pykka.ActorRef[Any], message: object, name: str, timeout: float) -> Any:
    try:
        return ref.ask(message, timeout=timeout)
    except pykka.Timeout:
        raise falcon.HTTPServiceUnavailable(
            description=f"the {name} actor did not answer within {timeout:g}s"
        ) from None
    except pykka.ActorDeadError:
        raise falcon.HTTPServiceUnavailable(
            description=f"the {name} actor is not running"
        ) from None


def valid_id(value: object, field: str) -> str:
    """An identifier: 1 to 128 characters, letters, digits and ``._:@-``."""
    if not isinstance(value, str):
        raise falcon.HTTPBadRequest(description=f"{field} must be a string")
    if not 0 < len(value) <= MAX_ID_LENGTH:
        raise falcon.HTTPBadRequest(
            description=f"{field} must be 1 to {MAX_ID_LENGTH} characters long"
        )
    if not _ID.match(value):
        raise falcon.HTTPBadRequest(
            description=f"{field} {value!r} may hold only letters, digits and ._:@- "
            "and must start with a letter or digit"
        )
    return value


def _id_list(value: object, field: str, limit: int, *, min_items: int) -> tuple[str, ...]:
    """A list of ids, de-duplicated, order kept."""
    if not isinstance(value, list):
        raise falcon.HTTPBadRequest(description=f"{field} must be a JSON array of strings")
    if not min_items <= len(value) <= limit:
        raise falcon.HTTPBadRequest(
            description=f"{field} must hold {min_items} to {limit} items, not {len(value)}"
        )
    return tuple(dict.fromkeys(valid_id(item, f"each of {field}") for item in value))


def _known_fields(body: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise falcon.HTTPBadRequest(description=f"unknown field(s): {', '.join(unknown)}")


def _required(body: Mapping[str, Any], field: str) -> Any:
    if field not in body:
        raise falcon.HTTPBadRequest(description=f"missing field: {field}")
    return body[field]


def _not_found(kind: str, key: str) -> falcon.HTTPNotFound:
    return falcon.HTTPNotFound(description=f"no {kind} with id {key!r}")


class Resource:
    """Base: every resource names itself for metrics and can ask actors."""

    name = "resource"

    def __init__(self, actors: Actors) -> None:
        self.actors = actors

    def registry(self, message: object) -> Any:
        return _ask(self.actors.registry, message, "registry", self.actors.timeout)


class Health(Resource):
    name = "health"

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "ok"}

    on_head = on_get


class Ready(Resource):
    name = "health_ready"

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        failed = []
        for name, ref in self.actors.all.items():
            try:
                _ask(ref, Ping(), name, self.actors.timeout)
            except falcon.HTTPServiceUnavailable as exc:
                failed.append(exc.description)
        try:
            self.registry(CheckDatabase())
        except falcon.HTTPServiceUnavailable as exc:
            failed.append(f"database check failed: {exc.description}")
        except Exception as exc:  # noqa: BLE001 - any database error means not ready
            failed.append(f"database check failed: {exc}")
        resp.status = falcon.HTTP_503 if failed else falcon.HTTP_200
        resp.media = {"status": "unavailable" if failed else "ready", "failed": failed}


class GossipHealth(Resource):
    """The seed's gossip health body; a node without gossip has no peers and is healthy."""

    name = "health_gossip"

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {
            "peer_count": 0,
            "last_sync": None,
            "agent_count": self.registry(CountAgents()),
            "status": "healthy",
        }


class AgentList(Resource):
    name = "agents"

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        capability = req.get_param("capability")
        if capability is not None:
            valid_id(capability, "capability")
        after = req.get_param("after")
        if after is not None:
            valid_id(after, "after")
        limit = req.get_param_as_int("limit", min_value=1, max_value=MAX_PAGE)
        limit = DEFAULT_PAGE if limit is None else limit
        page = self.registry(ListAgents(capability, after, limit))
        resp.media = {
            "agents": [dataclasses.asdict(agent) for agent in page],
            "next": page[-1].id if len(page) == limit else None,
        }


class AgentItem(Resource):
    name = "agent"

    def on_get(self, req: falcon.Request, resp: falcon.Response, agent_id: str) -> None:
        agent = self.registry(GetAgent(valid_id(agent_id, "agent id")))
        if agent is None:
            raise _not_found("agent", agent_id)
        resp.media = dataclasses.asdict(agent)

    def on_put(self, req: falcon.Request, resp: falcon.Response, agent_id: str) -> None:
        valid_id(agent_id, "agent id")
        body = read_json_object(req)
        _known_fields(body, {"capabilities"})
        capabilities = _id_list(
            _required(body, "capabilities"), "capabilities", MAX_CAPABILITIES, min_items=0
        )
        written = self.registry(PutAgent(agent_id, capabilities))
        resp.status = falcon.HTTP_201 if written.created else falcon.HTTP_200
        resp.media = dataclasses.asdict(written.record)

    def on_delete(self, req: falcon.Request, resp: falcon.Response, agent_id: str) -> None:
        if not self.registry(DeleteAgent(valid_id(agent_id, "agent id"))):
            raise _not_found("agent", agent_id)
        resp.status = falcon.HTTP_204


class ConversationList(Resource):
    name = "conversations"

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json_object(req)
        _known_fields(body, {"id", "participants"})
        conversation_id = valid_id(body.get("id", uuid.uuid4().hex), "id")
        participants = _id_list(
            _required(body, "participants"), "participants", MAX_PARTICIPANTS, min_items=1
        )
        created = self.registry(CreateConversation(conversation_id, participants))
        if created is None:
            raise falcon.HTTPConflict(
                description=f"a conversation with id {conversation_id!r} already exists"
            )
        resp.status = falcon.HTTP_201
        resp.location = f"/conversations/{conversation_id}"
        resp.media = dataclasses.asdict(created)


class ConversationItem(Resource):
    name = "conversation"

    def on_get(self, req: falcon.Request, resp: falcon.Response, conversation_id: str) -> None:
        found = self.registry(GetConversation(valid_id(conversation_id, "conversation id")))
        if found is None:
            raise _not_found("conversation", conversation_id)
        resp.media = dataclasses.asdict(found)


class ConversationActivity(Resource):
    name = "conversation_activity"

    def on_post(self, req: falcon.Request, resp: falcon.Response, conversation_id: str) -> None:
        found = self.registry(TouchConversation(valid_id(conversation_id, "conversation id")))
        if found is None:
            raise _not_found("conversation", conversation_id)
        resp.media = dataclasses.asdict(found)


def _ttl_ms(value: object) -> int:
    """A time to live: seconds as a number, or a duration such as ``"30s"``."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise falcon.HTTPBadRequest(
            description='ttl must be a number of seconds or a duration such as "30s"'
        )
    try:
        seconds = parse_duration(value, "ttl")
    except ConfigError as exc:
        raise falcon.HTTPBadRequest(description=f"ttl: {exc.reason}") from None
    if seconds > MAX_TTL_SECONDS:
        raise falcon.HTTPBadRequest(description=f"ttl must be at most {MAX_TTL_SECONDS}s")
    return max(1, round(seconds * 1000))


class CorrelationList(Resource):
    name = "correlations"

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json_object(req)
        _known_fields(body, {"correlation_id", "sender_id", "ttl"})
        correlation_id = valid_id(body.get("correlation_id", str(uuid.uuid4())), "correlation_id")
        sender_id = valid_id(_required(body, "sender_id"), "sender_id")
        ttl_ms = _ttl_ms(_required(body, "ttl"))
        created = self.registry(CreateCorrelation(correlation_id, sender_id, ttl_ms))
        if created is None:
            raise falcon.HTTPConflict(
                description=f"a live correlation with id {correlation_id!r} already exists"
            )
        resp.status = falcon.HTTP_201
        resp.location = f"/correlations/{correlation_id}"
        resp.media = dataclasses.asdict(created)


class CorrelationItem(Resource):
    name = "correlation"

    def on_get(self, req: falcon.Request, resp: falcon.Response, correlation_id: str) -> None:
        found = self.registry(GetCorrelation(valid_id(correlation_id, "correlation id")))
        if found is None:
            raise _not_found("live correlation", correlation_id)
        resp.media = dataclasses.asdict(found)

    def on_delete(self, req: falcon.Request, resp: falcon.Response, correlation_id: str) -> None:
        if not self.registry(DeleteCorrelation(valid_id(correlation_id, "correlation id"))):
            raise _not_found("live correlation", correlation_id)
        resp.status = falcon.HTTP_204
