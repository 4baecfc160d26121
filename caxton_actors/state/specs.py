"""What a state tool's ``{type, config}`` may say, checked before the tool is ever used.

Each type names the settings its backend reads (``TOOL_KEYS``, after ``backends.py`` and
``mcp_client.py``). A spec with a key its type does not read, without one it needs, or
with a value of the wrong shape is refused where it is given, naming the key: at start-up
for ``state_tools`` (``state_tools.<name>.config.<key>``), at registration for an
inline tool (a 400 naming ``state_tool.config.<key>``); never a 502 at its first call.

An inline tool is one an HTTP client brings, so it may use nothing that is the node's own
(``check_inline``): no directory (filesystem), no program (an mcp ``command``), no
credentials. S3 without keys would sign with the node's AWS identity; a PostgreSQL URL
without a password would take the node's ``PGPASSWORD`` or ``.pgpass``, and one without a
host its Unix socket (peer authentication as the node's user); libpq and redis-py read
key, certificate and service files named in a URL's query, so only harmless parameters
pass. What no rule can stop is reach: an inline tool makes the node connect wherever it
can. That is why inline tools are off unless ``state_tools_inline: true``.

Secrets (a URL's password, a query parameter that carries one, ``secret_access_key``) are
never shown: a ``SpecError`` carries its value as it may be printed, and ``scrub`` takes
them out of a client's error message before it reaches a reply or a log.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import ujson

from caxton_actors.state.contract import TOOL_TYPES, StateError

MASK = "***"
REDACTED = "<redacted>"

_Check = Callable[[object], str | None]
"""The reason a value cannot work, or None."""


@dataclass(frozen=True, slots=True)
class Key:
    """One setting a tool type reads."""

    check: _Check
    required: bool = False
    secret: bool = False
    """Never shown, in an error or a log."""


def _string(value: object) -> str | None:
    return None if isinstance(value, str) else "must be a string"


def _text(value: object) -> str | None:
    return None if isinstance(value, str) and value else "must be a non-empty string"


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def _table(value: object) -> str | None:
    if isinstance(value, str) and _IDENTIFIER.fullmatch(value):
        return None
    return "must be 1 to 63 letters, digits or '_', not starting with a digit"


def _url(*schemes: str, host: bool = False) -> _Check:
    allowed = " or ".join(f"{scheme}://" for scheme in schemes)

    def check(value: object) -> str | None:
        if not isinstance(value, str):
            return f"must be a {allowed} URL"
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError as exc:
            return f"is not a URL: {exc}"
        if parts.scheme not in schemes:
            return f"must be a {allowed} URL"
        if host and not parts.hostname:
            return "must name a host"
        return None

    return check


def _command(value: object) -> str | None:
    if isinstance(value, list) and value and all(isinstance(c, str) and c for c in value):
        return None
    return "must be a non-empty list of strings: the program and its arguments"


TOOL_KEYS: dict[str, dict[str, Key]] = {
    "filesystem": {"root": Key(_text, required=True)},
    "redis": {
        "url": Key(_url("redis", "rediss", "unix"), required=True),
        "namespace": Key(_string),
    },
    "postgres": {
        "url": Key(_url("postgresql", "postgresql+psycopg"), required=True),
        "table": Key(_table),
    },
    "s3": {
        "bucket": Key(_text, required=True),
        "endpoint_url": Key(_url("http", "https", host=True)),
        "region": Key(_text),
        "access_key_id": Key(_text),
        "secret_access_key": Key(_text, secret=True),
    },
    "mcp": {  # one of the two
        "url": Key(_url("http", "https", host=True)),
        "command": Key(_command),
    },
}
"""Each type's settings, as its backend reads them."""

# What an inline URL's query may hold: anything else could name a file of the node's.
INLINE_QUERY = {"redis": {"db", "protocol"}, "postgres": {"sslmode", "application_name"}}


class SpecError(StateError):
    """A spec that cannot work (``bad_value``).

    ``key`` is where in the spec (``type``, ``config.url``; empty: the spec as a whole),
    ``shown`` its value as it may be printed (secrets redacted).
    """

    def __init__(self, key: str, reason: str, shown: object = None) -> None:
        super().__init__("bad_value", reason)
        self.key = key
        self.shown = shown

    def at(self, base: str) -> str:
        """Where the bad value is, under ``base`` (``state_tool``, ``state_tools.<name>``)."""
        return f"{base}.{self.key}" if self.key else base


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A state tool as configured: its type and that type's settings."""

    type: str
    config: str
    """The settings as canonical JSON text (sorted keys): hashable, and the cache key."""

    @property
    def settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = ujson.loads(self.config)
        return settings


def parse_tool_spec(value: object) -> ToolSpec:
    """``{"type": ..., "config": {...}}`` whose config its type can use, or a SpecError."""
    if not isinstance(value, Mapping):
        raise SpecError("", 'a state tool is {"type": ..., "config": {...}}', _shown(value))
    extra = sorted(set(value) - {"type", "config"}, key=str)
    if extra:
        reason = 'a state tool is {"type": ..., "config": {...}}: settings go in config'
        raise SpecError(str(extra[0]), reason, REDACTED)
    kind, config = value.get("type"), value.get("config", {})
    if kind not in TOOL_TYPES:
        raise SpecError("type", f"state tool type must be one of {', '.join(TOOL_TYPES)}", kind)
    if not isinstance(config, Mapping):
        raise SpecError("config", "a state tool's config must be a mapping", REDACTED)
    check_config(kind, config)
    return ToolSpec(kind, ujson.dumps(config, sort_keys=True))


def check_config(kind: str, config: Mapping[Any, object]) -> None:
    """Every key one ``kind`` reads, none it does not, each value of a shape that works."""
    keys = TOOL_KEYS[kind]
    for name in sorted(config, key=str):
        key, value = keys.get(name), config[name]
        if key is None:
            known = ", ".join(keys)
            unknown = f"a {kind} state tool has no setting {name!r}; it takes {known}"
            raise SpecError(f"config.{name}", unknown, REDACTED)  # a misplaced secret, maybe
        wrong = key.check(value)
        if wrong is not None:
            raise SpecError(f"config.{name}", wrong, _shown(value, key.secret))
    for name, key in keys.items():
        if key.required and name not in config:
            raise SpecError(f"config.{name}", f"a {kind} state tool needs {name}")
    if kind == "mcp" and ("url" in config) == ("command" in config):
        reason = 'an mcp state tool needs {"url": ...} or {"command": [...]}, one of the two'
        raise SpecError("config.url", reason)
    if kind == "s3" and ("access_key_id" in config) != ("secret_access_key" in config):
        missing = "secret_access_key" if "access_key_id" in config else "access_key_id"
        reason = "an s3 state tool gives access_key_id and secret_access_key together"
        raise SpecError(f"config.{missing}", reason)


def check_inline(spec: ToolSpec) -> None:
    """What a tool an HTTP client brings may not do: use the node's files, programs or
    credentials (see the module's docstring)."""
    settings = spec.settings
    if spec.type == "filesystem":
        raise SpecError(
            "type",
            "an inline filesystem tool could write wherever this node may: "
            "name a configured one (state_tools)",
            spec.type,
        )
    if spec.type == "mcp" and "command" in settings:
        # A command would run on this node at any HTTP client's word.
        raise SpecError(
            "config.command",
            "an inline mcp tool gives a url; name a configured tool to launch one",
            REDACTED,
        )
    if spec.type == "s3" and "secret_access_key" not in settings:
        raise SpecError(
            "config.access_key_id",
            "an inline s3 tool gives its own access_key_id and secret_access_key "
            "(without them it would sign with this node's AWS credentials)",
        )
    if spec.type in INLINE_QUERY:
        _own_url(spec.type, settings["url"])


def _own_url(kind: str, url: str) -> None:
    parts = urlsplit(url)
    shown = redact_url(url)
    if parts.scheme == "unix" or not parts.hostname:
        raise SpecError("config.url", f"an inline {kind} url names a network host", shown)
    if kind == "postgres" and not (parts.username and parts.password):
        reason = (
            "an inline postgres url gives its own user and password (without them libpq "
            "would use this node's PGPASSWORD or .pgpass)"
        )
        raise SpecError("config.url", reason, shown)
    allowed = INLINE_QUERY[kind]
    for name, _ in parse_qsl(parts.query, keep_blank_values=True):
        if name not in allowed:
            reason = (
                f"an inline {kind} url takes no query parameter {name!r} "
                f"(only {', '.join(sorted(allowed))}): it could name a file of this node's"
            )
            raise SpecError("config.url", reason, shown)


def _secret_name(name: str) -> bool:
    name = name.lower()
    return any(word in name for word in ("password", "secret", "token"))


def redact_url(url: str) -> str:
    """``url`` with its password, and query values that may be secrets, as ``***``."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return REDACTED
    netloc = parts.netloc
    if password is not None:
        netloc = f"{parts.username or ''}:{MASK}@{netloc.rpartition('@')[2]}"
    query = "&".join(
        f"{name}={MASK}" if _secret_name(name) else f"{name}={value}"
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
    )
    return parts._replace(netloc=netloc, query=query).geturl()


def _shown(value: object, secret: bool = False) -> object:
    if secret:
        return REDACTED
    return redact_url(value) if isinstance(value, str) and "://" in value else value


def _secrets(settings: Mapping[str, Any]) -> set[str]:
    """The secret strings in a tool's settings, as written and as decoded."""
    found: set[str] = set()
    for name, value in settings.items():
        if not isinstance(value, str):
            continue
        if _secret_name(name):
            found.add(value)
        if "://" not in value:
            continue
        try:
            parts = urlsplit(value)
            password = parts.password
        except ValueError:
            found.add(value)  # a URL we cannot read: hide it whole
            continue
        if password:
            found |= {password, unquote(password)}
        found |= {v for k, v in parse_qsl(parts.query) if _secret_name(k)}
    return {secret for secret in found if secret}


# user:password@ in any URL of a message, whoever wrote it (a client library's error).
_USERINFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*:)[^\s@/]+@")


def scrub(text: str, spec: ToolSpec) -> str:
    """``text`` (a client's error message) without the spec's secrets."""
    for secret in sorted(_secrets(spec.settings), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return _USERINFO.sub(rf"\1{MASK}@", text)
