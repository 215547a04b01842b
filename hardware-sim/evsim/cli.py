"""The ``evsim`` command: run a simulated world, drive it from a shell, run the demo.

::

    evsim world [--config FILE]             serve the world until SIGINT/SIGTERM
    evsim bench [--url URL] state           print the site as JSON
    evsim bench plug N | unplug N
    evsim bench ev N B|C
    evsim bench draw N AMPS|none
    evsim bench card UID                    UID = 8 hex chars, e.g. 00A1B2C3
    evsim bench fault N NAME on|off         N = 0 for station-wide faults (reader_unplugged, tamper)
    evsim bench serve [--backend world|module:Class] [--config FILE] [--listen HOST:PORT]
                                            serve the bench API from the simulated world or
                                            from real test equipment (docs/bench.md)
    evsim csms [--port 9000]                a local CSMS that prints every OCPP message
    evsim demo ...                          see evsim.demo

Exit status: 0 done, 1 the bench API refused or is unreachable, 2 bad usage or config.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib
import json
import logging
import signal
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from evsim.bench_client import DEFAULT_URL, BenchClient, BenchError, JsonObject
from evsim.world_config import (
    CONNECTOR_FAULT_NAMES,
    STATION_FAULT_NAMES,
    Address,
    WorldConfig,
    WorldConfigError,
    load_world_config,
)

if TYPE_CHECKING:
    from evsim.bench_backend import BenchBackend


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    # --- evsim demo: owned by evsim/demo.py; everything after "demo" is its own argv. ---
    if args[:1] == ["demo"]:
        # Imported lazily: the demo (evsim/demo.py) pulls in more than the simulator needs.
        demo = importlib.import_module("evsim.demo")
        return int(demo.main(args[1:]) or 0)
    # --- end of evsim demo ---
    parsed = _parser().parse_args(args)
    if parsed.command == "world":
        return _world(parsed)
    if parsed.command == "csms":
        return asyncio.run(_csms(parsed.host, parsed.port))
    return _bench(parsed)


async def _csms(host: str, port: int) -> int:
    from evsim.csms import Csms
    from evsim.demo import FlowPrinter

    async with Csms(host, port) as csms:
        FlowPrinter(csms)
        print(f"CSMS listening on {csms.url}/<charger id>; Ctrl-C to stop", flush=True)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await stop.wait()
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evsim", description="evse-agent hardware simulator")
    commands = parser.add_subparsers(dest="command", required=True)
    world = commands.add_parser("world", help="run the simulated charger site")
    world.add_argument("--config", type=Path, help="world TOML (default: built-in defaults)")
    world.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    csms = commands.add_parser("csms", help="run a local CSMS that prints every OCPP message")
    csms.add_argument("--host", default="127.0.0.1")
    csms.add_argument("--port", type=int, default=9000)
    bench = commands.add_parser("bench", help="drive a running world through its bench API")
    bench.add_argument("--url", default=DEFAULT_URL, help=f"bench API (default {DEFAULT_URL})")
    verbs = bench.add_subparsers(dest="verb", required=True)
    verbs.add_parser("state", help="print the whole site")
    serve = verbs.add_parser("serve", help="serve the bench API (docs/bench.md)")
    serve.add_argument("--backend", default="world",
                       help="world (the simulator, with its wires) or module:Class")
    serve.add_argument("--config", type=Path,
                       help="world: the world TOML; module:Class: the backend's own TOML")
    serve.add_argument("--listen", type=_address,
                       help="bench API address (world default: its [bench] listen; "
                       "otherwise 127.0.0.1:8400)")
    serve.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    for name in ("plug", "unplug"):
        verbs.add_parser(name, help=f"{name} the EV").add_argument("connector", type=int)
    ev = verbs.add_parser("ev", help="set the EV's pilot state")
    ev.add_argument("connector", type=int)
    ev.add_argument("state", choices=["B", "C"])
    draw = verbs.add_parser("draw", help="cap the EV's draw (A per phase) or 'none'")
    draw.add_argument("connector", type=int)
    draw.add_argument("amps", type=_amps)
    verbs.add_parser("card", help="present a card").add_argument("uid")
    fault = verbs.add_parser("fault", help="switch a fault on or off (connector 0: station)")
    fault.add_argument("connector", type=int)
    fault.add_argument("fault", choices=[*CONNECTOR_FAULT_NAMES, *STATION_FAULT_NAMES])
    fault.add_argument("active", choices=["on", "off"])
    return parser


def _amps(text: str) -> float | None:
    if text.lower() in ("none", "null"):
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or 'none'") from None


def _address(text: str) -> Address:
    try:
        return Address.parse(text)
    except WorldConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _bench(args: argparse.Namespace) -> int:
    if args.verb == "serve":
        return _serve_bench(args)
    client = BenchClient(args.url)
    try:
        answer = _bench_call(client, args)
    except BenchError as exc:
        print(f"evsim bench: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(answer, indent=2))
    return 0


def _bench_call(client: BenchClient, args: argparse.Namespace) -> JsonObject:
    verb = args.verb
    if verb == "state":
        return client.state()
    if verb == "plug":
        return client.plug(args.connector)
    if verb == "unplug":
        return client.unplug(args.connector)
    if verb == "ev":
        return client.ev_state(args.connector, args.state)
    if verb == "draw":
        return client.draw(args.connector, args.amps)
    if verb == "fault":
        return client.fault(args.connector, args.fault, args.active == "on")
    return client.present_card(args.uid)


def _world(args: argparse.Namespace, listen: Address | None = None) -> int:
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = load_world_config(args.config) if args.config else WorldConfig()
        if listen is not None:
            config = dataclasses.replace(config, bench=listen)
        config.validate()
    except (OSError, WorldConfigError) as exc:
        print(f"evsim world: {exc}", file=sys.stderr)
        return 2
    from evsim.world_server import PortTaken  # lazy: pymodbus is slow to import

    try:
        asyncio.run(_serve_world(config))
    except PortTaken as exc:
        print(f"evsim world: {exc.strerror}", file=sys.stderr)
        return 1
    return 0


def _serve_bench(args: argparse.Namespace) -> int:
    """``evsim bench serve``: the world with its wires, or a real bench's backend."""
    from evsim.bench_backend import WORLD, BackendLoadError, load_backend

    if args.backend == WORLD:
        return _world(args, args.listen)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        options = tomllib.loads(args.config.read_text()) if args.config else {}
        backend = load_backend(args.backend, options)
    except (OSError, tomllib.TOMLDecodeError, BackendLoadError) as exc:
        print(f"evsim bench serve: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve_api(backend, args.listen or Address("127.0.0.1", 8400)))
    finally:
        close = getattr(backend, "close", None)
        if callable(close):
            close()  # the backend puts its equipment in a safe state (EV unplugged)
    return 0


async def _serve_api(backend: BenchBackend, address: Address) -> None:
    from evsim.bench_api import BenchApi

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    api = BenchApi(backend, address)
    api.start()
    print(f"     bench: {api.url} ({type(backend).__module__}.{type(backend).__name__})",
          flush=True)
    try:
        await stop.wait()
    finally:
        await asyncio.to_thread(api.close)
    print("stopping", flush=True)


async def _serve_world(config: WorldConfig) -> None:
    from evsim.world_server import WorldServer  # lazy: pymodbus is slow to import

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with WorldServer(config) as server:
        for name, where in server.describe().items():
            print(f"{name:>10}: {where}", flush=True)
        await stop.wait()
        print("stopping", flush=True)
