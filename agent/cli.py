"""The ``evse-agent`` command line.

::

    evse-agent check-config FILE      validate FILE; exit 0 when valid, 2 with every problem
    evse-agent run [--config FILE]    validate, then run the agent until it is stopped
    evse-agent config-reference       print every configuration key as a Markdown table
    evse-agent status [--socket PATH | --state-dir DIR | --config FILE] [--json]
                                      the running agent: connectors, transactions, link, errors
    evse-agent limit CONNECTOR AMPS|clear|pause|resume [--source S] [--socket PATH | ...]
                                      the running agent's local current limit (0 pauses)
    evse-agent phases [--connector N] 1|3|auto [--source S] [--socket PATH | ...]
                                      ask the running agent's phase relay for 1 or 3 phases
    evse-agent log [--state-dir DIR | --config FILE] [--since T] [--until T] [--connector N]
                   [--id-tag TAG] [--action NAME]... [--limit N] [--json] [--utc] [--full]
                                      the OCPP message log (docs/operations.md); with
                                      --id-tag, the card's authorization decisions too
    evse-agent log --security [--state-dir DIR | --config FILE] [--since T] [--json]
                                      the security log (docs/security.md)
    evse-agent bringup relay|meter|reader|pilot|lock [--config FILE] [--connector N] [--yes]
                       [--timeout S] [--verbose]
                                      check one device on the real charger (agent.bringup)

Every command that reads the configuration takes ``--config FILE`` (``check-config``: FILE),
else ``$EVSE_AGENT_CONFIG``, else the installed /etc/evse-agent/config.toml. A relative
``charger.state_dir`` is relative to the configuration file's directory.
Exit status: 0 success, 2 usage or configuration errors; ``run`` returns what the agent returns;
``status`` 69 when no agent answers, 77 when the socket may not be opened; ``log`` 66 when
there is no message log, 77 when it may not be read; ``bringup`` 1 when the device failed.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent import __version__
from agent.config import Config, ConfigError, describe_schema, load_config

if TYPE_CHECKING:
    from agent.frame_log import FrameRecord

CONFIG_ENV = "EVSE_AGENT_CONFIG"
DEFAULT_CONFIG = "/etc/evse-agent/config.toml"
EXIT_OK = 0
EXIT_USAGE = 2
EXIT_NO_INPUT = 66  # sysexits EX_NOINPUT: no message log
EXIT_UNAVAILABLE = 69  # sysexits EX_UNAVAILABLE: no agent answers
EXIT_NO_PERMISSION = 77  # sysexits EX_NOPERM
DEFAULT_LOG_LIMIT = 200

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
    check.add_argument("file", nargs="?", metavar="FILE",
                       help=f"default: ${CONFIG_ENV}, else {DEFAULT_CONFIG}")
    check.set_defaults(command=_check_config)
    run = commands.add_parser("run", help="run the agent")
    run.add_argument("--config", metavar="FILE",
                     help=f"configuration file; default: ${CONFIG_ENV}, else {DEFAULT_CONFIG}")
    run.set_defaults(command=_run)
    reference = commands.add_parser("config-reference", help="print every configuration key")
    reference.set_defaults(command=_config_reference)
    _add_status(commands)
    _add_limit(commands)
    _add_phases(commands)
    _add_log(commands)
    _add_bringup(commands)
    return parser


def _add_location(parser: argparse.ArgumentParser, socket: bool = False) -> None:
    where = parser.add_mutually_exclusive_group()
    if socket:
        where.add_argument("--socket", metavar="PATH",
                           help="the agent's status socket; default: <state_dir>/evse-agent.sock")
    where.add_argument("--state-dir", metavar="DIR", help="the agent's state directory")
    where.add_argument("--config", metavar="FILE", help="take charger.state_dir from FILE; "
                       f"default: ${CONFIG_ENV}, else {DEFAULT_CONFIG}")


def _add_status(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    status = commands.add_parser("status", help="show the running agent's connectors and link")
    _add_location(status, socket=True)
    status.add_argument("--json", action="store_true", help="print the raw status document")
    status.set_defaults(command=_status)


def _add_limit(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    limit = commands.add_parser(
        "limit", help="set the running agent's local current limit on a connector",
        description="Cap a connector's charging current without a CSMS (docs/smart-charging.md):"
        " AMPS caps it, 0 or pause pauses it (the transaction goes on, SuspendedEVSE), clear or "
        "resume drops this local limit.")
    limit.add_argument("connector", type=int, help="connector id")
    limit.add_argument("value", metavar="AMPS|clear|pause|resume")
    limit.add_argument("--source", default="cli", help="who sets it, shown as local:<source>")
    _add_location(limit, socket=True)
    limit.set_defaults(command=_limit)


def _add_phases(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    phases = commands.add_parser(
        "phases", help="ask the running agent's phase relay for 1 or 3 phases",
        description="Switch a connector with a phase relay ([connector.phase_switch]) to 1 or "
        "3 phases without a CSMS (docs/smart-charging.md): the EV is paused while the relay "
        "moves, the transaction goes on. auto (also: clear) leaves the phases to the charger "
        "again (the charging profile, the power rule, default_phases).")
    phases.add_argument("value", metavar="1|3|auto")
    phases.add_argument("--connector", metavar="N", type=int, default=1,
                        help="connector id (default 1)")
    phases.add_argument("--source", default="cli", help="who asks, shown in phase_request")
    _add_location(phases, socket=True)
    phases.set_defaults(command=_phases)


def _add_log(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    frames = commands.add_parser(
        "log", help="show the OCPP message log",
        description="Show the OCPP frames the agent sent (→) and received (←), oldest first, "
        "with link events (*). Times: ISO 8601 in local time unless an offset is given "
        "('2024-05-01 10:00', '2024-05-01T08:00Z'), 'today', or an age such as -10m, 2h, 1d.")
    # "--since -10m" is a value, not an option (argparse only knows plain negative numbers).
    frames._negative_number_matcher = re.compile(r"^-\d+(\.\d+)?[smhdw]?$")
    _add_location(frames)
    frames.add_argument("--since", metavar="TIME", type=_moment, help="from this time on")
    frames.add_argument("--until", metavar="TIME", type=_moment, help="up to this time")
    frames.add_argument("--connector", metavar="N", type=int, help="frames of connector N only")
    frames.add_argument("--id-tag", metavar="TAG", help="frames about this card/idTag only, "
                        "with its authorization decisions from the state store")
    frames.add_argument("--action", metavar="NAME", action="append",
                        help="e.g. Authorize, StartTransaction; repeat for several")
    frames.add_argument("--limit", metavar="N", type=int, default=DEFAULT_LOG_LIMIT,
                        help=f"the newest N matches (default {DEFAULT_LOG_LIMIT}; 0: all)")
    frames.add_argument("--json", action="store_true", help="one JSON record per line")
    frames.add_argument("--utc", action="store_true", help="show times in UTC")
    frames.add_argument("--full", action="store_true", help="do not shorten long payloads")
    frames.add_argument("--security", action="store_true",
                        help="the security log instead (security events, oldest first)")
    frames.set_defaults(command=_log)


def _config_path(given: str | None) -> str | None:
    """``given``, else ``$EVSE_AGENT_CONFIG``, else the installed /etc/evse-agent/config.toml
    when it exists; None after a message."""
    path = given or os.environ.get(CONFIG_ENV)
    if not path and os.path.exists(DEFAULT_CONFIG):
        path = DEFAULT_CONFIG
    if not path:
        print(f"evse-agent: no configuration file given, ${CONFIG_ENV} is not set and "
              f"{DEFAULT_CONFIG} does not exist", file=sys.stderr)
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
    from agent.security.files import config_file_warning

    warning = config_file_warning(Path(path))
    if warning:
        print(f"evse-agent: warning: {warning}", file=sys.stderr)
    app = importlib.import_module("agent.app")  # lazily: it pulls in every driver library
    status = app.run(config)
    if asyncio.iscoroutine(status):
        status = asyncio.run(status)
    return status if isinstance(status, int) else EXIT_OK


def _config_reference(args: argparse.Namespace) -> int:
    print(describe_schema(), end="")
    return EXIT_OK


# --- status and log ----------------------------------------------------------------------------


def _state_dir(args: argparse.Namespace) -> Path | None:
    """``--state-dir``, or ``charger.state_dir`` of the configuration; None after a message."""
    if args.state_dir:
        return Path(args.state_dir)
    path = _config_path(args.config)
    if not path:
        print("evse-agent: give --state-dir or --config", file=sys.stderr)
        return None
    config = _load(path)
    return config.charger.state_dir if config else None


def _status(args: argparse.Namespace) -> int:
    from agent import status_server as server  # lazily, like every command's own module

    document, failed = _ask(args, "status")
    if document is None:
        return failed
    print(json.dumps(document, indent=2) if args.json else server.format_status(document))
    return EXIT_OK


def _ask(args: argparse.Namespace, request: str) -> tuple[dict[str, Any] | None, int]:
    """The running agent's answer to ``request`` on its status socket, or None and the exit
    status after a message."""
    from agent import status_server as server

    state_dir = None if args.socket else _state_dir(args)
    if not args.socket and state_dir is None:
        return None, EXIT_USAGE
    path = Path(args.socket) if args.socket else server.default_socket(state_dir or ".")
    try:
        if request == "status":
            return server.fetch_status(path), EXIT_OK
        name, *words = request.split()
        answer: dict[str, Any] = server.ask(path, {"ask": name, "args": words})
        return answer, EXIT_OK
    except server.StatusError as error:
        print(f"evse-agent: {error}", file=sys.stderr)
        denied = isinstance(error, server.StatusDenied)
        return None, EXIT_NO_PERMISSION if denied else EXIT_UNAVAILABLE


def _limit(args: argparse.Namespace) -> int:
    """Ask the running agent over its status socket (``{"ask": "limit", "args": [...]}``)."""
    return _change(args, f"limit {args.connector} {args.value} {args.source}", lambda answer: (
        f"connector {answer['connector']}: offering {answer['offered_current']:g} A, "
        f"limit {answer['limit_amps']:g} A ({answer['limit_source']})"))


def _phases(args: argparse.Namespace) -> int:
    """Ask the running agent over its status socket (``{"ask": "phases", "args": [...]}``)."""
    return _change(args, f"phases {args.connector} {args.value} {args.source}",
                   _describe_phases)


def _change(args: argparse.Namespace, request: str,
            describe: Callable[[dict[str, Any]], str]) -> int:
    """Ask the running agent for a change: print its answer in one line, or its refusal on
    stderr (exit status 2)."""
    answer, failed = _ask(args, request)
    if answer is None:
        return failed
    if "error" in answer:
        print(f"evse-agent: {answer['error']}", file=sys.stderr)
        return EXIT_USAGE
    print(describe(answer))
    return EXIT_OK


def _describe_phases(view: dict[str, Any]) -> str:
    """``connector 1: 3 phases connected, switching; 1 asked by cli``."""
    count = view["phases"]
    switching = ", switching" if view.get("phase_switching") else ""
    request = view.get("phase_request")
    asked = ("left to the charger (auto)" if request is None
             else f"{request['phases']} asked by {request['source']}")
    return (f"connector {view['connector']}: {count} phase{'s' if count != 1 else ''} "
            f"connected{switching}; {asked}")


_AGE = re.compile(r"^-?(\d+(?:\.\d+)?)\s*([smhdw])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _moment(text: str) -> datetime:
    """An aware datetime from ``-10m``/``2h`` (ago), ``now``, ``today`` or ISO 8601 (local
    time unless it has an offset)."""
    now = datetime.now().astimezone()
    age = _AGE.match(text.strip())
    if age:
        return now - timedelta(seconds=float(age[1]) * _SECONDS[age[2]])
    if text == "now":
        return now
    if text == "today":
        return now.replace(hour=0, minute=0, second=0, microsecond=0)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time: use ISO 8601 ('2024-05-01 10:00'), 'today' "
            "or an age such as -10m, 2h, 1d") from None
    return moment if moment.tzinfo else moment.astimezone()


def _log(args: argparse.Namespace) -> int:
    from agent.frame_log import FrameStore, format_record, with_decisions

    state_dir = _state_dir(args)
    if state_dir is None:
        return EXIT_USAGE
    if args.security:
        return _security_log(state_dir, args)
    store = FrameStore(state_dir)
    decided = _decisions(state_dir, args)
    try:
        if not store.files() and decided is None:
            print(f"evse-agent: no OCPP message log in {state_dir} (is this the agent's "
                  "state directory? it appears once the agent has talked to a CSMS)",
                  file=sys.stderr)
            return EXIT_NO_INPUT
        records = store.query(args.since, args.until, args.connector, args.id_tag, args.action,
                              args.limit or None)
    except PermissionError as error:
        print(f"evse-agent: cannot read the message log: {error.strerror}: {error.filename}; "
              "run with sudo or as a member of the evse-agent group", file=sys.stderr)
        return EXIT_NO_PERMISSION
    if decided is not None:
        records = with_decisions(records, decided, args.limit or None)
    ascii_only = not (sys.stdout.encoding or "").lower().replace("-", "").startswith("utf8")
    for record in records:
        print(record.to_json() if args.json else
              format_record(record, utc=args.utc, full=args.full, ascii_only=ascii_only))
    if not records:
        print("evse-agent: no matching frames", file=sys.stderr)
    return EXIT_OK


def _decisions(state_dir: Path, args: argparse.Namespace) -> list[FrameRecord] | None:
    """With ``--id-tag`` (and no ``--action``): the card's authorization decisions from the
    store, which outlive the message log's rotation (agent.decisions); None otherwise, or
    after saying why they cannot be read."""
    from agent import decisions
    from agent.frame_log import decision_record

    if args.id_tag is None or args.action:
        return None
    try:
        rows = decisions.fetch(state_dir, args.id_tag, args.since, args.until,
                               args.limit or None)
    except decisions.DecisionsUnavailable as error:
        print(f"evse-agent: cannot read the authorization decisions: {error}",
              file=sys.stderr)
        return None
    return [decision_record(row) for row in rows
            if args.connector is None or row["connector_id"] in (0, args.connector)]


def _security_log(state_dir: Path, args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from agent.security_log import SecurityLog

    log = SecurityLog(state_dir)
    try:
        records = [r for r in log.records()
                   if (args.since is None or datetime.fromisoformat(r.time) >= args.since)
                   and (args.until is None or datetime.fromisoformat(r.time) <= args.until)]
    except PermissionError as error:
        print(f"evse-agent: cannot read the security log: {error.strerror}: {error.filename}; "
              "run with sudo or as the service user", file=sys.stderr)
        return EXIT_NO_PERMISSION
    if not log.path.exists():
        print(f"evse-agent: no security log in {state_dir}", file=sys.stderr)
        return EXIT_NO_INPUT
    for record in records[-args.limit:] if args.limit else records:
        print(json.dumps(asdict(record)) if args.json else record.line())
    return EXIT_OK


# --- bringup -----------------------------------------------------------------------------------


def _add_bringup(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from agent import bringup

    check = commands.add_parser(
        "bringup", help="check one device of the real charger (stop the agent first)",
        description="Check one device as the agent would drive it and say what to fix. "
        "relay: close the contactor for about 1 s and compare its feedback; meter: read every "
        "value twice; reader: wait for a card; pilot: show the pilot state (switches nothing); "
        "lock: lock and unlock. Exit status: 0 OK, 1 the device failed, 2 configuration.")
    check.add_argument("role", choices=bringup.ROLES)
    check.add_argument("--config", metavar="FILE",
                       help=f"default: ${CONFIG_ENV}, else {DEFAULT_CONFIG}")
    check.add_argument("--connector", metavar="N", type=int, default=1,
                       help="the connector to check (default 1)")
    check.add_argument("--yes", action="store_true", help="relay: switch without asking")
    check.add_argument("--timeout", metavar="S", type=float, default=30.0,
                       help="reader: seconds to wait for a card (default 30)")
    check.add_argument("--verbose", action="store_true", help="show the drivers' log")
    check.set_defaults(command=_bringup)


def _bringup(args: argparse.Namespace) -> int:
    import logging

    from agent import bringup

    path = _config_path(args.config)
    config = _load(path) if path else None
    if config is None:
        return EXIT_USAGE
    # The check prints what the installer needs; the drivers' own log only adds noise.
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.CRITICAL)
    options = bringup.Options(connector=args.connector, yes=args.yes, timeout=args.timeout)
    return bringup.run(args.role, config, options)
