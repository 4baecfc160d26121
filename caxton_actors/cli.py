"""The ``caxton-actors`` command."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from caxton_actors import __version__, logs
from caxton_actors.config import (
    HTTP_ADDR_ENV,
    HTTP_CA_ENV,
    HTTP_TOKEN_ENV,
    SETTINGS,
    ConfigError,
    load_config,
    parse_address,
)
from caxton_actors.state.contract import TOOL_TYPES
from caxton_actors.wire.keyring import generate_key

if TYPE_CHECKING:
    from caxton_actors import client

DEFAULT_HTTP = "127.0.0.1:8080"
CLIENT_COMMANDS = {
    "members": "list the cluster's members as a running node sees them",
    "agents": "list the cluster's agents, their nodes, status and routes; or watch them",
    "join": "ask a running node to join a cluster through seeds",
    "leave": "ask a running node to leave its cluster gracefully",
    "monitor": "print member events from a running node as they happen",
}
KEY_ACTIONS = {
    "list": "list the keys every member holds (fingerprints) and which is primary",
    "install": "add a key on every member, to open messages with",
    "use": "make an installed key the one every member seals with",
    "remove": "remove a key from every member (never the primary)",
}
EXIT_CONFIG = 2
EXIT_START = 1
EXIT_HALTED = 1  # an actor kept crashing: for systemd or Kubernetes to start a fresh process


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="caxton-actors",
        description="Cluster coordination for agent platforms.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run",
        help="run a node in the foreground",
        description="Run a node. Settings come from defaults, then --config FILE, "
        "then CAXTON_* variables, then these flags; later wins.",
    )
    run.add_argument("--config", type=Path, metavar="FILE", help="YAML with a caxton_config: root")
    for setting in SETTINGS:
        if setting.flag is not None:
            env = f" (env {setting.env})" if setting.env else ""
            run.add_argument(
                setting.flag, dest=setting.path, metavar="VALUE", help=setting.help + env
            )
    for name, text in CLIENT_COMMANDS.items():
        client = commands.add_parser(name, help=text, description=text)
        _http_argument(client)
        if name == "join":
            client.add_argument("seeds", nargs="+", metavar="ADDR", help="seed host:port")
        if name == "agents":
            _agents_arguments(client)
        if name == "monitor":
            client.add_argument(
                "--json", action="store_true", help="one JSON object per event, with its time"
            )
    _keys_parser(commands)
    _registry_parser(commands)
    tool = commands.add_parser("state-tool", help="the state tools as an MCP server")
    serve = tool.add_subparsers(dest="action", required=True).add_parser(
        "serve",
        help="serve a backend's state tools over MCP (stdio, or streamable HTTP at /mcp)",
        description="Serve store, retrieve, delete, list, store_batch and retrieve_batch "
        "over MCP, on one backend.",
    )
    serve.add_argument("--backend", required=True, choices=[t for t in TOOL_TYPES if t != "mcp"])
    serve.add_argument(
        "--backend-config",
        default="{}",
        metavar="JSON",
        help='the backend\'s settings, e.g. \'{"root": "state"}\' or \'{"url": "redis://..."}\'',
    )
    serve.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    serve.add_argument("--bind", default="127.0.0.1:8765", metavar="HOST:PORT", help="for http")
    return parser


def _agents_arguments(agents: argparse.ArgumentParser) -> None:
    agents.add_argument("--scope", metavar="S", help="the agents of this scope (default: default)")
    agents.add_argument("--capability", metavar="NAME", help="only agents with it")
    agents.add_argument("--skill", metavar="K", help="only agents whose card has this skill id")
    agents.add_argument("--tag", metavar="T", help="only agents whose card has this tag")
    agents.add_argument(
        "--q", metavar="TEXT", help="only agents whose card's name or description has every word"
    )
    agents.add_argument("--local", action="store_true", help="only this node's agents")
    agents.add_argument(
        "--watch",
        action="store_true",
        help="print the agents, then each change as it happens, until interrupted; "
        "reconnects when the connection drops (not with --local)",
    )
    agents.add_argument(
        "--json", action="store_true", help="one JSON object per agent, or per event with --watch"
    )


def _keys_parser(commands: Any) -> None:
    keys = commands.add_parser(
        "keys",
        help="generate gossip keys, or rotate the cluster's through a running node",
        description="Rotate without downtime: install a new key everywhere, use it, "
        "then remove the old one. Each change answers how many members acknowledged.",
    )
    actions = keys.add_subparsers(dest="action", required=True)
    actions.add_parser("generate", help="print a new random key (32 bytes, base64)")
    for action, text in KEY_ACTIONS.items():
        sub = actions.add_parser(action, help=text, description=text)
        if action != "list":
            sub.add_argument("key", metavar="KEY", help="a key, base64")
        _http_argument(sub)


def _registry_parser(commands: Any) -> None:
    registry = commands.add_parser("registry", help="agent discovery as an MCP server")
    serve = registry.add_subparsers(dest="action", required=True).add_parser(
        "serve",
        help="serve find_agents and get_agent_card over MCP (stdio, or streamable HTTP at /mcp)",
        description="Let an LLM agent find its peers: find_agents and get_agent_card over "
        "MCP, each a read of a running node's HTTP API.",
    )
    _http_argument(serve)
    serve.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    serve.add_argument("--listen", default="127.0.0.1:8766", metavar="HOST:PORT", help="for http")


def _http_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--http",
        default=os.environ.get(HTTP_ADDR_ENV, DEFAULT_HTTP),
        metavar="[https://]HOST:PORT",
        help=f"a running node's HTTP API (env {HTTP_ADDR_ENV}; default {DEFAULT_HTTP})",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get(HTTP_TOKEN_ENV),
        metavar="SECRET",
        help=f"the secret of an API token (env {HTTP_TOKEN_ENV}, which keeps it out of ps)",
    )
    parser.add_argument(
        "--ca-cert",
        type=Path,
        default=os.environ.get(HTTP_CA_ENV),
        metavar="FILE",
        help="for https: the CA certificate (PEM) the node's certificate must chain to "
        f"(env {HTTP_CA_ENV}; default: the system's CAs)",
    )


def _api(args: argparse.Namespace) -> client.Api:
    from caxton_actors import client  # noqa: PLC0415 - http.client and ssl: 90 ms a node never needs

    return client.Api(args.http, args.token, args.ca_cert)


def _keys(args: argparse.Namespace) -> int:
    if args.action == "generate":
        print(generate_key())
        return 0
    from caxton_actors import client  # noqa: PLC0415 - see _api

    try:
        return client.keys(_api(args), args.action, getattr(args, "key", None))
    except client.ApiError as exc:
        print(f"caxton-actors keys {args.action}: {exc}", file=sys.stderr)
        return EXIT_START


def _client(args: argparse.Namespace) -> int:
    from caxton_actors import client  # noqa: PLC0415 - see _api

    try:
        api = _api(args)
    except client.ApiError as exc:
        print(f"caxton-actors {args.command}: --http {exc}", file=sys.stderr)
        return EXIT_CONFIG
    watch = getattr(args, "watch", False)
    if watch and args.local:  # a watch follows the whole cluster's agents
        print("caxton-actors agents: --watch does not take --local", file=sys.stderr)
        return EXIT_CONFIG
    filters = ("scope", "capability", "skill", "tag", "q", "local")
    return client.run(
        args.command,
        api,
        getattr(args, "seeds", ()),
        client.AgentFilter(**{name: getattr(args, name) for name in filters if name in args}),
        getattr(args, "json", False),
        watch,
    )


def _serve_state_tool(args: argparse.Namespace) -> int:
    try:
        settings = json.loads(args.backend_config)
        if not isinstance(settings, dict):
            raise ValueError("not a JSON object")
        bind = parse_address(args.bind, "--bind")
    except (ValueError, ConfigError) as exc:
        print(f"caxton-actors state-tool: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    from caxton_actors.state.contract import StateError  # noqa: PLC0415

    try:
        from caxton_actors.state.mcp_server import serve  # noqa: PLC0415 - the mcp extra
    except ImportError:
        print("caxton-actors state-tool: needs pip install 'caxton-actors[mcp]'", file=sys.stderr)
        return EXIT_START

    try:
        serve(args.backend, settings, args.transport, bind.host, bind.port)
    except StateError as exc:
        print(f"caxton-actors state-tool: {exc}", file=sys.stderr)
        return EXIT_START
    return 0


def _serve_registry(args: argparse.Namespace) -> int:
    from caxton_actors import client  # noqa: PLC0415 - see _api

    try:
        api = _api(args)
        listen = parse_address(args.listen, "--listen")
    except (client.ApiError, ConfigError) as exc:
        print(f"caxton-actors registry: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        from caxton_actors.discovery import serve  # noqa: PLC0415 - the mcp extra
    except ImportError:
        print("caxton-actors registry: needs pip install 'caxton-actors[mcp]'", file=sys.stderr)
        return EXIT_START
    serve(api, args.transport, listen.host, listen.port)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "state-tool":
        return _serve_state_tool(args)
    if args.command == "registry":
        return _serve_registry(args)
    if args.command == "keys":
        return _keys(args)
    if args.command != "run":
        return _client(args)
    flags = {
        s.path: getattr(args, s.path)
        for s in SETTINGS
        if s.flag is not None and getattr(args, s.path) is not None
    }
    try:
        config = load_config(args.config, os.environ, flags)
    except ConfigError as exc:
        print(f"caxton-actors: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG

    logs.setup(config.log_level, config.log_format, config.node_name)
    # Imported here so that a config error costs no gevent or SQLAlchemy import.
    from caxton_actors.node import Halted, Node, StartError  # noqa: PLC0415
    from caxton_actors.registry.store import DatabaseInUse  # noqa: PLC0415

    try:
        Node(config).run_until_signalled()
    except StartError as exc:
        # One line a person can act on; the traceback for whoever runs at DEBUG.
        logging.getLogger(__name__).debug("start failed", exc_info=exc)
        print(f"caxton-actors: cannot start: {exc}", file=sys.stderr)
        # Another node on this file is a setting to change, like a config error.
        return EXIT_CONFIG if isinstance(exc.__cause__, DatabaseInUse) else EXIT_START
    except Halted as exc:
        print(f"caxton-actors: stopped: {exc}", file=sys.stderr)
        return EXIT_HALTED
    return 0
