"""The node's one frozen configuration tree: defaults < YAML file < CAXTON_* variables < flags.

Every value is checked here, before anything starts, so that a bad one stops the daemon with
one line naming where it came from (file key, variable or flag) rather than failing later in
an actor. Nothing here opens a socket, resolves a name or creates a file.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias, TypeVar

from caxton_actors.address import Address
from caxton_actors.http.access import Token, TokenError, check_tokens, parse_token
from caxton_actors.state.specs import SpecError, ToolSpec, parse_tool_spec
from caxton_actors.swim.timing import PRESETS
from caxton_actors.wire.keyring import KeyringError, parse_key

ENV_PREFIX = "CAXTON_"
ROOT_KEY = "caxton_config"
HTTP_PORT = 8080
GOSSIP_PORT = 7946
HTTP_BIND = Address("127.0.0.1", HTTP_PORT)
GOSSIP_BIND = Address("0.0.0.0", GOSSIP_PORT)
STATSD_PORT = 8125
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("text", "json")

_T = TypeVar("_T")
# Dotted path under caxton_config: -> (value, the file key, variable or flag that gave it).
_Raw: TypeAlias = dict[str, tuple[object, str]]


class ConfigError(Exception):
    """An invalid configuration value; str() is one line naming key and value."""

    def __init__(self, key: str, value: object, reason: str) -> None:
        super().__init__(key, value, reason)
        self.key = key
        self.value = value
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.key} = {self.value!r}: {self.reason}"


# Seconds between two housekeepings: expired correlations, the registry's expiry.
REAP_INTERVAL = 1.0


@dataclass(frozen=True, slots=True)
class GossipConfig:
    """Cluster membership; off by default so a single node needs no configuration."""

    enabled: bool = False
    bind_address: Address = GOSSIP_BIND
    seed_nodes: tuple[Address, ...] = ()
    gossip_interval: float = 1.0  # seconds: the protocol period, one probe each
    failure_detection_timeout: float = 60.0  # seconds a dead or left member is remembered
    profile: str = "lan"  # the timing preset for everything else (swim/timing.py)
    cluster_label: str = "caxton"  # nodes with another label ignore this cluster's packets
    advertise_address: Address | None = None  # what peers are told; port 0: the bound one
    keys: tuple[bytes, ...] = ()  # AES-256 keys, primary first: gossip is sealed with them
    insecure: bool = False  # the explicit opt-out: plaintext gossip on a network address


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """The API's front door: loopback and open by default; on a network, tokens or an
    explicit opt-out."""

    bind_address: Address = HTTP_BIND
    advertise_address: Address | None = None  # routes point here; port 0: the bound one
    tokens: tuple[Token, ...] = ()  # none: every request is allowed (loopback only)
    insecure: bool = False  # the explicit opt-out: no tokens on a network address
    allowed_hosts: tuple[str, ...] = ()  # Host names served besides localhost and IPs; "*": any
    tls_cert: Path | None = None  # PEM files: with both, the API speaks HTTPS only
    tls_key: Path | None = None
    access_log: bool = False  # one INFO line per request (caxton_actors.access)


@dataclass(frozen=True, slots=True)
class StatsdConfig:
    """Where metrics go; no address means metrics cost nothing."""

    address: Address | None = None  # None: metrics off
    prefix: str = ""


@dataclass(frozen=True, slots=True)
class Config:
    """Everything a node needs to start, checked and immutable once loaded."""

    node_name: str
    embedded_only: bool = True
    sqlite_path: Path = Path("caxton_local.db")
    http: HttpConfig = HttpConfig()
    gossip: GossipConfig = GossipConfig()
    statsd: StatsdConfig = StatsdConfig()
    reap_interval: float = REAP_INTERVAL
    drain_timeout: float = 5.0  # seconds shutdown waits for HTTP requests in flight
    log_level: str = "INFO"
    log_format: str = "text"  # or "json": one object a line
    registry_max_agents: int = 100_000  # agents this node may own (the cluster holds more)
    registry_scopes: frozenset[str] = frozenset()  # scopes this node serves; empty: all
    state_tools: Mapping[str, ToolSpec] = field(default_factory=dict)  # by name
    state_timeout: float = 5.0  # seconds a state tool call may take
    state_tools_inline: bool = False  # agents may bring their own {type, config}


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting's name in every source, kept in one place so the CLI and loader agree."""

    path: str  # dotted key under caxton_config:
    env: str | None
    flag: str | None
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("node_name", "CAXTON_NODE_NAME", "--node-name", "node name (default: host name)"),
    Setting("embedded_only", None, None, "keep all state in the local SQLite file"),
    Setting("sqlite_path", "CAXTON_SQLITE_PATH", "--sqlite-path", "SQLite database file"),
    Setting("http.bind_address", "CAXTON_HTTP_BIND", "--http-bind", "HTTP API host:port"),
    Setting(
        "http.advertise_address",
        "CAXTON_HTTP_ADVERTISE",
        "--http-advertise",
        "the IP[:port] routes to this node's agents point at (default: the bind address, "
        "or an interface's when bound to all)",
    ),
    Setting(
        "http.tokens",
        "CAXTON_HTTP_TOKENS",
        None,  # not a flag: a command line is visible to every user of the machine
        "API tokens, name:scope:secret,... (scope read, write or admin)",
    ),
    Setting(
        "http.insecure",
        "CAXTON_HTTP_INSECURE",
        "--http-insecure",
        "true: serve the API on a non-loopback address without tokens",
    ),
    Setting(
        "http.allowed_hosts",
        "CAXTON_HTTP_ALLOWED_HOSTS",
        "--http-allowed-hosts",
        "Host names the API answers besides localhost and IP addresses; * for any",
    ),
    Setting("http.tls_cert", "CAXTON_HTTP_TLS_CERT", "--http-tls-cert", "PEM certificate"),
    Setting("http.tls_key", "CAXTON_HTTP_TLS_KEY", "--http-tls-key", "PEM private key"),
    Setting(
        "http.access_log",
        "CAXTON_HTTP_ACCESS_LOG",
        "--http-access-log",
        "true: log one line per request (method, route, status, duration, client)",
    ),
    Setting("statsd.address", "CAXTON_STATSD", "--statsd", "statsd host:port (unset: no metrics)"),
    Setting("statsd.prefix", "CAXTON_STATSD_PREFIX", "--statsd-prefix", "metric name prefix"),
    Setting("reap_interval", None, None, "least time between sweeps of expired correlations"),
    Setting("drain_timeout", None, None, "time shutdown waits for HTTP requests in flight"),
    Setting("log_level", "CAXTON_LOG_LEVEL", "--log-level", "DEBUG, INFO, WARNING or ERROR"),
    Setting("log_format", "CAXTON_LOG_FORMAT", "--log-format", "text, or json: one object a line"),
    Setting(
        "registry.max_agents_per_node",
        "CAXTON_REGISTRY_MAX_AGENTS",
        "--registry-max-agents",
        "agents this node may own",
    ),
    Setting(
        "registry.scopes",
        "CAXTON_REGISTRY_SCOPES",
        "--registry-scopes",
        "the agent scopes this node serves, scope,scope (unset: all)",
    ),
    Setting("state_tools", None, None, "named state tools: {name: {type, config}}"),
    Setting("state_timeout", None, None, "how long a state tool call may take"),
    Setting("state_tools_inline", None, None, "may agents bring their own {type, config}"),
    Setting("gossip.enabled", "CAXTON_GOSSIP_ENABLED", "--gossip-enabled", "true or false"),
    Setting("gossip.bind_address", "CAXTON_GOSSIP_BIND", "--gossip-bind", "gossip host:port"),
    Setting(
        "gossip.advertise_address",
        "CAXTON_GOSSIP_ADVERTISE",
        "--gossip-advertise",
        "the IP[:port] peers reach this node's gossip at (default: the bind address, "
        "or an interface's when bound to all)",
    ),
    Setting("gossip.seed_nodes", "CAXTON_GOSSIP_SEEDS", "--gossip-seeds", "host:port,host:port"),
    Setting("gossip.gossip_interval", None, None, "the protocol period (one probe each)"),
    Setting("gossip.failure_detection_timeout", None, None, "how long dead members are kept"),
    Setting("gossip.profile", "CAXTON_GOSSIP_PROFILE", "--gossip-profile", "lan, wan or local"),
    Setting("gossip.cluster_label", "CAXTON_GOSSIP_LABEL", "--gossip-label", "cluster label"),
    Setting(
        "gossip.keys",
        "CAXTON_GOSSIP_KEYS",
        "--gossip-keys",
        "gossip keys, base64, primary first: KEY,KEY (caxton-actors keys generate)",
    ),
    Setting(
        "gossip.insecure",
        "CAXTON_GOSSIP_INSECURE",
        "--gossip-insecure",
        "true: plaintext gossip on a non-loopback address, without keys",
    ),
)
_PATHS = {s.path for s in SETTINGS}
_SECTIONS = {s.path.partition(".")[0] for s in SETTINGS if "." in s.path}

_ADDRESS = re.compile(r"(?:\[(?P<v6>[^\]]*)\]|(?P<host>[^:\[\]]*))(?::(?P<port>[^:]*))?")
_HOST = re.compile(r"[A-Za-z0-9_.-]+")
_PORT = re.compile(r"[0-9]{1,5}")
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)?")
_UNIT_SECONDS: dict[str | None, float] = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_BOOL_WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def parse_address(text: str, key: str, *, default_port: int | None = None) -> Address:
    """Split ``host:port`` or ``[v6]:port`` without DNS: names are resolved at join time."""
    match = _ADDRESS.fullmatch(text)
    if match is None:
        raise ConfigError(key, text, "expected host:port or [IPv6]:port")
    host = match["v6"]
    if host is None:
        host = match["host"]
        if host.isdigit() and match["port"] is None:  # "8080": a port without its host
            raise ConfigError(key, text, f"expected host:port, e.g. 127.0.0.1:{host}")
        if _HOST.fullmatch(host) is None or host.isdigit():
            raise ConfigError(key, text, "host must be a name or an IP address")
    else:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ConfigError(key, text, "only an IPv6 address goes between [ and ]") from None
    if match["port"] is None and default_port is not None:
        return Address(host, default_port)
    if match["port"] is None:
        raise ConfigError(key, text, "a port is needed, as host:port")
    if _PORT.fullmatch(match["port"]) is None or int(match["port"]) > 65535:
        raise ConfigError(key, text, "port must be a number from 0 to 65535")
    return Address(host, int(match["port"]))


def parse_duration(value: object, key: str) -> float:
    """Seconds from ``500ms``, ``1.5s``, ``2m``, ``1h`` or a bare number, so files read well."""
    seconds = math.nan
    if isinstance(value, str) and (match := _DURATION.fullmatch(value)):
        seconds = float(match[1]) * _UNIT_SECONDS[match[2]]
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except OverflowError:  # an int too large for any float
            seconds = math.inf
    if not (math.isfinite(seconds) and seconds > 0):
        raise ConfigError(key, value, "must be a positive duration such as 500ms, 1s, 2m or 1h")
    return seconds


def load_config(path: Path | None, environ: Mapping[str, str], flags: Mapping[str, str]) -> Config:
    """Merge every source, later winning, and validate the result into one frozen Config."""
    raw: _Raw = {"node_name": (socket.gethostname(), "node_name")}
    if path is not None:
        raw.update(_read_file(path))
    unknown = flags.keys() - {s.path for s in SETTINGS if s.flag is not None}
    if unknown:
        raise ConfigError(min(unknown), flags[min(unknown)], "no such flag")
    _check_environ(environ)
    for s in SETTINGS:  # per setting, a variable overrides the file and a flag overrides both
        if s.env is not None and environ.get(s.env):
            raw[s.path] = (_from_text(s.path, environ[s.env], s.env), s.env)
        if s.flag is not None and s.path in flags:
            raw[s.path] = (_from_text(s.path, flags[s.path], s.flag), s.flag)
    return _build(raw)


# The client commands' variables (members, join, keys...): not settings of a node, but a
# shell that sets them may run a node too, so they are known names. cli.py reads them here.
HTTP_ADDR_ENV = "CAXTON_HTTP_ADDR"
HTTP_TOKEN_ENV = "CAXTON_HTTP_TOKEN"
HTTP_CA_ENV = "CAXTON_HTTP_CA"
CLIENT_ENV = (HTTP_ADDR_ENV, HTTP_TOKEN_ENV, HTTP_CA_ENV)
# The opt-out for platforms that set CAXTON_* variables of their own.
ALLOW_UNKNOWN_ENV = "CAXTON_ALLOW_UNKNOWN_ENV"
# Words people reach for where a variable says otherwise, for the "did you mean".
_ENV_SYNONYMS = {"PORT": "BIND", "ADDR": "BIND", "ADDRESS": "BIND", "LISTEN": "BIND"}
_SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD")
# What Kubernetes injects for every Service of the namespace whose name starts with
# "caxton" (service links: CAXTON_SERVICE_HOST, CAXTON_PORT_8080_TCP_ADDR, ...), each name
# with the shape of its value, so that a person's CAXTON_HTTP_PORT=9000 is still an error.
_SERVICE_LINKS = tuple(
    (re.compile(name), re.compile(value))
    for name, value in (
        (r"CAXTON\w*_SERVICE_HOST", r"[0-9A-Fa-f.:]+"),
        (r"CAXTON\w*_SERVICE_PORT(?:_\w+)?", r"[0-9]{1,5}"),
        (r"CAXTON\w*_PORT(?:_[0-9]{1,5}_(?:TCP|UDP|SCTP))?", r"(?:tcp|udp|sctp)://\S+:[0-9]{1,5}"),
        (r"CAXTON\w*_PORT_[0-9]{1,5}_(?:TCP|UDP|SCTP)_PROTO", r"tcp|udp|sctp"),
        (r"CAXTON\w*_PORT_[0-9]{1,5}_(?:TCP|UDP|SCTP)_PORT", r"[0-9]{1,5}"),
        (r"CAXTON\w*_PORT_[0-9]{1,5}_(?:TCP|UDP|SCTP)_ADDR", r"[0-9A-Fa-f.:]+"),
    )
)


def _check_environ(environ: Mapping[str, str]) -> None:
    """A CAXTON_* variable that names no setting is a typo until shown otherwise: an error
    naming it and the nearest valid name, unless CAXTON_ALLOW_UNKNOWN_ENV says to ignore
    them. Kubernetes service links are recognised and ignored."""
    allow = environ.get(ALLOW_UNKNOWN_ENV, "")
    if allow and allow.lower() not in _BOOL_WORDS:
        raise ConfigError(ALLOW_UNKNOWN_ENV, allow, f"must be one of {', '.join(_BOOL_WORDS)}")
    if allow and _BOOL_WORDS[allow.lower()]:
        return
    known = [s.env for s in SETTINGS if s.env is not None] + [*CLIENT_ENV, ALLOW_UNKNOWN_ENV]
    unknown = sorted(
        name
        for name, value in environ.items()
        if name.startswith(ENV_PREFIX) and name not in known and not _service_link(name, value)
    )
    if not unknown:
        return
    name = unknown[0]
    value = environ[name]
    if any(word in name for word in _SECRET_WORDS):
        value = "<redacted>"
    hint = f"{ALLOW_UNKNOWN_ENV}=1 ignores unknown {ENV_PREFIX}* variables"
    nearest = _nearest_variable(name, known)
    if nearest is None:
        reason = f"unknown variable: no setting is read from it ({hint})"
    else:
        reason = f"unknown variable; did you mean {nearest}? ({hint})"
    raise ConfigError(name, value, reason)


def _service_link(name: str, value: str) -> bool:
    return any(n.fullmatch(name) and v.fullmatch(value) for n, v in _SERVICE_LINKS)


def _nearest_variable(name: str, known: list[str]) -> str | None:
    """The known variable spelled most like ``name``, compared without the common prefix
    (which would make every name look alike) and with PORT read as BIND."""
    words = name.removeprefix(ENV_PREFIX).split("_")
    wanted = "_".join(_ENV_SYNONYMS.get(word, word) for word in words)
    by_suffix = {k.removeprefix(ENV_PREFIX): k for k in known}
    found = difflib.get_close_matches(wanted, list(by_suffix), n=1, cutoff=0.5)
    return by_suffix[found[0]] if found else None


def _read_file(path: Path) -> _Raw:
    import yaml  # noqa: PLC0415 - 45 ms at start, for a node run with --config only

    try:
        data = yaml.safe_load(path.read_bytes())
    except OSError as exc:
        raise ConfigError("config", str(path), exc.strerror or str(exc)) from None
    except yaml.YAMLError as exc:
        raise ConfigError("config", str(path), " ".join(str(exc).split())) from None
    if not isinstance(data, dict) or list(data) != [ROOT_KEY]:
        raise ConfigError("config", str(path), f"the one root key must be {ROOT_KEY}:")
    raw: _Raw = {}
    _flatten(data[ROOT_KEY], "", raw)
    return raw


def _flatten(section: object, prefix: str, raw: _Raw) -> None:
    """Record each leaf under its dotted path; an empty section means no settings."""
    if section is None:
        return
    if not isinstance(section, dict):
        raise ConfigError(prefix.rstrip(".") or ROOT_KEY, section, "must be a mapping")
    for name, value in section.items():
        path = f"{prefix}{name}"
        if path in _PATHS:
            raw[path] = (value, path)
        elif path in _SECTIONS:
            _flatten(value, f"{path}.", raw)
        else:
            raise ConfigError(path, value, "unknown key")


def _from_text(path: str, text: str, key: str) -> object:
    """Give a variable's or flag's text the type the YAML file would have had."""
    lists = ("gossip.seed_nodes", "gossip.keys", "http.tokens", "http.allowed_hosts")
    if path in (*lists, "registry.scopes"):
        return [item.strip() for item in text.split(",") if item.strip()]
    if path == "registry.max_agents_per_node":
        try:
            return int(text)
        except ValueError:
            raise ConfigError(key, text, "must be a whole number") from None
    if path in ("gossip.enabled", "gossip.insecure", "http.insecure", "http.access_log"):
        if text.lower() not in _BOOL_WORDS:
            raise ConfigError(key, text, f"must be one of {', '.join(_BOOL_WORDS)}")
        return _BOOL_WORDS[text.lower()]
    return text


def _build(raw: _Raw) -> Config:
    """Convert and check each collected value; the first bad one raises."""

    def get(path: str, convert: Callable[[object, str], _T], default: _T) -> _T:
        if path not in raw:
            return default
        value, key = raw[path]
        return convert(value, key)

    base = Config(node_name="")  # the dataclass defaults, for settings no source gave
    g = base.gossip
    gossip = GossipConfig(
        enabled=get("gossip.enabled", _bool, g.enabled),
        bind_address=get("gossip.bind_address", _address(GOSSIP_PORT), g.bind_address),
        advertise_address=get("gossip.advertise_address", _advertise, g.advertise_address),
        seed_nodes=get("gossip.seed_nodes", _seeds, g.seed_nodes),
        gossip_interval=get("gossip.gossip_interval", parse_duration, g.gossip_interval),
        failure_detection_timeout=get(
            "gossip.failure_detection_timeout", parse_duration, g.failure_detection_timeout
        ),
        profile=get("gossip.profile", _profile, g.profile),
        cluster_label=get("gossip.cluster_label", _cluster_label, g.cluster_label),
        keys=get("gossip.keys", _keys, g.keys),
        insecure=get("gossip.insecure", _bool, g.insecure),
    )
    _check_secure(gossip, raw)
    if gossip.failure_detection_timeout <= gossip.gossip_interval:
        path = "gossip.failure_detection_timeout"
        value, key = raw.get(path, (gossip.failure_detection_timeout, path))
        reason = f"must be longer than gossip.gossip_interval ({gossip.gossip_interval:g}s)"
        raise ConfigError(key, value, reason)
    h = base.http
    http = HttpConfig(
        bind_address=get("http.bind_address", _address(HTTP_PORT), h.bind_address),
        advertise_address=get("http.advertise_address", _advertise, h.advertise_address),
        tokens=get("http.tokens", _tokens, h.tokens),
        insecure=get("http.insecure", _bool, h.insecure),
        allowed_hosts=get("http.allowed_hosts", _allowed_hosts, h.allowed_hosts),
        tls_cert=get("http.tls_cert", _pem_file, h.tls_cert),
        tls_key=get("http.tls_key", _pem_file, h.tls_key),
        access_log=get("http.access_log", _bool, h.access_log),
    )
    _check_front_door(http, raw)
    return Config(
        node_name=_node_name(*raw["node_name"]),
        embedded_only=get("embedded_only", _bool, base.embedded_only),
        sqlite_path=get("sqlite_path", _sqlite_path, base.sqlite_path),
        http=http,
        gossip=gossip,
        statsd=StatsdConfig(
            address=get("statsd.address", _statsd_address, base.statsd.address),
            prefix=get("statsd.prefix", _statsd_prefix, base.statsd.prefix),
        ),
        reap_interval=get("reap_interval", parse_duration, base.reap_interval),
        drain_timeout=get("drain_timeout", parse_duration, base.drain_timeout),
        log_level=get("log_level", _log_level, base.log_level),
        log_format=get("log_format", _log_format, base.log_format),
        registry_max_agents=get(
            "registry.max_agents_per_node", _max_agents, base.registry_max_agents
        ),
        registry_scopes=get("registry.scopes", _scopes, base.registry_scopes),
        state_tools=get("state_tools", _state_tools, base.state_tools),
        state_timeout=get("state_timeout", parse_duration, base.state_timeout),
        state_tools_inline=get("state_tools_inline", _bool, base.state_tools_inline),
    )


def _scopes(value: object, key: str) -> frozenset[str]:
    if not isinstance(value, list):
        raise ConfigError(key, value, "must be a list of scope names")
    return frozenset(_scope(item, key) for item in value)


def _str(value: object, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(key, value, "must be a string")
    return value


def _bool(value: object, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(key, value, "must be true or false")
    return value


def _matching(pattern: str, reason: str) -> Callable[[object, str], str]:
    compiled = re.compile(pattern)

    def convert(value: object, key: str) -> str:
        text = _str(value, key)
        if compiled.fullmatch(text) is None:
            raise ConfigError(key, value, reason)
        return text

    return convert


_node_name = _matching(
    r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}",
    "must be 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit",
)
_scope = _matching(
    r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}",
    "must be 1 to 64 letters, digits or ._:@-, starting with a letter or digit",
)
_statsd_prefix = _matching(
    r"(?:[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*)?",
    "must be letters, digits, '_' or '-', in parts joined by single dots",
)


_cluster_label = _matching(
    r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}",
    "must be 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit",
)


def _profile(value: object, key: str) -> str:
    profile = _str(value, key)
    if profile not in PRESETS:
        raise ConfigError(key, value, f"must be one of {', '.join(PRESETS)}")
    return profile


def _address(default_port: int) -> Callable[[object, str], Address]:
    """A converter for an address setting whose port defaults to that setting's usual one."""

    def convert(value: object, key: str) -> Address:
        return parse_address(_str(value, key), key, default_port=default_port)

    return convert


def _advertise(value: object, key: str) -> Address:
    """An IP address, with or without a port (0 then: the bound port)."""
    address = parse_address(_str(value, key), key, default_port=0)
    try:
        ipaddress.ip_address(address.host)
    except ValueError:
        raise ConfigError(key, value, "must be an IP address: peers take no names") from None
    return address


def _statsd_address(value: object, key: str) -> Address | None:
    return None if value is None else _address(STATSD_PORT)(value, key)


def _seeds(value: object, key: str) -> tuple[Address, ...]:
    if not isinstance(value, list):
        raise ConfigError(key, value, "must be a list of host:port")
    return tuple(_address(GOSSIP_PORT)(item, key) for item in value)


def _keys(value: object, key: str) -> tuple[bytes, ...]:
    if not isinstance(value, list):
        raise ConfigError(key, value, "must be a list of base64 keys")
    keys = []
    for item in value:
        try:
            keys.append(parse_key(_str(item, key)))
        except KeyringError as exc:
            raise ConfigError(key, "<redacted>", str(exc)) from None
    if len(set(keys)) != len(keys):
        raise ConfigError(key, "<redacted>", "a key is listed twice")
    return tuple(keys)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_secure(gossip: GossipConfig, raw: _Raw) -> None:
    """Gossip on a network address needs keys, or an explicit opt-out: secure by default."""
    if not gossip.enabled or gossip.keys or gossip.insecure:
        return
    if is_loopback(gossip.bind_address.host):
        return  # development on one machine
    value, key = raw.get("gossip.bind_address", (str(gossip.bind_address), "gossip.bind_address"))
    raise ConfigError(
        key,
        value,
        "gossip on a network address needs gossip.keys (caxton-actors keys generate), "
        "or gossip.insecure: true to run it unencrypted",
    )


def _tokens(value: object, key: str) -> tuple[Token, ...]:
    if not isinstance(value, list):
        raise ConfigError(key, value, "must be a list of name:scope:secret")
    try:
        tokens = tuple(parse_token(_str(item, key)) for item in value)
        check_tokens(tokens)
    except TokenError as exc:
        raise ConfigError(key, "<redacted>", str(exc)) from None
    return tokens


def _allowed_hosts(value: object, key: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(key, value, "must be a list of host names")
    hosts = tuple(_str(item, key).lower() for item in value)
    for host in hosts:
        if host != "*" and _HOST.fullmatch(host) is None:
            raise ConfigError(key, host, "must be a host name, without a port, or *")
    return hosts


def _pem_file(value: object, key: str) -> Path:
    path = Path(_str(value, key))
    if not path.is_file():
        raise ConfigError(key, value, "no such file")
    return path


def _check_front_door(http: HttpConfig, raw: _Raw) -> None:
    """The API on a network address needs tokens, or an explicit opt-out; TLS needs both
    files."""
    if (http.tls_cert is None) != (http.tls_key is None):
        path = "http.tls_cert" if http.tls_cert is None else "http.tls_key"
        raise ConfigError(path, None, "HTTPS needs both http.tls_cert and http.tls_key")
    if http.tokens or http.insecure or is_loopback(http.bind_address.host):
        return
    value, key = raw.get("http.bind_address", (str(http.bind_address), "http.bind_address"))
    raise ConfigError(
        key,
        value,
        "the HTTP API on a network address needs http.tokens (CAXTON_HTTP_TOKENS), "
        "or http.insecure: true to serve it to anyone who can reach it",
    )


def _sqlite_path(value: object, key: str) -> Path:
    path = Path(_str(value, key))
    if not path.name or os.path.isdir(path):
        raise ConfigError(key, value, "must name a file, not a directory")
    if not os.path.isdir(path.parent):
        raise ConfigError(key, value, f"directory {str(path.parent)!r} does not exist")
    return path


def _max_agents(value: object, key: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 10_000_000:
        raise ConfigError(key, value, "must be a whole number from 1 to 10000000")
    return value


def _state_tools(value: object, key: str) -> dict[str, ToolSpec]:
    if not isinstance(value, dict):
        raise ConfigError(key, value, "must be a mapping of names to {type, config}")
    tools = {}
    for name, spec in value.items():
        where = f"{key}.{name}"
        _tool_name(name, where)
        try:
            tools[name] = parse_tool_spec(spec)
        except SpecError as exc:  # names the key; shows its value only if no secret
            raise ConfigError(exc.at(where), exc.shown, str(exc)) from None
    return tools


_tool_name = _matching(
    r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}",
    "must be 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit",
)


def _log_level(value: object, key: str) -> str:
    level = _str(value, key).upper()
    if level not in LOG_LEVELS:
        raise ConfigError(key, value, f"must be one of {', '.join(LOG_LEVELS)}")
    return level


def _log_format(value: object, key: str) -> str:
    text = _str(value, key).lower()
    if text not in LOG_FORMATS:
        raise ConfigError(key, value, f"must be one of {', '.join(LOG_FORMATS)}")
    return text
