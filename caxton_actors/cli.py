"""The ``caxton-actors`` command."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from caxton_actors import __version__
from caxton_actors.config import SETTINGS, ConfigError, load_config

EXIT_CONFIG = 2
EXIT_START = 1


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
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

    logging.basicConfig(
        level=config.log_level,
        format=f"%(asctime)s %(levelname)s {config.node_name} %(name)s: %(message)s",
    )
    # Imported here so that a config error costs no gevent or SQLAlchemy import.
    from caxton_actors.node import Node, StartError  # noqa: PLC0415

    try:
        Node(config).run_until_signalled()
    except StartError as exc:
        print(f"caxton-actors: cannot start: {exc}", file=sys.stderr)
        return EXIT_START
    return 0
