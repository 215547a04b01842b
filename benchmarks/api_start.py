"""Sessions API: start request -> contactor closed, and API latency with the loop busy.

The agent (``agent.app.Agent``, as ``evse-agent run`` wires it, with ``[api]`` on loopback)
runs on this loop; the simulated site (CSMS, devices) on its own thread. For each session
the EV is plugged in and in C first, online; then ``POST /api/v1/sessions/start`` is sent
from a client thread and the time to the GpioContactor output switching on is taken (the
CSMS authorizes the token: Authorize, then StartTransaction). Then ``GET
/api/v1/sessions/{id}`` round trips from a client thread, first with the loop idle, then with
a task that keeps the agent's loop busy (5 ms of CPU every 10 ms) while a session charges
with 1 s meter sampling.

    python -m benchmarks.api_start [--quick] [--json PATH]
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from agent.app import Agent
from agent.config import parse_config
from agent.runtime import ConnectorHardware
from benchmarks.harness import (
    SiteThread,
    card,
    install_probes,
    plug_in_c,
    quiet_logging,
    wait_all_status,
    wait_contactor,
    wait_status,
)
from benchmarks.report import Result, benchmark_main, fmt_ms, say, summary_ms
from evsim.site import SiteOptions, free_port

FULL_SESSIONS, QUICK_SESSIONS = 8, 2  # one per connector: a start blocks it 60 s
FULL_GETS, QUICK_GETS = 300, 20
TOKEN = "bench-token-0123456789"
BUSY_SLICE, BUSY_PERIOD = 0.005, 0.010


def _post(url: str, body: dict[str, str]) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _gets(url: str, count: int) -> list[float]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    times = []
    for _ in range(count):
        t0 = time.monotonic()
        with urllib.request.urlopen(request, timeout=30) as answer:
            answer.read()
        times.append(time.monotonic() - t0)
    return times


async def _busy(stop: asyncio.Event) -> None:
    while not stop.is_set():
        end = time.monotonic() + BUSY_SLICE
        while time.monotonic() < end:
            pass
        await asyncio.sleep(BUSY_PERIOD - BUSY_SLICE)


async def measure(quick: bool) -> Result:
    sessions = QUICK_SESSIONS if quick else FULL_SESSIONS
    gets = QUICK_GETS if quick else FULL_GETS
    say(f"api_start: {sessions} sessions, {gets} GETs idle and busy")
    quiet_logging()
    port = free_port()
    base = f"http://127.0.0.1:{port}/api/v1"
    with tempfile.TemporaryDirectory(prefix="evse-bench-") as tmp:
        options = SiteOptions(connectors=8, sample_interval=1, ocpp_frames=False)
        site = SiteThread(Path(tmp), options)
        site.start()
        try:
            os.environ["EVSIM_PIN_BUS"] = site.site.pin_bus
            text = site.site.agent_config_with() + (
                f'\n[api]\nlisten = "127.0.0.1:{port}"\n[[api.token]]\nscope = "control"\n'
                f'secret = "{TOKEN}"\n')
            agent = Agent(parse_config(text, "bench"), drain_seconds=2.0)
            build_devices, installed = agent.hardware.connectors, {}

            def devices_with_probes() -> dict[int, ConnectorHardware]:
                devices = build_devices()  # probed before the runtime starts the pilot
                installed.update({cid: install_probes(hw) for cid, hw in devices.items()})
                return devices

            agent.hardware.connectors = devices_with_probes  # type: ignore[method-assign]
            await agent.start()
            logging.getLogger("agent.ocpp").setLevel(logging.WARNING)  # the frame log's
            try:
                await site.run(wait_all_status(site.site, "Available"))
                csms, world = site.site.csms, site.site.world
                start_to_closed = []
                for k in range(1, sessions + 1):
                    await plug_in_c(world, installed[k], k)
                    await site.run(wait_status(csms, k, "Preparing"))
                    t0 = time.monotonic()
                    status, body = await asyncio.to_thread(
                        _post, f"{base}/sessions/start",
                        {"evse_id": f"SIM-0001*{k}", "id_tag": card(k)})
                    if status != 201:
                        raise RuntimeError(f"start answered {status}: {body}")
                    closed = await wait_contactor(installed[k], t0, True)
                    start_to_closed.append(closed.at - t0)
                # the last session charges on (1 s sampling) while the GETs run
                url = f"{base}/sessions/{body['sessionId']}"
                idle = await asyncio.to_thread(_gets, url, gets)
                stop = asyncio.Event()
                burner = asyncio.create_task(_busy(stop))
                busy = await asyncio.to_thread(_gets, url, gets)
                stop.set()
                await burner
            finally:
                await agent.stop()
        finally:
            site.close()
    result = Result(
        name="api_start",
        title="Sessions API: start -> contactor closed; GET latency idle and loop-busy",
        measured=("POST /api/v1/sessions/start sent (EV plugged in and in C, online) -> the "
                  "GpioContactor output switched on; GET /api/v1/sessions/{id} round trips "
                  "from a client thread, idle and with the agent's loop 50 % busy."),
        quick=quick,
        metrics={"start_to_closed_ms": summary_ms(start_to_closed),
                 "get_idle_ms": summary_ms(idle), "get_busy_ms": summary_ms(busy)},
    )
    result.row("start request -> contactor closed", fmt_ms(result.metrics["start_to_closed_ms"]))
    result.row("GET session, loop idle", fmt_ms(result.metrics["get_idle_ms"]))
    result.row("GET session, loop 50 % busy", fmt_ms(result.metrics["get_busy_ms"]))
    result.notes.append("start -> closed includes Authorize and the meterStart read over "
                        "Modbus; the CSMS is on loopback")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    return benchmark_main(measure, argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
