"""Falcon resources: validate the request, ask an actor, shape the answer.

Resources hold no state of their own. Every question goes to an actor as an
immutable message with a deadline; an actor that does not answer in time is
a 503 that names it, never a hung request. Failures are raised as domain
errors (:class:`ActorUnavailable`, ``StoreUnavailable``, ``StateError``), and
``app.py`` maps them to HTTP in one place.
"""

from __future__ import annotations

import contextlib
import math
import re
import socket
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import falcon
import gevent
import gevent.lock
import gevent.queue
import gevent.select
import pykka
import ujson

from caxton_actors.actors.detector import HealthScore
from caxton_actors.actors.http import CLIENT_SOCKET
from caxton_actors.actors.keys import ChangeKeys, KeyringReport
from caxton_actors.actors.membership import (
    GossipStatus,
    JoinSeeds,
    ListMembers,
    MemberEvent,
    MemberView,
    SeedWaits,
    Subscribe,
    Unsubscribe,
)
from caxton_actors.actors.registry import (
    MAX_SNAPSHOT,
    AwaitVersion,
    CheckWritable,
    Closed,
    CountAgents,
    CreateConversation,
    CreateCorrelation,
    DeleteAgent,
    DeleteCorrelation,
    GetAgent,
    GetConversation,
    GetCorrelation,
    GetStateTool,
    HeadOf,
    ListAgents,
    PutAgent,
    RegistryDigest,
    RegistryFull,
    Snapshot,
    TouchConversation,
    Unwatch,
    Watch,
    WatchItem,
)
from caxton_actors.config import GOSSIP_PORT, ConfigError, parse_address, parse_duration
from caxton_actors.engine.messages import LeaveCluster
from caxton_actors.http import media
from caxton_actors.http.access import Scope
from caxton_actors.http.media import read_json_object
from caxton_actors.registry import cards
from caxton_actors.registry.query import Query
from caxton_actors.registry.records import (
    DEFAULT_SCOPE,
    ID_PATTERN,
    key_of,
    parse_token,
    token,
)
from caxton_actors.registry.replica import LIMITS
from caxton_actors.registry.store import Agent, Conversation, Correlation
from caxton_actors.registry.watch import Seen
from caxton_actors.runtime.actor import Mailbox, Ping, Request, ask
from caxton_actors.runtime.threads import run_in
from caxton_actors.state.contract import MAX_VALUE_BYTES, StateError
from caxton_actors.state.service import StateService
from caxton_actors.state.specs import SpecError
from caxton_actors.swim.messages import HTTP_META_KEY
from caxton_actors.wire.keyring import (
    KeyOp,
    KeyringError,
    KeyringRequest,
    fingerprint,
    parse_key,
)
from caxton_actors.wire.seeds import resolve as seeds_resolve
from caxton_actors.wire.transport import STREAM_TIMEOUT

MAX_ID_LENGTH = LIMITS.max_id_length
MAX_CAPABILITIES = LIMITS.max_capabilities
MAX_PARTICIPANTS = 64
DEFAULT_PAGE = 100
MAX_PAGE = 1000
MAX_TTL_SECONDS = 7 * 24 * 3600
MAX_SEEDS = 64
MAX_SCOPE_LENGTH = LIMITS.max_scope_length
MAX_QUERY_WORDS = 16
# Seconds a read given ``after=TOKEN`` may wait for its node to merge that version.
DEFAULT_WAIT = 2.0
MAX_WAIT = 5.0
# The header every agent write answers its read-your-writes token in.
TOKEN_HEADER = "X-Caxton-Token"
_ID = re.compile(ID_PATTERN)  # used with fullmatch: a trailing newline does not pass

R = TypeVar("R")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Actors:
    """What the resources may ask, and how long they wait for an answer.

    ``membership`` and ``detector`` are None on a node without gossip. In a node each
    is a supervisor's slot (``runtime/supervisor.py``): always the actor's latest
    incarnation, and dead between a crash and its restart.
    """

    registry: Mailbox
    membership: Mailbox | None
    detector: Mailbox | None
    all: tuple[tuple[str, Mailbox], ...]
    timeout: float
    state: StateService
    scopes: frozenset[str] = frozenset()
    """The agent scopes this node serves; empty: all."""


class ActorUnavailable(Exception):
    """An actor did not answer in time, or is not running; the message names it."""


@contextlib.contextmanager
def _answering(name: str, timeout: float) -> Iterator[None]:
    """Turn a wait on the ``name`` actor that comes to nothing into :class:`ActorUnavailable`."""
    try:
        yield
    except pykka.Timeout:
        raise ActorUnavailable(f"the {name} actor did not answer within {timeout:g}s") from None
    except pykka.ActorDeadError:
        raise ActorUnavailable(f"the {name} actor is not running") from None


def _ask(ref: Mailbox, request: Request[R], name: str, timeout: float) -> R:
    """The typed :func:`ask`; ``name`` is how a 503 calls the actor."""
    with _answering(name, timeout):
        return ask(ref, request, timeout)


def _command(ref: Mailbox, message: object, name: str, timeout: float) -> None:
    """Wait until the actor has handled ``message``, a command whose answer carries nothing."""
    with _answering(name, timeout):
        ref.ask(message, block=False).get(timeout=timeout)


def valid_id(value: object, field: str) -> str:
    """An identifier: 1 to 128 characters, letters, digits and ``._:@-``."""
    if not isinstance(value, str):
        raise falcon.HTTPBadRequest(description=f"{field} must be a string")
    if not 0 < len(value) <= MAX_ID_LENGTH:
        raise falcon.HTTPBadRequest(
            description=f"{field} must be 1 to {MAX_ID_LENGTH} characters long"
        )
    if not _ID.fullmatch(value):
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


def _plain(record: Agent | Conversation | Correlation) -> dict[str, Any]:
    """A stored record as a JSON object (``dataclasses.asdict`` deep-copies: 30x slower)."""
    return {name: getattr(record, name) for name in record.__slots__}


def _not_found(kind: str, key: str) -> falcon.HTTPNotFound:
    return falcon.HTTPNotFound(description=f"no {kind} with id {key!r}")


class Resource:
    """Base: every resource names itself for metrics and can ask actors.

    ``read_scope`` and ``change_scope`` are the token scopes its reads and its changes
    need (``http/guard.py``); None: no token at all.
    """

    name = "resource"
    read_scope: Scope | None = Scope.READ
    change_scope: Scope | None = Scope.WRITE

    def __init__(self, actors: Actors) -> None:
        self.actors = actors

    def registry(self, request: Request[R]) -> R:
        return _ask(self.actors.registry, request, "registry", self.actors.timeout)


class Health(Resource):
    name = "health"
    read_scope = None  # a probe carries no credentials

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Liveness: every actor running. One that crashed is dead until its supervisor
        has restarted it; if it never is, the node stops on its own."""
        failed = [
            f"the {name} actor is not running"
            for name, ref in self.actors.all
            if not ref.is_alive()
        ]
        resp.status = falcon.HTTP_503 if failed else falcon.HTTP_200
        resp.media = {"status": "unavailable", "failed": failed} if failed else {"status": "ok"}

    on_head = on_get


class Ready(Resource):
    name = "health_ready"
    read_scope = None

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Every actor answers, and the database takes a write (read-only, full or
        locked, it says which): what a client's request needs."""
        timeout = self.actors.timeout
        asks = [(name, ref.ask(Ping(), block=False)) for name, ref in self.actors.all]
        database = self.actors.registry.ask(CheckWritable(), block=False)
        failed = [why for name, answer in asks if (why := _unanswered(answer, name, timeout))]
        why = _unwritable(database, timeout)
        if why is not None and why not in failed:  # a dead registry is named once
            failed.append(why)
        resp.status = falcon.HTTP_503 if failed else falcon.HTTP_200
        resp.media = {"status": "unavailable" if failed else "ready", "failed": failed}


def _unanswered(future: pykka.Future[Any], name: str, timeout: float) -> str | None:
    """Why the ``name`` actor gave ``future`` no answer within ``timeout`` (the futures
    run together), or None when it did."""
    try:
        with _answering(name, timeout):
            future.get(timeout=timeout)
    except ActorUnavailable as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - whatever it raised, it is not ready
        return f"the {name} actor failed: {exc}"
    return None


def _unwritable(future: pykka.Future[str | None], timeout: float) -> str | None:
    why = _unanswered(future, "registry", timeout)
    if why is not None:
        return why
    cannot_write = future.get()
    return None if cannot_write is None else f"the database cannot write: {cannot_write}"


class GossipHealth(Resource):
    """The seed's gossip health body.

    ``degraded`` when the node sees fewer than half of the members it knows
    (itself included: it is on the minority side of a partition, or alone), or
    its Lifeguard health score is raised (it is itself slow). A node without
    gossip has no peers and is healthy. ``skewed_peers`` names the members whose wall
    clocks are off ours by more than ``engine.skew.SKEW_BOUND``: seconds ahead
    (negative: behind).
    """

    name = "health_gossip"

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        agents = self.registry(CountAgents())
        membership, detector = self.actors.membership, self.actors.detector
        if membership is None or detector is None:
            resp.media = {
                "peer_count": 0,
                "last_sync": None,
                "agent_count": agents,
                "encrypted": False,
                "skewed_peers": {},
                "status": "healthy",
            }
            return
        health = _ask(membership, GossipStatus(), "membership", self.actors.timeout)
        score = _ask(detector, HealthScore(), "detector", self.actors.timeout)
        minority = 2 * (health.peer_count + 1) < health.known + 1
        resp.media = {
            "peer_count": health.peer_count,
            "last_sync": None if health.last_sync is None else round(health.last_sync * 1000),
            "agent_count": agents,
            "encrypted": health.encrypted,
            "skewed_peers": health.skewed,
            "health_score": score,
            "status": "degraded" if minority or score > 0 else "healthy",
        }


class MemberList(Resource):
    name = "members"

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self.actors.membership is None:
            raise _gossip_off()
        membership, timeout = self.actors.membership, self.actors.timeout
        views = _ask(membership, ListMembers(), "membership", timeout)
        encrypted = _ask(membership, GossipStatus(), "membership", timeout).encrypted
        resp.media = {"members": [_member(view) for view in views], "encrypted": encrypted}


def _member(view: MemberView) -> dict[str, Any]:
    record = view.record
    meta = dict(record.meta)
    return {
        "name": record.name,
        "address": f"{record.addr[0]}:{record.addr[1]}",
        "http_address": meta.get(HTTP_META_KEY),
        "state": record.state.value,
        "incarnation": record.incarnation,
        "changed_at": round(view.changed_at * 1000),
        "meta": meta,
    }


def _gossip_off() -> falcon.HTTPConflict:
    return falcon.HTTPConflict(
        description="gossip is off on this node; start it with gossip.enabled: true"
    )


class Keyring(Resource):
    """The cluster's gossip keys, as ``serf keys`` does: list, install, use, remove.

    The change is made here first (refused here: a 409), then asked of every member on a
    sealed stream; the answer says who acknowledged, who refused and who could not be
    reached. Keys are shown as fingerprints only.
    """

    name = "keyring"
    read_scope = change_scope = Scope.ADMIN

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        report = self._change(KeyringRequest(KeyOp.LIST, None))
        installed: dict[str, list[int]] = {}
        for _, reply in report.replies:
            for i, key in enumerate(reply.keys):
                counts = installed.setdefault(key, [0, 0])
                counts[0] += 1
                counts[1] += i == 0
        resp.media = {
            "members": len(report.replies) + len(report.unreachable),
            "keys": [
                {"key": key, "installed": n, "primary": p} for key, (n, p) in installed.items()
            ],
            "unreachable": dict(report.unreachable),
        }

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json_object(req)
        _known_fields(body, {"op", "key"})
        op = _required(body, "op")
        if op not in (KeyOp.INSTALL, KeyOp.USE, KeyOp.REMOVE):
            raise falcon.HTTPBadRequest(description="op must be install, use or remove")
        try:
            key = parse_key(_str(_required(body, "key"), "key"))
        except KeyringError as exc:
            raise falcon.HTTPBadRequest(description=f"key: {exc}") from None
        report = self._change(KeyringRequest(KeyOp(op), key))
        (_, mine), *others = report.replies
        if mine.error:
            raise falcon.HTTPConflict(description=mine.error)
        resp.media = {
            "op": op,
            "key": fingerprint(key),
            "members": len(report.replies) + len(report.unreachable),
            "acknowledged": [name for name, reply in report.replies if not reply.error],
            "refused": {name: reply.error for name, reply in others if reply.error},
            "unreachable": dict(report.unreachable),
        }

    def _change(self, request: KeyringRequest) -> KeyringReport:
        if self.actors.membership is None:
            raise _gossip_off()
        waiting = _ask(
            self.actors.membership, ChangeKeys(request), "membership", self.actors.timeout
        )
        try:
            report: KeyringReport = waiting.get(timeout=STREAM_TIMEOUT + self.actors.timeout)
        except gevent.Timeout:
            raise ActorUnavailable("the members did not all answer in time") from None
        return report


class ClusterJoin(Resource):
    name = "cluster_join"
    change_scope = Scope.ADMIN

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self.actors.membership is None:
            raise _gossip_off()
        body = read_json_object(req)
        _known_fields(body, {"seeds"})
        seeds = _required(body, "seeds")
        if not isinstance(seeds, list) or not 0 < len(seeds) <= MAX_SEEDS:
            raise falcon.HTTPBadRequest(
                description=f"seeds must be an array of 1 to {MAX_SEEDS} host:port strings"
            )
        try:
            addresses = tuple(
                parse_address(_str(s, "seeds"), "seeds", default_port=GOSSIP_PORT) for s in seeds
            )
        except ConfigError as exc:
            raise falcon.HTTPBadRequest(description=str(exc)) from None
        me = _ask(self.actors.membership, GossipStatus(), "membership", self.actors.timeout).addr
        found = seeds_resolve(addresses, me)  # DNS here, in this request's greenlet
        waits = _ask(
            self.actors.membership, JoinSeeds(found.addresses), "membership", self.actors.timeout
        )
        answered, failed = _seeds_heard(waits)
        # 202: no seed answered (yet); the node goes on asking the contacted ones, with backoff.
        resp.status = falcon.HTTP_200 if answered else falcon.HTTP_202
        resp.media = {
            "answered": answered,
            "failed": failed,
            "contacted": [str(addr) for addr in found.addresses],
            "skipped": list(found.skipped),
        }


def _seeds_heard(waits: SeedWaits) -> tuple[list[str], dict[str, str]]:
    """The seeds that answered a join, and why each other one did not."""
    # Each exchange ends within STREAM_TIMEOUT, answered or not: wait that long, no more.
    gevent.wait([wait for _, wait in waits], timeout=STREAM_TIMEOUT + 1.0)
    answered: list[str] = []
    failed: dict[str, str] = {}
    for addr, wait in waits:
        failure = wait.get() if wait.ready() else f"no answer within {STREAM_TIMEOUT:g}s"
        if failure:
            failed[str(addr)] = failure
        else:
            answered.append(str(addr))
    return answered, failed


def _str(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise falcon.HTTPBadRequest(description=f"each of {field} must be a string")
    return value


class ClusterLeave(Resource):
    name = "cluster_leave"
    change_scope = Scope.ADMIN

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self.actors.membership is None:
            raise _gossip_off()
        _command(self.actors.membership, LeaveCluster(), "membership", self.actors.timeout)
        resp.status = falcon.HTTP_202
        resp.media = {"status": "left"}


def _scope(req: falcon.Request, served: frozenset[str], value: str | None = None) -> str:
    """The request's agent scope (``?scope=``, or ``value`` from the path): one this node
    serves."""
    scope = req.get_param("scope", default=DEFAULT_SCOPE) if value is None else value
    if not 0 < len(scope) <= MAX_SCOPE_LENGTH or not _ID.fullmatch(scope):
        raise falcon.HTTPBadRequest(
            description=f"scope must be 1 to {MAX_SCOPE_LENGTH} letters, digits or ._:@-, "
            "starting with a letter or digit"
        )
    if served and scope not in served:
        raise falcon.HTTPNotFound(
            description=f"this node does not serve scope {scope!r}; it serves "
            + ", ".join(sorted(served))
        )
    return scope


def _single_params(req: falcon.Request) -> None:
    for param, value in req.params.items():
        if isinstance(value, list):
            raise falcon.HTTPBadRequest(description=f"{param} is given more than once")


def _term(req: falcon.Request, name: str) -> str | None:
    value = req.get_param(name)
    if value is not None and not 0 < len(value) <= cards.MAX_TERM_LENGTH:
        raise falcon.HTTPBadRequest(
            description=f"{name} must be 1 to {cards.MAX_TERM_LENGTH} characters long"
        )
    return value


def _query(req: falcon.Request, served: frozenset[str]) -> Query:
    """The scope and terms of a lookup or a watch, from its query string."""
    _single_params(req)
    capability = req.get_param("capability")
    if capability is not None:
        valid_id(capability, "capability")
    words: tuple[str, ...] = ()
    text = req.get_param("q")
    if text is not None:
        words = tuple(cards.words(text))
        if not words or len(words) > MAX_QUERY_WORDS:
            raise falcon.HTTPBadRequest(
                description=f"q must hold 1 to {MAX_QUERY_WORDS} words of two or more "
                "letters or digits"
            )
    return Query(_scope(req, served), capability, _term(req, "skill"), _term(req, "tag"), words)


def _agent_json(agent: Agent, with_card: bool = False) -> dict[str, Any]:
    shown = {
        "id": agent.id,
        "scope": agent.scope,
        "node_id": agent.node_id,
        "capabilities": agent.capabilities,
        "last_seen": agent.last_seen,
        "status": agent.status,
        "route": agent.route,
        "version": agent.version,
        "name": agent.terms.name or None,
        "skills": agent.terms.skills,
        "tags": agent.terms.tags,
    }
    if with_card:
        shown["card"] = None if agent.card is None else ujson.loads(agent.card)
    return shown


class AgentResource(Resource):
    """A resource whose reads may wait for a write they follow (``?after=TOKEN``)."""

    def read_after(self, req: falcon.Request) -> None:
        """Return once this node has merged the version ``after`` names, or raise a 504
        that says what is missing after ``timeout`` seconds (read-your-writes)."""
        given = req.get_param("after")
        if given is None:
            if req.get_param("timeout") is not None:
                raise falcon.HTTPBadRequest(description="timeout is only for a read with after")
            return
        parsed = parse_token(given)
        if parsed is None:
            raise falcon.HTTPBadRequest(
                description="after must be a token NODE:VERSION, as a write answers in "
                f"{TOKEN_HEADER} (paging takes cursor)"
            )
        wait = req.get_param_as_float("timeout", min_value=0.0, max_value=MAX_WAIT)
        if wait is not None and not math.isfinite(wait):  # nan passes both bounds
            raise falcon.HTTPBadRequest(description=f"timeout must be 0 to {MAX_WAIT:g} seconds")
        wait = DEFAULT_WAIT if wait is None else wait
        owner, version = parsed
        waiting = self.registry(AwaitVersion(owner, version))
        if isinstance(waiting, int) or waiting.wait(wait):
            return
        waiting.set(False)  # gave up: the registry actor forgets it
        head = self.registry(HeadOf(owner))
        raise falcon.HTTPGatewayTimeout(
            description=f"this node holds {owner} up to version {head}; the token needs "
            f"{version} (waited {wait:g}s)"
        )


class AgentList(AgentResource):
    name = "agents"

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        query = _query(req, self.actors.scopes)
        cursor = req.get_param("cursor")
        if cursor is not None:
            valid_id(cursor, "cursor")
        limit = req.get_param_as_int("limit", min_value=1, max_value=MAX_PAGE)
        limit = DEFAULT_PAGE if limit is None else limit
        local = req.get_param_as_bool("local", default=False)
        self.read_after(req)
        page = self.registry(ListAgents(query, cursor, limit, local))
        resp.media = {
            "agents": [_agent_json(agent) for agent in page],
            "next": page[-1].id if len(page) == limit else None,
        }


class AgentItem(AgentResource):
    name = "agent"

    def on_get(self, req: falcon.Request, resp: falcon.Response, agent_id: str) -> None:
        scope = _scope(req, self.actors.scopes)
        valid_id(agent_id, "agent id")
        self.read_after(req)
        agent = self.registry(GetAgent(agent_id, scope))
        if agent is None:
            raise _not_found("agent", agent_id)
        resp.media = _agent_json(agent, with_card=True)

    def on_put(self, req: falcon.Request, resp: falcon.Response, agent_id: str) -> None:
        scope = _scope(req, self.actors.scopes)
        valid_id(agent_id, "agent id")
        body = read_json_object(req)
        _known_fields(body, {"capabilities", "card", "state_tool"})
        card = None
        if body.get("card") is not None:
            try:  # off the hub: the SDK takes 0.4 ms a card, and 150 ms to import
                card = run_in(gevent.get_hub().threadpool, cards.validate, body["card"])
            except cards.CardError as exc:
                raise falcon.HTTPBadRequest(description=str(exc)) from None
        if "capabilities" in body or card is None:
            capabilities = _id_list(
                _required(body, "capabilities"), "capabilities", MAX_CAPABILITIES, min_items=0
            )
        else:
            capabilities = cards.terms(card).capabilities()
        binding = None
        if body.get("state_tool") is not None:
            try:
                binding = self.actors.state.binding(body["state_tool"])
            except StateError as exc:  # a SpecError names the key: state_tool.config.url
                at = exc.at("state_tool") if isinstance(exc, SpecError) else "state_tool"
                raise falcon.HTTPBadRequest(description=f"{at}: {exc}") from None
        written = self.registry(PutAgent(agent_id, capabilities, binding, scope, card))
        if isinstance(written, RegistryFull):
            raise falcon.HTTPConflict(
                description=f"this node already owns its limit of {written.limit} agents; "
                "remove some, or register the agent on another node"
            )
        agent = written.record
        resp.status = falcon.HTTP_201 if written.created else falcon.HTTP_200
        resp.set_header(TOKEN_HEADER, token(agent.node_id, agent.version))
        resp.media = {
            **_agent_json(agent, with_card=True),
            "token": token(agent.node_id, agent.version),
        }

    def on_delete(self, req: falcon.Request, resp: falcon.Response, agent_id: str) -> None:
        scope = _scope(req, self.actors.scopes)
        removed = self.registry(DeleteAgent(valid_id(agent_id, "agent id"), scope))
        if removed is None:
            elsewhere = self.registry(GetAgent(agent_id, scope))
            if elsewhere is None:
                raise _not_found("agent", agent_id)
            raise falcon.HTTPConflict(
                description=f"agent {agent_id!r} is registered on node {elsewhere.node_id!r}, "
                f"not here; delete it there ({_there(elsewhere)})"
            )
        resp.set_header(TOKEN_HEADER, removed)
        resp.status = falcon.HTTP_204


class AgentCard(AgentResource):
    """The agent's A2A AgentCard as registered, where the A2A SDK's card resolver looks for
    it: ``{base}/.well-known/agent-card.json`` with ``http://NODE/agents/ID`` as the base (in
    another scope, ``http://NODE/scopes/SCOPE/agents/ID``: a resolver's base takes no query)."""

    name = "agent_card"

    def on_get(
        self, req: falcon.Request, resp: falcon.Response, agent_id: str, scope: str | None = None
    ) -> None:
        in_scope = _scope(req, self.actors.scopes, scope)
        valid_id(agent_id, "agent id")
        self.read_after(req)
        agent = self.registry(GetAgent(agent_id, in_scope))
        if agent is None:
            raise _not_found("agent", agent_id)
        if agent.card is None:
            raise falcon.HTTPNotFound(
                description=f"agent {agent_id!r} was registered without an AgentCard"
            )
        resp.content_type = falcon.MEDIA_JSON
        resp.text = agent.card


def _there(agent: Agent) -> str:
    """The owner's address, or why there is none (never an address shown as None)."""
    return agent.route or "not reachable now: no route to its node"


class AgentRoute(Resource):
    """Where to reach one agent: its owning node, that node's HTTP address, its status."""

    name = "agent_route"

    def on_get(self, req: falcon.Request, resp: falcon.Response, agent_id: str) -> None:
        scope = _scope(req, self.actors.scopes)
        agent = self.registry(GetAgent(valid_id(agent_id, "agent id"), scope))
        if agent is None:
            raise _not_found("agent", agent_id)
        resp.media = {
            "agent_id": agent.id,
            "node_id": agent.node_id,
            "route": agent.route,
            "status": agent.status,
        }


class _StateResource(Resource):
    def state(self, req: falcon.Request, agent_id: str, operation: str, *args: Any) -> Any:
        """Call the agent's state tool; the agent must live here and have one.

        A failed call raises ``StateError``; ``app.py`` maps its kind to a status. The
        tool keeps an agent of another scope under its key, ``scope/id``.
        """
        scope = _scope(req, self.actors.scopes)
        binding = self.registry(GetStateTool(valid_id(agent_id, "agent id"), scope))
        if not binding.registered_here:
            elsewhere = self.registry(GetAgent(agent_id, scope))
            if elsewhere is None:
                raise _not_found("agent", agent_id)
            raise falcon.HTTPConflict(
                description=f"agent {agent_id!r} is registered on node {elsewhere.node_id!r}; "
                f"its state is served there ({_there(elsewhere)})"
            )
        if binding.tool is None:
            raise falcon.HTTPConflict(
                description=f"agent {agent_id!r} is stateless: it was registered without a "
                "state_tool"
            )
        return self.actors.state.call(binding.tool, operation, key_of(scope, agent_id), *args)


class AgentStateItem(_StateResource):
    """One key of an agent's state; the body of a PUT is the value, any JSON."""

    name = "agent_state"

    def on_get(self, req: falcon.Request, resp: falcon.Response, agent_id: str, key: str) -> None:
        found, value = self.state(req, agent_id, "retrieve", key)
        if not found:
            raise falcon.HTTPNotFound(description=f"agent {agent_id!r} has no state at {key!r}")
        resp.content_type = falcon.MEDIA_JSON
        resp.text = media.dumps(value)  # not resp.media: a stored null is a value too

    def on_put(self, req: falcon.Request, resp: falcon.Response, agent_id: str, key: str) -> None:
        value = media.read_json(req, MAX_VALUE_BYTES)
        self.state(req, agent_id, "store", key, value)
        resp.status = falcon.HTTP_204

    def on_delete(
        self, req: falcon.Request, resp: falcon.Response, agent_id: str, key: str
    ) -> None:
        if not self.state(req, agent_id, "delete", key):
            raise falcon.HTTPNotFound(description=f"agent {agent_id!r} has no state at {key!r}")
        resp.status = falcon.HTTP_204


class AgentStateList(_StateResource):
    name = "agent_state_keys"

    def on_get(self, req: falcon.Request, resp: falcon.Response, agent_id: str) -> None:
        prefix = req.get_param("prefix", default="")
        resp.media = {"keys": self.state(req, agent_id, "list", prefix)}


class RegistryDigestResource(Resource):
    """Equal ``digest`` on two nodes means they hold the same registry."""

    name = "registry_digest"

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        scope = None if req.get_param("scope") is None else _scope(req, self.actors.scopes)
        view = self.registry(RegistryDigest(scope))
        resp.media = {
            "agents": view.agents,
            "unreachable": view.unreachable,
            "digest": view.digest,
            "heads": {head.name: head.version for head in view.heads},
        }


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
        resp.media = _plain(created)


class ConversationItem(Resource):
    name = "conversation"

    def on_get(self, req: falcon.Request, resp: falcon.Response, conversation_id: str) -> None:
        found = self.registry(GetConversation(valid_id(conversation_id, "conversation id")))
        if found is None:
            raise _not_found("conversation", conversation_id)
        resp.media = _plain(found)


class ConversationActivity(Resource):
    name = "conversation_activity"

    def on_post(self, req: falcon.Request, resp: falcon.Response, conversation_id: str) -> None:
        found = self.registry(TouchConversation(valid_id(conversation_id, "conversation id")))
        if found is None:
            raise _not_found("conversation", conversation_id)
        resp.media = _plain(found)


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
        resp.media = _plain(created)


class CorrelationItem(Resource):
    name = "correlation"

    def on_get(self, req: falcon.Request, resp: falcon.Response, correlation_id: str) -> None:
        found = self.registry(GetCorrelation(valid_id(correlation_id, "correlation id")))
        if found is None:
            raise _not_found("live correlation", correlation_id)
        resp.media = _plain(found)

    def on_delete(self, req: falcon.Request, resp: falcon.Response, correlation_id: str) -> None:
        if not self.registry(DeleteCorrelation(valid_id(correlation_id, "correlation id"))):
            raise _not_found("live correlation", correlation_id)
        resp.status = falcon.HTTP_204


# Seconds between keep-alive comments on an idle event stream, for proxies that
# close a silent connection.
EVENTS_HEARTBEAT = 15.0
# Seconds between two looks at whether an event stream's client has gone: its slot
# is free again within this time.
EVENTS_GONE_CHECK = 0.5
# Event streams open at once: each holds a connection for as long as its client
# listens, and the rest of the API needs connections too.
MAX_SUBSCRIBERS = 64


class Events(Resource):
    """Member changes as server-sent events, for as long as the client listens."""

    name = "events"

    def __init__(self, actors: Actors) -> None:
        super().__init__(actors)
        self._slots = gevent.lock.BoundedSemaphore(MAX_SUBSCRIBERS)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        membership = self.actors.membership
        if membership is None:
            raise _gossip_off()
        _take_slot(self._slots)
        try:
            queue: gevent.queue.Queue[MemberEvent | None] = gevent.queue.Queue()
            _command(membership, Subscribe(queue), "membership", self.actors.timeout)
        except BaseException:
            self._slots.release()
            raise
        resp.content_type = "text/event-stream"
        resp.set_header("Cache-Control", "no-cache")
        stream = _event_stream(
            queue, req.env.get(CLIENT_SOCKET), b": member events\n\n", _member_event
        )
        resp.stream = _closing(stream, lambda: membership.tell(Unsubscribe(queue)), self._slots)


def _member_event(event: MemberEvent | None) -> bytes | None:
    """None (the membership actor stopped: a restarted one knows no subscriber, so the
    client reconnects) ends the stream."""
    if event is None:
        return None
    data = media.dumps({"event": event.kind, **_member(event.member)})
    return f"event: {event.kind}\ndata: {data}\n\n".encode()


class AgentWatch(AgentResource):
    """The agents a query selects, then every change to them, as server-sent events.

    The registry actor takes the snapshot and starts the watch in one message, so no change
    falls between them or is told twice; a client that reconnects with ``Last-Event-ID``
    gets what it missed, or a fresh snapshot when that is no longer kept.
    """

    name = "agents_watch"

    def __init__(self, actors: Actors) -> None:
        super().__init__(actors)
        self._slots = gevent.lock.BoundedSemaphore(MAX_SUBSCRIBERS)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        query = _query(req, self.actors.scopes)
        if req.get_param("local") is not None:
            raise falcon.HTTPBadRequest(
                description="a watch follows the whole cluster's agents: local is for GET /agents"
            )
        self.read_after(req)
        _take_slot(self._slots)
        registry = self.actors.registry
        queue: gevent.queue.Queue[WatchItem] = gevent.queue.Queue()
        try:
            start = self.registry(Watch(query, queue, req.get_header("Last-Event-ID")))
        except BaseException:  # the Watch may still be queued: the Unwatch goes after it
            with contextlib.suppress(pykka.ActorDeadError):
                registry.tell(Unwatch(queue))
            self._slots.release()
            raise
        if isinstance(start, int):
            self._slots.release()
            raise falcon.HTTPBadRequest(
                description=f"more than {MAX_SNAPSHOT} agents match; narrow the watch with "
                "scope, capability, skill or tag"
            )
        resp.content_type = "text/event-stream"
        resp.set_header("Cache-Control", "no-cache")
        stream = _event_stream(
            queue, req.env.get(CLIENT_SOCKET), _snapshot_event(start), _agent_event
        )
        resp.stream = _closing(stream, lambda: registry.tell(Unwatch(queue)), self._slots)


def _snapshot_event(snapshot: Snapshot | None) -> bytes:
    if snapshot is None:  # resumed: what was missed is queued
        return b": resumed\n\n"
    data = media.dumps(
        {"version": snapshot.version, "agents": [_agent_json(a) for a in snapshot.agents]}
    )
    return f"id: {snapshot.version}\nevent: snapshot\ndata: {data}\n\n".encode()


def _agent_event(item: WatchItem) -> bytes | None:
    if isinstance(item, Closed):
        # Sent, then the stream ends (the slot is freed by _closing).
        raise _LastEvent(f"event: closed\ndata: {media.dumps({'reason': item.reason})}\n\n")
    seen: Seen = item
    data = media.dumps(_agent_json(seen.agent))
    return f"id: {seen.id}\nevent: {seen.kind}\ndata: {data}\n\n".encode()


class _LastEvent(Exception):
    """The event that ends a stream."""


def _take_slot(slots: gevent.lock.BoundedSemaphore) -> None:
    if not slots.acquire(blocking=False):
        raise falcon.HTTPServiceUnavailable(
            description=f"{MAX_SUBSCRIBERS} event streams of this kind are open, the most "
            "this node serves; try again later",
            retry_after=int(EVENTS_HEARTBEAT),
        )


def _closing(
    stream: Iterator[bytes], unsubscribe: Callable[[], None], slots: gevent.lock.BoundedSemaphore
) -> Iterator[bytes]:
    """``stream``, then, however it ends, the subscription and the slot given back."""
    try:
        yield from stream
    finally:
        with contextlib.suppress(pykka.ActorDeadError):  # restarting: it has forgotten us
            unsubscribe()
        slots.release()


def _event_stream(
    queue: gevent.queue.Queue[T],
    client: socket.socket | None,
    opening: bytes,
    render: Callable[[T], bytes | None],
) -> Iterator[bytes]:
    """``opening``, then each queued item as ``render`` writes it, until the client goes or
    ``render`` gives None (or raises :class:`_LastEvent` with a last event)."""
    yield opening
    quiet = 0.0
    while client is None or not _gone(client):
        try:
            item = queue.get(timeout=EVENTS_GONE_CHECK)
        except gevent.queue.Empty:
            quiet += EVENTS_GONE_CHECK
            if quiet >= EVENTS_HEARTBEAT:
                quiet = 0.0
                yield b": keep-alive\n\n"
            continue
        try:
            event = render(item)
        except _LastEvent as last:
            yield str(last).encode()
            return
        if event is None:
            return
        yield event


def _gone(client: socket.socket) -> bool:
    """An event stream's client sends nothing after its request: a socket that turns
    readable has been closed (or is misused); either way the stream ends."""
    readable, _, _ = gevent.select.select([client], [], [], 0)
    return bool(readable)
