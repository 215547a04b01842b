"""The ``evse-agent`` command line.

::

    evse-agent check-config FILE      validate FILE; exit 0 when valid, 2 with every problem
    evse-agent run [--config FILE]    validate, then run the agent until it is stopped
    evse-agent config-reference       print every configuration key as a Markdown table

``run`` and ``check-config`` take the file from ``$EVSE_AGENT_CONFIG`` when none is given.
Exit status: 0 success, 2 usage or configuration errors; ``run`` returns what the agent returns.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
from collections.abc import Callable, Sequence

from agent import __version__
from agent.config import Config, ConfigError, describe_schema, load_config

CONFIG_ENV = "EVSE_AGENT_CONFIG"
EXIT_OK = 0
EXIT_USAGE = 2

Command = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    command: Command | None = getattr(args, "command", None)
    if command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return command(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evse-agent", description="Charge controller agent for Raspberry Pi EV chargers."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    check = commands.add_parser("check-config", help="validate a configuration file")
    check.add_argument("file", nargs="?", metavar="FILE", help=f"default: ${CONFIG_ENV}")
    check.set_defaults(command=_check_config)
    run = commands.add_parser("run", help="run the agent")
    run.add_argument("--config", metavar="FILE", help=f"configuration file; default: ${CONFIG_ENV}")
    run.set_defaults(command=_run)
    reference = commands.add_parser("config-reference", help="print every configuration key")
    reference.set_defaults(command=_config_reference)
    return parser


def _config_path(given: str | None) -> str | None:
    path = given or os.environ.get(CONFIG_ENV)
    if not path:
        print(f"evse-agent: no configuration file given and ${CONFIG_ENV} is not set",
              file=sys.stderr)
    return path


def _load(path: str) -> Config | None:
    """The validated configuration, or None after printing every problem to stderr."""
    try:
        return load_config(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None


def _summary(path: str, config: Config) -> str:
    count = len(config.connectors)
    connectors = f"{count} connector{'s' if count != 1 else ''}"
    return f"{path}: OK ({connectors}, reader {config.reader.driver}, csms {config.csms_endpoint})"


def _check_config(args: argparse.Namespace) -> int:
    path = _config_path(args.file)
    config = _load(path) if path else None
    if path is None or config is None:
        return EXIT_USAGE
    print(_summary(path, config))
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    path = _config_path(args.config)
    config = _load(path) if path else None
    if path is None or config is None:
        return EXIT_USAGE
    app = importlib.import_module("agent.app")  # lazily: it pulls in every driver library
    status = app.run(config)
    if asyncio.iscoroutine(status):
        status = asyncio.run(status)
    return status if isinstance(status, int) else EXIT_OK


def _config_reference(args: argparse.Namespace) -> int:
    print(describe_schema(), end="")
    return EXIT_OK
