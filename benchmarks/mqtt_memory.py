"""What MQTT adds to the agent's resident memory: the whole agent, with and without ``[mqtt]``.

The agent runs as in production (``python -m agent run``) against the simulated site, once
without ``[mqtt]`` and once publishing to a mosquitto on loopback (discovery on). For each: boot,
idle until every connector is Available, settle, then an EV charging (state published every
sample). VmRSS comes from /proc/<pid>/status at the end of each window; each configuration
runs ``RUNS`` times and the median is reported, since one process's RSS moves by a few
hundred kB from run to run.

    python -m benchmarks.mqtt_memory [--quick]
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
from typing import Any

from benchmarks.footprint import start_sessions, window
from benchmarks.harness import AgentProcess, BenchSite, quiet_logging, wait_all_status, workdir
from evsim.site import SiteOptions
from tests.mosquitto import running_broker

RUNS = 3
SETTLE, WINDOW = 3.0, 5.0


async def one_run(mqtt: bool, settle: float, seconds: float) -> dict[str, float]:
    with workdir() as path:
        async with running_broker(path / "mosquitto") as broker:
            extra = (f'[mqtt]\nurl = "mqtt://127.0.0.1:{broker.port}"\n' if mqtt else "")
            options = SiteOptions(connectors=1, sample_interval=1, ocpp_frames=False,
                                  extra_toml=extra)
            site = BenchSite(path, options)
            async with site:
                agent = AgentProcess(site)
                await agent.start()
                try:
                    await wait_all_status(site, "Available")
                    await asyncio.sleep(settle)
                    idle = await window(agent.pid, seconds)
                    await start_sessions(site, 1)
                    await asyncio.sleep(settle)
                    charging = await window(agent.pid, seconds)
                    if mqtt:  # a figure is only one when the agent did publish
                        await agent.wait_line("mqtt: connected to")
                finally:
                    await agent.stop()
    return {"idle_rss_mb": idle["rss_mb"], "charging_rss_mb": charging["rss_mb"],
            "idle_cpu_percent": idle["cpu_percent"]}


async def measure(quick: bool) -> dict[str, Any]:
    quiet_logging()
    settle, seconds, runs = (1.0, 1.0, 1) if quick else (SETTLE, WINDOW, RUNS)
    out: dict[str, Any] = {"runs": runs}
    for mqtt in (False, True):
        results = [await one_run(mqtt, settle, seconds) for _ in range(runs)]
        out["with_mqtt" if mqtt else "without_mqtt"] = {
            key: round(statistics.median(r[key] for r in results), 2) for key in results[0]}
    for key in ("idle_rss_mb", "charging_rss_mb"):
        out[f"added_{key}"] = round(out["with_mqtt"][key] - out["without_mqtt"][key], 1)
    return out


def main() -> None:
    print(json.dumps(asyncio.run(measure("--quick" in sys.argv)), indent=2))


if __name__ == "__main__":
    main()
