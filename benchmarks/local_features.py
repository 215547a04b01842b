"""What the local features cost: the whole agent with and without MQTT and the dashboard.

The agent runs as in production (``python -m agent run``) against the simulated site in four
configurations: nothing local, ``[mqtt]`` (publishing to a mosquitto on loopback, discovery
on), ``[api]`` with a dashboard open (a client polls ``/api/v1/status`` and
``/api/v1/sessions`` every 2 s and holds the event stream, as the page does), and both. For
each: boot, idle until the connector is Available, settle, an idle window (CPU share and
VmRSS), then an EV charging and a second window. Each configuration runs ``RUNS`` times; the
median is reported. Idle CPU is the agent's own CPU time over the window (10 ms ticks), so
the machine's other load moves it little.

    python -m benchmarks.local_features [--quick]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from benchmarks.footprint import start_sessions, window
from benchmarks.harness import AgentProcess, BenchSite, quiet_logging, wait_all_status, workdir
from evsim.site import SiteOptions, free_port
from tests.mosquitto import running_broker

RUNS = 2
SETTLE, IDLE_WINDOW, CHARGING_WINDOW = 3.0, 30.0, 5.0
POLL = 2.0  # s between the dashboard's polls (agent/api/dashboard/app.js)
TOKEN = "bench-token-0123456789abcdef"
CONFIGURATIONS = ("none", "mqtt", "dashboard", "dashboard+mqtt")


def extra_toml(configuration: str, broker_port: int, api_port: int) -> str:
    text = ""
    if "mqtt" in configuration:
        text += f'[mqtt]\nurl = "mqtt://127.0.0.1:{broker_port}"\n'
    if "dashboard" in configuration:
        text += (f'[api]\nlisten = "127.0.0.1:{api_port}"\n[[api.token]]\nscope = "read"\n'
                 f'secret = "{TOKEN}"\n')
    return text


@contextlib.asynccontextmanager
async def open_dashboard(port: int) -> AsyncIterator[None]:
    """A browser tab on the dashboard: the event stream held open, two polls every 2 s."""
    base = f"http://127.0.0.1:{port}/api/v1"
    headers = {"Authorization": f"Bearer {TOKEN}"}

    async def poll(http: aiohttp.ClientSession) -> None:
        while True:
            for path in ("/status", "/sessions?limit=20"):
                async with http.get(base + path) as answer:
                    await answer.read()
            await asyncio.sleep(POLL)

    async def stream(http: aiohttp.ClientSession) -> None:
        async with http.get(base + "/events", timeout=aiohttp.ClientTimeout()) as answer:
            async for _ in answer.content:
                pass

    async with aiohttp.ClientSession(headers=headers) as http:
        tasks = [asyncio.create_task(poll(http)), asyncio.create_task(stream(http))]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def one_run(configuration: str, settle: float, idle_s: float, charging_s: float
                  ) -> dict[str, float]:
    with workdir() as path:
        async with running_broker(path / "mosquitto") as broker:
            api_port = free_port()
            options = SiteOptions(connectors=1, sample_interval=10, ocpp_frames=False,
                                  extra_toml=extra_toml(configuration, broker.port, api_port))
            async with BenchSite(path, options) as site:
                agent = AgentProcess(site)
                await agent.start()
                try:
                    await wait_all_status(site, "Available")
                    if "mqtt" in configuration:  # a figure is only one when it publishes
                        await agent.wait_line("mqtt: connected to")
                    dashboard = (open_dashboard(api_port) if "dashboard" in configuration
                                 else contextlib.nullcontext())
                    async with dashboard:
                        await asyncio.sleep(settle)
                        idle = await window(agent.pid, idle_s)
                        await start_sessions(site, 1)
                        await asyncio.sleep(settle)
                        charging = await window(agent.pid, charging_s)
                finally:
                    await agent.stop()
    return {"idle_rss_mb": idle["rss_mb"], "idle_cpu_percent": idle["cpu_percent"],
            "charging_rss_mb": charging["rss_mb"],
            "charging_cpu_percent": charging["cpu_percent"]}


async def measure(quick: bool) -> dict[str, Any]:
    quiet_logging()
    settle, idle_s, charging_s, runs = ((1.0, 1.0, 1.0, 1) if quick else
                                        (SETTLE, IDLE_WINDOW, CHARGING_WINDOW, RUNS))
    out: dict[str, Any] = {"runs": runs, "idle_window_s": idle_s}
    for configuration in CONFIGURATIONS:
        results = [await one_run(configuration, settle, idle_s, charging_s)
                   for _ in range(runs)]
        out[configuration] = {key: round(statistics.median(r[key] for r in results), 3)
                              for key in results[0]}
        out[configuration]["runs"] = results
    base = out["none"]
    for configuration in CONFIGURATIONS[1:]:
        out[configuration]["added_idle_rss_mb"] = round(
            out[configuration]["idle_rss_mb"] - base["idle_rss_mb"], 1)
    return out


def main() -> None:
    print(json.dumps(asyncio.run(measure("--quick" in sys.argv)), indent=2))


if __name__ == "__main__":
    main()
