"""The OpenAPI 3 description of the HTTP API, served at ``/openapi.json``.

Written by hand, not derived from the routes, so that
``tests/integration/test_openapi.py`` can hold the two to each other.
"""

from __future__ import annotations

from typing import Any

import falcon

from caxton_actors import __version__
from caxton_actors.actors.registry import MAX_SNAPSHOT
from caxton_actors.http.media import MAX_BODY_BYTES
from caxton_actors.http.resources import (
    DEFAULT_PAGE,
    DEFAULT_WAIT,
    MAX_CAPABILITIES,
    MAX_ID_LENGTH,
    MAX_PAGE,
    MAX_PARTICIPANTS,
    MAX_SEEDS,
    MAX_SUBSCRIBERS,
    MAX_TTL_SECONDS,
    MAX_WAIT,
)
from caxton_actors.registry.cards import MAX_CARD_BYTES
from caxton_actors.registry.records import DEFAULT_SCOPE, ID_PATTERN
from caxton_actors.state.specs import TOOL_KEYS

Json = dict[str, Any]

_ID: Json = {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH, "pattern": ID_PATTERN}
_MS: Json = {"type": "integer", "description": "Unix time in milliseconds"}
_TOKEN: Json = {
    "type": "string",
    "pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}:[1-9][0-9]*$",
    "description": "A read-your-writes token, `{owner}:{version}`: the node that made a write "
    "and its version once it had",
    "examples": ["node-a:1764561234567"],
}


def _ref(name: str) -> Json:
    return {"$ref": f"#/components/schemas/{name}"}


_REASONS = {
    "type": "object",
    "additionalProperties": {"type": "string"},
    "description": "By member name: why",
}
_ADDRESSES: Json = {"type": "array", "items": {"type": "string"}}
_JOIN_REPORT: Json = {
    "type": "object",
    "properties": {
        "answered": {**_ADDRESSES, "description": "Seeds (resolved) whose full state came back"},
        "failed": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "By seed (resolved): why it did not answer",
        },
        "contacted": _ADDRESSES,
        "skipped": {**_ADDRESSES, "description": "Seeds not contacted: `seed: why`"},
    },
}
_ENCRYPTED = {
    "type": "boolean",
    "description": "Whether gossip is sealed with keys (gossip.keys); false without gossip",
}


def _json(schema: Json, description: str) -> Json:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> Json:
    return _json(_ref("Error"), description)


def _inline_tool(kind: str) -> Json:
    """An inline state tool of one type: exactly the keys its backend reads."""
    keys = TOOL_KEYS[kind]
    required = [name for name, key in keys.items() if key.required]
    config: Json = {
        "type": "object",
        "additionalProperties": False,
        "properties": {name: {} for name in keys},
    }
    if required:
        config["required"] = required
    return {
        "type": "object",
        "required": ["type", "config"] if required else ["type"],
        "additionalProperties": False,
        "properties": {"type": {"const": kind}, "config": config},
    }


def _path_id(name: str) -> Json:
    return {"name": name, "in": "path", "required": True, "schema": _ID}


_BAD_BODY: Json = {
    "400": _error("Malformed JSON, a wrong type, a missing or unknown field, a bad id"),
    "413": _error(f"The body is larger than {MAX_BODY_BYTES} bytes"),
    "415": _error("The Content-Type is not application/json"),
    "503": _error("An actor did not answer in time"),
}
_UNAVAILABLE: Json = {"503": _error("An actor did not answer in time")}
_SCOPE_NAME: Json = {**_ID, "maxLength": 64}
_NOT_SERVED = "a scope this node does not serve (registry.scopes: the description names them)"
_WAITED: Json = {
    "504": _error(
        "`after` was not merged within `timeout`; the description says what is missing: "
        "`node C holds node-a up to version X; the token needs Y`"
    ),
}
_BAD_WAIT = f"a malformed `after` token, a `timeout` over {MAX_WAIT:g}"


def _query(name: str, schema: Json, description: str) -> Json:
    return {"name": name, "in": "query", "description": description, "schema": schema}


_IN_SCOPE = _query(
    "scope",
    {**_SCOPE_NAME, "default": DEFAULT_SCOPE},
    "The agents' scope: a namespace, not a security boundary (the same id in two scopes "
    "is two agents)",
)
_WAIT: list[Json] = [
    _query(
        "after",
        _TOKEN,
        "A token a write answered with (on any node): answer once this node has merged "
        "that write, waiting at most `timeout`",
    ),
    _query(
        "timeout",
        {"type": "number", "minimum": 0, "maximum": MAX_WAIT, "default": DEFAULT_WAIT},
        "Seconds to wait for `after`",
    ),
]
_CARD_FILTERS: list[Json] = [
    _query("capability", _ID, "Only agents with this capability"),
    _query("skill", {"type": "string", "minLength": 1}, "Only agents whose card has this skill id"),
    _query("tag", {"type": "string", "minLength": 1}, "Only agents whose card has this tag"),
    _query(
        "q",
        {"type": "string", "minLength": 1},
        "Only agents whose card's name and description hold every word given "
        "(whole words, any case)",
    ),
]


def _written(response: Json) -> Json:
    """A write's answer: ``response`` with the token to read it back by, anywhere."""
    token = {"description": "This write's read-your-writes token", "schema": _TOKEN}
    return {**response, "headers": {"X-Caxton-Token": token}}


_STATE_ERRORS: Json = {
    "400": _error("A bad key or value"),
    "404": _error("No such agent, or no value at the key"),
    "409": _error("The agent is stateless, or lives on another node"),
    "502": _error("The state tool failed or cannot be used"),
    "504": _error("The state tool did not answer in time (state_timeout)"),
    **_UNAVAILABLE,
}


def _card(summary: str) -> Json:
    return {
        "summary": summary,
        "responses": {
            "200": _json(_ref("AgentCard"), "The card exactly as registered"),
            "400": _error("A bad id or scope"),
            "404": _error(f"No such agent, an agent without a card, or {_NOT_SERVED}"),
            **_UNAVAILABLE,
        },
    }


SCHEMAS: Json = {
    "Error": {
        "type": "object",
        "required": ["title"],
        "properties": {"title": {"type": "string"}, "description": {"type": "string"}},
    },
    "Agent": {
        "type": "object",
        "required": [
            "id",
            "scope",
            "node_id",
            "capabilities",
            "last_seen",
            "status",
            "route",
            "version",
            "skills",
            "tags",
            "name",
        ],
        "properties": {
            "id": _ID,
            "scope": _ID,
            "node_id": {"type": "string", "description": "The owning node"},
            "capabilities": {
                "type": "array",
                "items": _ID,
                "description": "As registered; without, the card's skill ids and tags",
            },
            "version": {
                "type": "integer",
                "description": "The owning node's version at the agent's last change",
            },
            "skills": {
                "type": "array",
                "items": {"type": "string"},
                "description": "The card's skill ids",
            },
            "tags": {
                "type": "array",
                "items": {"type": "string"},
                "description": "The card's skills' tags",
            },
            "name": {"type": ["string", "null"], "description": "The card's name"},
            "last_seen": _MS,
            "status": {
                "type": "string",
                "enum": ["active", "unreachable"],
                "description": "unreachable: the owning node is dead or has left",
            },
            "route": {
                "type": ["string", "null"],
                "description": "The owning node's HTTP base address",
            },
        },
    },
    "AgentPage": {
        "type": "object",
        "required": ["agents", "next"],
        "properties": {
            "agents": {"type": "array", "items": _ref("Agent")},
            "next": {
                "type": ["string", "null"],
                "description": "Pass as `cursor` for the next page; null on the last page",
            },
        },
    },
    "AgentCard": {
        "type": "object",
        "description": "An A2A AgentCard as the A2A protocol writes it (JSON, camelCase), "
        f"validated with the official A2A SDK; at most {MAX_CARD_BYTES} bytes as compact JSON",
        "properties": {
            "name": {"type": "string"},
            "description": {"type": "string"},
            "skills": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id"],
                    "properties": {
                        "id": {"type": "string"},
                        "tags": {"type": "array", "items": {"type": "string"}},
                    },
                },
            },
        },
    },
    "AgentWithCard": {
        "allOf": [
            _ref("Agent"),
            {
                "type": "object",
                "required": ["card"],
                "properties": {"card": {"anyOf": [_ref("AgentCard"), {"type": "null"}]}},
            },
        ],
    },
    "RegisteredAgent": {
        "allOf": [
            _ref("AgentWithCard"),
            {"type": "object", "required": ["token"], "properties": {"token": _TOKEN}},
        ],
    },
    "AgentSnapshot": {
        "type": "object",
        "required": ["version", "agents"],
        "properties": {
            "version": {
                "type": "string",
                "description": "`<epoch>-<seq>`: the event id the snapshot holds up to",
            },
            "agents": {"type": "array", "items": _ref("Agent")},
        },
    },
    "Member": {
        "type": "object",
        "required": ["name", "address", "state", "incarnation", "changed_at", "meta"],
        "properties": {
            "name": {"type": "string"},
            "address": {"type": "string", "description": "Gossip host:port"},
            "http_address": {"type": ["string", "null"]},
            "state": {"enum": ["alive", "suspect", "dead", "left"]},
            "incarnation": {"type": "integer"},
            "changed_at": _MS,
            "meta": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "Conversation": {
        "type": "object",
        "required": ["id", "participants", "created_at", "last_activity"],
        "properties": {
            "id": _ID,
            "participants": {"type": "array", "items": _ID},
            "created_at": _MS,
            "last_activity": _MS,
        },
    },
    "Correlation": {
        "type": "object",
        "required": ["correlation_id", "sender_id", "created_at", "expires_at"],
        "properties": {
            "correlation_id": _ID,
            "sender_id": _ID,
            "created_at": _MS,
            "expires_at": _MS,
        },
    },
}

_PAGE: Json = {
    "description": "The status page (HTML, its script inline): it reads this API from the "
    "browser and asks for a token when the API answers 401",
    "content": {"text/html": {"schema": {"type": "string"}}},
}

PATHS: Json = {
    "/": {
        "get": {
            "summary": "The status page: members, agents, health, live member events",
            "security": [],
            "responses": {"200": _PAGE, "304": {"description": "Not modified (ETag)"}},
        },
        "head": {
            "summary": "The status page's headers",
            "security": [],
            "responses": {"200": {"description": "The page's headers, no body"}},
        },
    },
    "/health": {
        "get": {
            "summary": "Liveness: every actor running",
            "security": [],
            "responses": {
                "200": _json({"type": "object"}, "Alive"),
                "503": _json({"type": "object"}, "An actor is down; `failed` names it"),
            },
        },
        "head": {
            "summary": "Liveness, no body",
            "security": [],
            "responses": {
                "200": {"description": "Alive"},
                "503": {"description": "An actor is down"},
            },
        },
    },
    "/health/ready": {
        "get": {
            "summary": "Readiness: every actor answers and the database takes a write",
            "security": [],
            "responses": {
                "200": _json({"type": "object"}, "Ready"),
                "503": _json({"type": "object"}, "Not ready; `failed` names what failed"),
            },
        }
    },
    "/health/gossip": {
        "get": {
            "summary": "Gossip health (the seed's GossipHealth body)",
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": [
                            "peer_count",
                            "last_sync",
                            "agent_count",
                            "encrypted",
                            "skewed_peers",
                            "status",
                        ],
                        "properties": {
                            "peer_count": {"type": "integer"},
                            "last_sync": {"type": ["integer", "null"]},
                            "agent_count": {"type": "integer"},
                            "encrypted": _ENCRYPTED,
                            "skewed_peers": {
                                "type": "object",
                                "additionalProperties": {"type": "number"},
                                "description": "Members whose wall clocks are more than 5 s "
                                "off this node's, by name: seconds ahead (negative: behind), "
                                "over at least 5 s of their datagrams. Keep clocks "
                                "synchronised: registry versions and times come from them",
                            },
                            "health_score": {
                                "type": "integer",
                                "description": "Lifeguard local health, 0 is best; "
                                "only when gossip is on",
                            },
                            "status": {"enum": ["healthy", "degraded"]},
                        },
                    },
                    "Gossip health",
                ),
                **_UNAVAILABLE,
            },
        }
    },
    "/agents": {
        "get": {
            "summary": "List a scope's agents in id order; the filters combine (all must hold)",
            "parameters": [
                _IN_SCOPE,
                *_CARD_FILTERS,
                _query("cursor", _ID, "The `next` of the page before"),
                _query(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": DEFAULT_PAGE},
                    "The most agents on a page",
                ),
                _query(
                    "local",
                    {"type": "boolean", "default": False},
                    "true: only the agents registered on this node",
                ),
                *_WAIT,
            ],
            "responses": {
                "200": _json(_ref("AgentPage"), "A page of agents"),
                "400": _error(f"A bad query parameter, {_BAD_WAIT}"),
                "404": _error(_NOT_SERVED.capitalize()),
                **_WAITED,
                **_UNAVAILABLE,
            },
        }
    },
    "/agents/watch": {
        "get": {
            "summary": "Follow a scope's agents that pass the filters: a snapshot, then each "
            "change, as server-sent events",
            "description": "Each event has an `id:` (`<epoch>-<seq>`) but `closed`. "
            "`snapshot`: an AgentSnapshot. `added`, `updated`, `unreachable`, `removed`: "
            'an Agent (removed: as it last was). `closed`: `{"reason": ...}` (a slow '
            "consumer, the node stopping), then the stream ends. `: keep-alive` comments "
            "between. Reconnect with `Last-Event-ID`: the node replays what followed it, "
            "or, when that is too old or from another node or node life, sends a fresh "
            "snapshot that replaces the set.",
            "parameters": [
                _IN_SCOPE,
                *_CARD_FILTERS,
                *_WAIT,
                {
                    "name": "Last-Event-ID",
                    "in": "header",
                    "description": "The last event id seen, to resume after",
                    "schema": {"type": "string"},
                },
            ],
            "responses": {
                "200": {
                    "description": "The event stream, until the client goes or a `closed`",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}},
                },
                "400": _error(
                    f"A bad query parameter, {_BAD_WAIT}, or a snapshot of more than "
                    f"{MAX_SNAPSHOT} agents (narrow the filter)"
                ),
                "404": _error(_NOT_SERVED.capitalize()),
                "503": _error(f"{MAX_SUBSCRIBERS} watches are open, the most a node serves"),
                **_WAITED,
            },
        }
    },
    "/agents/{agent_id}": {
        "parameters": [_path_id("agent_id"), _IN_SCOPE],
        "get": {
            "summary": "One agent, with its card",
            "parameters": _WAIT,
            "responses": {
                "200": _json(_ref("AgentWithCard"), "The agent"),
                "400": _error(f"A bad id or scope, {_BAD_WAIT}"),
                "404": _error(f"No such agent, or {_NOT_SERVED}"),
                **_WAITED,
                **_UNAVAILABLE,
            },
        },
        "put": {
            "summary": "Register or update an agent on this node",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "anyOf": [{"required": ["capabilities"]}, {"required": ["card"]}],
                            "additionalProperties": False,
                            "properties": {
                                "capabilities": {
                                    "type": "array",
                                    "items": _ID,
                                    "maxItems": MAX_CAPABILITIES,
                                    "description": "Without: the card's skill ids and tags, "
                                    f"made ids, the first {MAX_CAPABILITIES}",
                                },
                                "card": _ref("AgentCard"),
                                "state_tool": {
                                    "description": "the name of a configured state tool, or "
                                    '{"type": ..., "config": {...}} when the node has '
                                    "state_tools_inline: true (not filesystem, not an mcp "
                                    "command; s3 and postgres with their own credentials); "
                                    "absent or null: stateless. Never returned.",
                                    "oneOf": [
                                        {"type": "string"},
                                        *[_inline_tool(kind) for kind in TOOL_KEYS],
                                        {"type": "null"},
                                    ],
                                },
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": _written(_json(_ref("RegisteredAgent"), "Updated")),
                "201": _written(_json(_ref("RegisteredAgent"), "Registered")),
                "404": _error(_NOT_SERVED.capitalize()),
                "409": _error("This node already owns its limit of agents"),
                **_BAD_BODY,
                "400": _error(
                    "A bad body, id or scope; neither capabilities nor card; a card that "
                    "does not validate (the description names the field: "
                    "`card.skills[0].id: ...`) or is over "
                    f"{MAX_CARD_BYTES} bytes; or a state_tool that is not configured, that "
                    "cannot work (the description names the key: state_tool.config.url), or "
                    "is inline while state_tools_inline is off"
                ),
                "413": _error(
                    f"The body is larger than {MAX_BODY_BYTES} bytes, or the card than "
                    f"{MAX_CARD_BYTES}"
                ),
            },
        },
        "delete": {
            "summary": "Deregister an agent registered on this node",
            "responses": {
                "204": _written({"description": "Deregistered"}),
                "400": _error("A bad id or scope"),
                "404": _error(f"No such agent, or {_NOT_SERVED}"),
                "409": _error("The agent is registered on another node"),
                **_UNAVAILABLE,
            },
        },
    },
    "/agents/{agent_id}/.well-known/agent-card.json": {
        "parameters": [_path_id("agent_id"), _IN_SCOPE],
        "get": _card("The agent's A2A AgentCard, where A2A clients look for it"),
    },
    "/scopes/{scope}/agents/{agent_id}/.well-known/agent-card.json": {
        "parameters": [
            {"name": "scope", "in": "path", "required": True, "schema": _SCOPE_NAME},
            _path_id("agent_id"),
        ],
        "get": _card(
            "The card of an agent in a scope named in the path: an A2A client's base URL "
            "cannot carry a query"
        ),
    },
    "/agents/{agent_id}/route": {
        "parameters": [_path_id("agent_id"), _IN_SCOPE],
        "get": {
            "summary": "Where to reach an agent: its node, that node's address, its status",
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["agent_id", "node_id", "route", "status"],
                        "properties": {
                            "agent_id": _ID,
                            "node_id": {"type": "string"},
                            "route": {"type": ["string", "null"]},
                            "status": {"type": "string", "enum": ["active", "unreachable"]},
                        },
                    },
                    "The route",
                ),
                "400": _error("A bad id"),
                "404": _error("No such agent"),
                **_UNAVAILABLE,
            },
        },
    },
    "/agents/{agent_id}/state": {
        "parameters": [_path_id("agent_id"), _IN_SCOPE],
        "get": {
            "summary": "The keys of an agent's state, sorted; the agent must live on this node",
            "parameters": [
                {
                    "name": "prefix",
                    "in": "query",
                    "description": "only keys that start with it",
                    "schema": {"type": "string"},
                }
            ],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["keys"],
                        "properties": {"keys": {"type": "array", "items": {"type": "string"}}},
                    },
                    "The keys",
                ),
                **_STATE_ERRORS,
            },
        },
    },
    "/agents/{agent_id}/state/{key}": {
        "parameters": [
            _path_id("agent_id"),
            _IN_SCOPE,
            {
                "name": "key",
                "in": "path",
                "required": True,
                "description": "segments joined by /, each 1 to 128 of letters, digits, ._:@- "
                "(not starting with .), at most 512 in all",
                "schema": {"type": "string"},
            },
        ],
        "get": {
            "summary": "The JSON value at the agent's key, from its state tool",
            "responses": {"200": _json({}, "The value"), **_STATE_ERRORS},
        },
        "put": {
            "summary": "Store a JSON value (the whole body, at most 1 MiB) at the agent's key",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {}}},
            },
            "responses": {
                "204": {"description": "Stored"},
                "413": _error("The value is larger than 1 MiB"),
                "415": _error("Not application/json"),
                **_STATE_ERRORS,
            },
        },
        "delete": {
            "summary": "Delete the agent's key",
            "responses": {"204": {"description": "Deleted"}, **_STATE_ERRORS},
        },
    },
    "/registry/digest": {
        "get": {
            "summary": "A digest of the registry: equal on nodes that hold the same agents",
            "parameters": [
                _query(
                    "scope",
                    _SCOPE_NAME,
                    "That scope's agents only; without, the whole registry's",
                )
            ],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["agents", "unreachable", "digest", "heads"],
                        "properties": {
                            "agents": {"type": "integer"},
                            "unreachable": {"type": "integer"},
                            "digest": {"type": "string"},
                            "heads": {
                                "type": "object",
                                "description": "Per owning node, the version known here",
                                "additionalProperties": {"type": "integer"},
                            },
                        },
                    },
                    "The digest",
                ),
                "400": _error("A bad scope"),
                "404": _error(_NOT_SERVED.capitalize()),
                **_UNAVAILABLE,
            },
        },
    },
    "/conversations": {
        "post": {
            "summary": "Start tracking a conversation",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["participants"],
                            "additionalProperties": False,
                            "properties": {
                                "id": _ID,
                                "participants": {
                                    "type": "array",
                                    "items": _ID,
                                    "minItems": 1,
                                    "maxItems": MAX_PARTICIPANTS,
                                },
                            },
                        }
                    }
                },
            },
            "responses": {
                "201": _json(_ref("Conversation"), "Created"),
                "409": _error("The id is taken"),
                **_BAD_BODY,
            },
        }
    },
    "/conversations/{conversation_id}": {
        "parameters": [_path_id("conversation_id")],
        "get": {
            "summary": "One conversation",
            "responses": {
                "200": _json(_ref("Conversation"), "The conversation"),
                "400": _error("A bad id"),
                "404": _error("No such conversation"),
                **_UNAVAILABLE,
            },
        },
    },
    "/conversations/{conversation_id}/activity": {
        "parameters": [_path_id("conversation_id")],
        "post": {
            "summary": "Record activity: last_activity becomes now",
            "responses": {
                "200": _json(_ref("Conversation"), "The conversation"),
                "400": _error("A bad id"),
                "404": _error("No such conversation"),
                **_UNAVAILABLE,
            },
        },
    },
    "/correlations": {
        "post": {
            "summary": "Track a pending message until it is answered or expires",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["sender_id", "ttl"],
                            "additionalProperties": False,
                            "properties": {
                                "correlation_id": _ID,
                                "sender_id": _ID,
                                "ttl": {
                                    "description": "Seconds, or a duration such as "
                                    f'"500ms", "30s", "2m"; at most {MAX_TTL_SECONDS}s',
                                    "oneOf": [
                                        {"type": "number", "exclusiveMinimum": 0},
                                        {"type": "string"},
                                    ],
                                },
                            },
                        }
                    }
                },
            },
            "responses": {
                "201": _json(_ref("Correlation"), "Created"),
                "409": _error("A live correlation has the id"),
                **_BAD_BODY,
            },
        }
    },
    "/correlations/{correlation_id}": {
        "parameters": [_path_id("correlation_id")],
        "get": {
            "summary": "A live correlation; an expired one is gone",
            "responses": {
                "200": _json(_ref("Correlation"), "The correlation"),
                "400": _error("A bad id"),
                "404": _error("No such live correlation"),
                **_UNAVAILABLE,
            },
        },
        "delete": {
            "summary": "Resolve a correlation",
            "responses": {
                "204": {"description": "Removed"},
                "400": _error("A bad id"),
                "404": _error("No such live correlation"),
                **_UNAVAILABLE,
            },
        },
    },
    "/members": {
        "get": {
            "summary": "The cluster's members as this node sees them",
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["members", "encrypted"],
                        "properties": {
                            "members": {"type": "array", "items": _ref("Member")},
                            "encrypted": _ENCRYPTED,
                        },
                    },
                    "Members",
                ),
                "409": _error("Gossip is off on this node"),
                **_UNAVAILABLE,
            },
        }
    },
    "/events": {
        "get": {
            "summary": "Server-sent events: a member joined, suspect, recovered, dead, left "
            "or updated; each `data:` is a Member with an `event` field",
            "responses": {
                "200": {
                    "description": "An endless event stream",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}},
                },
                "409": _error("Gossip is off on this node"),
                **_UNAVAILABLE,
            },
        }
    },
    "/keyring": {
        "get": {
            "summary": "The gossip keys every member holds (fingerprints), as `keys list`",
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["members", "keys", "unreachable"],
                        "properties": {
                            "members": {"type": "integer"},
                            "keys": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "key": {"type": "string"},
                                        "installed": {"type": "integer"},
                                        "primary": {"type": "integer"},
                                    },
                                },
                            },
                            "unreachable": _REASONS,
                        },
                    },
                    "Keys by fingerprint: on how many members, and primary on how many",
                ),
                "409": _error("Gossip is off on this node"),
                **_UNAVAILABLE,
            },
        },
        "post": {
            "summary": "Install, use or remove a gossip key on every member",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["op", "key"],
                            "additionalProperties": False,
                            "properties": {
                                "op": {"enum": ["install", "use", "remove"]},
                                "key": {"type": "string", "description": "32 bytes, base64"},
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {
                            "op": {"type": "string"},
                            "key": {"type": "string", "description": "its fingerprint"},
                            "members": {"type": "integer"},
                            "acknowledged": {"type": "array", "items": {"type": "string"}},
                            "refused": _REASONS,
                            "unreachable": _REASONS,
                        },
                    },
                    "Done here; who acknowledged, who refused and who was not reached",
                ),
                "409": _error(
                    "Refused here (the primary key, a key not installed, gossip not "
                    "encrypted or off)"
                ),
                **_BAD_BODY,
            },
        },
    },
    "/cluster/join": {
        "post": {
            "summary": "Join a cluster through seeds (host:port; names resolved now)",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["seeds"],
                            "additionalProperties": False,
                            "properties": {
                                "seeds": {
                                    "type": "array",
                                    "items": {"type": "string"},
                                    "minItems": 1,
                                    "maxItems": MAX_SEEDS,
                                }
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": _json(
                    _JOIN_REPORT,
                    "Joined: at least one seed answered (`answered`); `failed` says why each "
                    "other did not, `skipped` which were not contacted and why",
                ),
                "202": _json(
                    _JOIN_REPORT,
                    "No seed answered; the node goes on asking the `contacted` ones, with backoff",
                ),
                "409": _error("Gossip is off on this node"),
                **_BAD_BODY,
            },
        }
    },
    "/cluster/leave": {
        "post": {
            "summary": "Leave the cluster gracefully: `left` everywhere, not `dead`",
            "responses": {
                "202": _json({"type": "object"}, "Leaving"),
                "409": _error("Gossip is off on this node"),
                **_UNAVAILABLE,
            },
        }
    },
    "/openapi.json": {
        "get": {
            "summary": "This document",
            "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")},
        }
    },
}

_SCOPES = (
    "An API token (http.tokens, name:scope:secret) as Authorization: Bearer <secret>, "
    "needed on every route but /, /health and /health/ready once the node has tokens. "
    "Token scopes (not the agents' `scope` parameter) nest: read (every GET), write "
    "(agents, their state, conversations, correlations; includes read), admin "
    "(/cluster/join, /cluster/leave, /keyring; includes write)."
)
_FRONT_DOOR: Json = {
    "421": _error("The Host header names neither localhost, an IP address nor an allowed host"),
}
_GUARDED: Json = {
    "401": _error("No token, or not one of the node's"),
    "403": _error("The token's scope is too small for this route"),
}


def _guarded(paths: Json) -> Json:
    """Every operation may meet the front door (``http/guard.py``): the Host check, the
    token check unless the operation needs no security, and for a POST the forgery check."""
    for operations in paths.values():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            extra = _FRONT_DOOR if operation.get("security") == [] else _FRONT_DOOR | _GUARDED
            if method == "post":  # what an HTML form could send is refused
                extra = {"415": _error("A POST that is not Content-Type: application/json")} | extra
            operation["responses"] = {**extra, **operation["responses"]}
    return paths


DOCUMENT: Json = {
    "openapi": "3.1.0",
    "info": {
        "title": "caxton-actors node API",
        "version": __version__,
        "description": "Health, agent registry, conversations and message correlation "
        "of one caxton-actors node. Errors are JSON objects with a title and a description.",
    },
    "paths": _guarded(PATHS),
    "security": [{"bearer": []}],
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": _SCOPES}},
    },
}


class OpenApi:
    name = "openapi"

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = DOCUMENT
