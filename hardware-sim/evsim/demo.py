"""``evsim demo``: one whole charging session, end to end, on simulated hardware.

It starts a local CSMS and the simulated world on loopback, runs the real agent
(``python -m agent run``) as a separate process against them, and drives the EV and the card
reader through the bench control API: boot, plug in, present a card, charge, the EV stops,
unplug. It prints the OCPP messages as the CSMS sees them and a session summary, and exits 0
only if the session completed and the booked energy equals the meter register's delta.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from evsim.bench_client import BenchClient
from evsim.csms import Frame
from evsim.csms_base import CsmsServer
from evsim.site import SimSite, SiteOptions, free_port

CARD = "00A1B2C3"
STEP_TIMEOUT = 30.0


_STATUS_201 = {"Preparing": "Occupied", "Charging": "Occupied", "SuspendedEV": "Occupied",
               "SuspendedEVSE": "Occupied", "Finishing": "Occupied"}


class DemoFailed(Exception):
    pass


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="evsim demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--charge-seconds", type=float, default=20.0,
                        help="how long the EV charges before it stops (default 20)")
    parser.add_argument("--sample-interval", type=int, default=5,
                        help="MeterValueSampleInterval in seconds (default 5)")
    parser.add_argument("--keep-running", action="store_true",
                        help="after the session, keep the site running for the bench CLI")
    parser.add_argument("--interactive", action="store_true",
                        help="skip the scripted session: boot, then wait for the bench CLI")
    parser.add_argument("--workdir", type=Path, help="where config, state and logs go")
    parser.add_argument("--quiet-frames", action="store_true",
                        help="do not print every OCPP message")
    parser.add_argument("--api", action="store_true",
                        help="start the session through the agent's local sessions API "
                        "instead of a card, and print its events (docs/api.md)")
    parser.add_argument("--ocpp", choices=("1.6", "2.0.1"), default="1.6",
                        help="the OCPP version the CSMS and the agent speak (default 1.6)")
    return parser.parse_args(argv)


class FlowPrinter:
    """Prints OCPP frames readably, with the time since the demo began."""

    def __init__(self, csms: CsmsServer[Any]) -> None:
        self._started = time.monotonic()
        self._actions: dict[str, str] = {}
        csms.on_frame = self

    def __call__(self, frame: Frame) -> None:
        try:
            message = json.loads(frame.raw)
        except ValueError:
            say(f"{self._stamp()}  malformed frame: {frame.raw[:80]}")
            return
        arrow = "CP → CSMS" if frame.direction == "in" else "CSMS → CP"
        if message[0] == 2:
            self._actions[message[1]] = message[2]
            say(f"{self._stamp()}  {arrow}  {message[2]:<20} {compact(message[3])}")
        elif message[0] == 3:
            action = self._actions.pop(message[1], "?")
            say(f"{self._stamp()}  {arrow}  {action + '.conf':<20} {compact(message[2])}")
        else:
            say(f"{self._stamp()}  {arrow}  CALLERROR {message[2]} {message[3]}")

    def _stamp(self) -> str:
        return f"{time.monotonic() - self._started:6.1f}s"


def compact(payload: dict[str, Any]) -> str:
    text = json.dumps(payload, separators=(",", ":"))
    return text if len(text) <= 110 else text[:107] + "..."


def say(line: str) -> None:
    print(line, flush=True)


def step(line: str) -> None:
    say(f"\n▶ {line}")


def api_toml(port: int, token: str, bench_url: str | None = None) -> str:
    """The agent's [api]; with ``bench_url``, the dashboard shows the bench controls."""
    bench = f'bench_url = "{bench_url}"\n' if bench_url else ""
    return (f'[api]\nlisten = "127.0.0.1:{port}"\n{bench}[[api.token]]\nscope = "control"\n'
            f'secret = "{token}"\n')


class ApiClient:
    """An app on the sessions API: starts the session, follows the event stream."""

    def __init__(self, port: int, token: str) -> None:
        self.base = f"http://127.0.0.1:{port}/api/v1"
        self.headers = {"Authorization": f"Bearer {token}"}
        self.session_id: str | None = None
        self.events: list[str] = []

    def _request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers=self.headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def _follow(self) -> None:
        request = urllib.request.Request(self.base + "/events", headers=self.headers)
        with contextlib.suppress(OSError), urllib.request.urlopen(request) as stream:
            for line in stream:
                if line.startswith(b"data: "):
                    event = json.loads(line[6:])
                    if event["event"] and event["sessionId"] == self.session_id:
                        text = f"{event['event']} #{event['sequence']} ({event['sessionStatus']})"
                        self.events.append(text)
                        say(f"    [api event] {text}")

    async def start(self) -> None:
        threading.Thread(target=self._follow, name="demo-events", daemon=True).start()
        await asyncio.sleep(0.3)  # the stream is open before the start
        step(f"an app starts the session: POST /api/v1/sessions/start (id_tag {CARD})")
        status, body = await asyncio.to_thread(
            self._request, "POST", "/sessions/start",
            {"evse_id": "SIM-0001*1", "id_tag": CARD})
        if status != 201:
            raise DemoFailed(f"the API refused the start: {status} {body}")
        self.session_id = body["sessionId"]
        say(f"    [api] 201 session {self.session_id}: {body['sessionStatus']}")

    async def finish(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STEP_TIMEOUT
        while True:
            _, body = await asyncio.to_thread(self._request, "GET",
                                              f"/sessions/{self.session_id}")
            if body.get("sessionStatus") == "COMPLETE" or loop.time() > deadline:
                break
            await asyncio.sleep(0.2)
        say(f"    [api] GET /api/v1/sessions/{self.session_id}: {compact(body)}")
        if body.get("sessionStatus") != "COMPLETE":
            raise DemoFailed(f"the session never became COMPLETE: {body}")


class Demo:
    def __init__(self, site: SimSite, args: argparse.Namespace) -> None:
        self.site = site
        self.args = args
        self.bench = BenchClient(site.bench_url)
        self.agent: asyncio.subprocess.Process | None = None
        self.log_path = site.workdir / "agent.log"
        self.api: ApiClient | None = None

    async def call(self, verb: str, *args: Any) -> Any:
        return await asyncio.to_thread(getattr(self.bench, verb), *args)

    async def meter_wh(self) -> float:
        state = await self.call("connector", 1)
        return float(state["meter"]["energy_wh"])

    async def start_agent(self) -> None:
        config = self.site.write_agent_config()
        env = dict(os.environ, EVSIM_PIN_BUS=self.site.pin_bus, PYTHONUNBUFFERED="1")
        log = self.log_path.open("wb")
        self.agent = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agent", "run", "--config", str(config),
            stdout=log, stderr=log, env=env,
        )
        say(f"agent started (pid {self.agent.pid}), log: {self.log_path}")

    async def stop_agent(self) -> int | None:
        agent = self.agent
        if agent is None or agent.returncode is not None:
            return agent.returncode if agent else None
        agent.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(agent.wait(), 15)
        except TimeoutError:
            agent.kill()
            return await agent.wait()

    async def until(self, what: str, check: Callable[[], object]) -> Any:
        try:
            return await self.site.server.wait_for(check, within=STEP_TIMEOUT)
        except TimeoutError:
            raise DemoFailed(f"timed out waiting for {what}") from None

    async def status(self, status: str) -> None:
        """Wait for connector 1's ``status`` (1.6 names; 2.0.1 says Occupied for several)."""
        if self.v16:
            csms = self.site.csms
            await self.until(f"status {status}", lambda: csms.last_status(1) == status)
            return
        csms201, wanted = self.site.csms201, _STATUS_201.get(status, status)
        await self.until(f"status {wanted}", lambda: csms201.last_status(1) == wanted)

    @property
    def v16(self) -> bool:
        return self.site.options.ocpp_version == "1.6"

    async def started(self) -> None:
        if self.v16:
            await self.until("StartTransaction", lambda: self.site.csms.calls("StartTransaction"))
        else:
            await self.until("TransactionEvent Started",
                             lambda: self.site.csms201.events("Started"))

    async def ended(self) -> None:
        if self.v16:
            await self.until("StopTransaction", lambda: self.site.csms.calls("StopTransaction"))
        else:
            await self.until("TransactionEvent Ended", lambda: self.site.csms201.events("Ended"))

    async def session(self) -> dict[str, Any]:
        step("the charger boots and registers with the CSMS")
        await self.status("Available")
        meter_before = await self.meter_wh()
        step("the driver plugs the EV in (pilot state B)")
        await self.call("plug", 1)
        await self.status("Preparing")
        step("the EV is ready to charge (pilot state C, no power offered yet)")
        await self.call("ev_state", 1, "C")
        if self.api is not None:
            await self.api.start()
        else:
            await asyncio.sleep(0.5)  # the driver walks to the reader
            step(f"the driver presents card {CARD}")
            await self.call("present_card", CARD)
        await self.started()
        await self.status("Charging")
        step(f"charging for {self.args.charge_seconds:.0f} s")
        await asyncio.sleep(self.args.charge_seconds)
        step("the EV is full and stops (pilot state B)")
        await self.call("ev_state", 1, "B")
        await self.status("SuspendedEV")
        step("the driver unplugs")
        await self.call("unplug", 1)
        await self.ended()
        await self.status("Available")
        meter_after = await self.meter_wh()
        if self.api is not None:
            await self.api.finish()
        return {"before": meter_before, "after": meter_after}

    def summary(self, meter: dict[str, float]) -> bool:
        booked = self.booked()
        energy = booked["meterStop"] - booked["meterStart"]
        delta = int(meter["after"]) - int(meter["before"])
        violations = self.site.server.violations
        step("session summary")
        rows = [
            ("idTag", booked["idTag"]), ("transactionId", booked["transactionId"]),
            ("meterStart", f"{booked['meterStart']} Wh"),
            ("meterStop", f"{booked['meterStop']} Wh"),
            ("energy", f"{energy} Wh"), ("meter register delta", f"{delta} Wh"),
            ("duration", f"{_seconds_between(booked['started'], booked['stopped']):.1f} s"),
            ("stop reason", booked["reason"]),
            ("meter values received", booked["meterValues"]),
            ("schema violations", len(violations)),
        ]
        for name, value in rows:
            say(f"  {name:<24}{value}")
        ok = energy == delta and energy > 0 and not violations
        say("\n✔ session complete: booked energy equals the meter delta" if ok
            else "\n✘ session booked wrongly")
        return ok

    def booked(self) -> dict[str, Any]:
        """The one finished transaction as the CSMS booked it."""
        return self._booked_16() if self.v16 else self._booked_201()

    def _booked_16(self) -> dict[str, Any]:
        txs = list(self.site.csms.transactions.values())
        if len(txs) != 1 or txs[0].meter_stop is None:
            raise DemoFailed(f"expected one finished transaction, the CSMS has {len(txs)}")
        tx = txs[0]
        return {"idTag": tx.id_tag, "transactionId": tx.transaction_id,
                "meterStart": tx.meter_start, "meterStop": tx.meter_stop,
                "started": tx.started, "stopped": tx.stopped, "reason": tx.reason,
                "meterValues": len(tx.meter_values)}

    def _booked_201(self) -> dict[str, Any]:
        txs = list(self.site.csms201.transactions.values())
        if len(txs) != 1 or not txs[0].ended:
            raise DemoFailed(f"expected one finished transaction, the CSMS has {len(txs)}")
        tx = txs[0]
        return {"idTag": tx.id_token, "transactionId": tx.transaction_id,
                "meterStart": int(tx.meter_start or 0), "meterStop": int(tx.meter_stop or 0),
                "started": tx.events[0]["timestamp"], "stopped": tx.events[-1]["timestamp"],
                "reason": tx.stopped_reason,
                "meterValues": f"{len(tx.meter_values)} in {len(tx.events)} TransactionEvents"
                               f" (seqNo {', '.join(map(str, tx.seq_nos))})"}

    def print_bench_help(self) -> None:
        url = self.site.bench_url
        step("the site keeps running; drive it from another terminal:")
        for line in (f"evsim bench --url {url} state", f"evsim bench --url {url} plug 1",
                     f"evsim bench --url {url} card {CARD}", f"evsim bench --url {url} ev 1 C",
                     f"evsim bench --url {url} ev 1 B", f"evsim bench --url {url} unplug 1"):
            say(f"  .venv/bin/{line}")
        say(f"  CSMS: {self.site.server.url}   agent log: {self.log_path}   Ctrl-C to stop")


def _seconds_between(start: str, stop: str | None) -> float:
    if stop is None:
        return 0.0
    return (_parse_time(stop) - _parse_time(start)).total_seconds()


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def wait_for_ctrl_c() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def run_demo(args: argparse.Namespace) -> int:
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="evse-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    api_port, api_token = free_port(), secrets.token_hex(16)
    options = SiteOptions(sample_interval=args.sample_interval, ocpp_frames=True,
                          ocpp_version=args.ocpp,
                          extra_toml=api_toml(api_port, api_token) if args.api else "")
    async with SimSite(workdir, options) as site:
        dashboard = args.keep_running or args.interactive
        if dashboard:  # the agent's dashboard, with the bench controls of this site
            site.options.extra_toml = api_toml(api_port, api_token, site.bench_url)
        if not args.quiet_frames:
            FlowPrinter(site.server)
        say(f"OCPP {args.ocpp} CSMS on {site.server.url}, bench API on {site.bench_url}, "
            f"files in {workdir}")
        demo = Demo(site, args)
        if args.api:
            demo.api = ApiClient(api_port, api_token)
        await demo.start_agent()
        if dashboard:
            say(f"dashboard: http://127.0.0.1:{api_port}/dashboard/ (token {api_token})")
        ok = await _drive(demo, args)
        if dashboard:
            demo.print_bench_help()
            say(f"  dashboard: http://127.0.0.1:{api_port}/dashboard/   token: {api_token}")
            await wait_for_ctrl_c()
        code = await demo.stop_agent()
        say(f"agent stopped (exit code {code})")
        return 0 if ok else 1


async def _drive(demo: Demo, args: argparse.Namespace) -> bool:
    if args.interactive:
        await demo.status("Available")
        return True
    try:
        meter = await _watch(demo, demo.session())
        return demo.summary(meter)
    except DemoFailed as failure:
        say(f"\n✘ demo failed: {failure}")
        _tail(demo.log_path)
        return False


async def _watch(demo: Demo, session: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """Run the session, but fail at once if the agent process dies."""
    assert demo.agent is not None
    task = asyncio.ensure_future(session)
    died = asyncio.ensure_future(demo.agent.wait())
    await asyncio.wait({task, died}, return_when=asyncio.FIRST_COMPLETED)
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise DemoFailed(f"the agent exited with code {died.result()}")
    died.cancel()
    return task.result()


def _tail(path: Path, lines: int = 30) -> None:
    with contextlib.suppress(OSError):
        say(f"--- last lines of {path} ---")
        for line in path.read_text(errors="replace").splitlines()[-lines:]:
            say(f"  {line}")


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(run_demo(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
