"""Footprint: resident memory and CPU time of the agent process, idle and while charging.

The agent runs as it does in production, ``python -m agent run --config FILE``, in its own
process against the simulated site (CSMS and world in this process). For 1 and for 8
connectors: after boot, idle for a while, then an EV charging on every connector with 1 s
meter sampling. Memory is VmRSS (and the peak, VmHWM) from /proc/<pid>/status; CPU is utime +
stime from /proc/<pid>/stat over the window, given as % of one core and as CPU seconds per
hour. The pilot is polled every 20 ms (the simulated site's setting) unless stated.

The floor, measured in the same run over the same window: a bare charge point made of the
``ocpp`` and ``websockets`` libraries alone (benchmarks/bare_charge_point.py), booted and
idle. Memory and idle CPU are also given as ratios to it, so they compare across machines.

    python -m benchmarks.footprint [--quick] [--json PATH]
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from typing import Any

from benchmarks.harness import (
    AgentProcess,
    BenchSite,
    card,
    proc_cpu_seconds,
    proc_status,
    quiet_logging,
    wait_all_status,
    wait_status,
    workdir,
)
from benchmarks.report import Result, benchmark_main, say
from evsim.site import SiteOptions

FULL_WINDOW, QUICK_WINDOW = 45.0, 1.0
SETTLE, QUICK_SETTLE = 2.0, 0.3  # after boot / after the sessions started, before a window
CONNECTOR_COUNTS = (1, 8)
DEFAULT_POLL = 0.05  # the agent's default pilot poll interval (agent.config)
SWEEP_POLLS = (0.05, 0.1, 0.25, 1.0)


async def window(pid: int, seconds: float) -> dict[str, Any]:
    """CPU use over ``seconds`` and the memory at its end."""
    cpu0, t0 = proc_cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    cpu1, t1 = proc_cpu_seconds(pid), time.monotonic()
    status = proc_status(pid)
    share = (cpu1 - cpu0) / (t1 - t0)
    return {
        "seconds": round(t1 - t0, 1),
        "cpu_percent": round(100 * share, 3),
        "cpu_seconds_per_hour": round(3600 * share, 1),
        "rss_mb": round(status["VmRSS"] / 1024, 1),
        "peak_rss_mb": round(status["VmHWM"] / 1024, 1),
        "threads": status["Threads"],
    }


async def bare_floor(seconds: float, settle: float) -> dict[str, Any]:
    """The bare ``ocpp`` charge point's idle window, against a site's CSMS."""
    options = SiteOptions(connectors=1, ocpp_frames=False)
    with workdir() as path:
        async with BenchSite(path, options) as site:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "benchmarks.bare_charge_point", site.csms.url,
                stdout=asyncio.subprocess.PIPE)
            try:
                assert proc.stdout is not None
                line = await asyncio.wait_for(proc.stdout.readline(), 30)
                if b"ready" not in line:
                    raise RuntimeError(f"the bare charge point did not boot: {line!r}")
                await asyncio.sleep(settle)
                return await window(proc.pid, seconds)
            finally:
                proc.terminate()
                await proc.wait()


def ratio(value: float, floor: float, tick: float = 0.0) -> float:
    """``value / floor``; a floor below one clock tick (``tick``) counts as one tick."""
    return round(value / max(floor, tick, 1e-9), 1)


async def start_sessions(site: BenchSite, connectors: int) -> None:
    """An EV charging on every connector: plug first, C, a card each."""
    for cid in range(1, connectors + 1):
        site.world.plug(cid)
        site.world.set_ev_state(cid, "C")
        await wait_status(site.csms, cid, "Preparing")
        site.world.present_card(card(cid))
        await wait_status(site.csms, cid, "Charging")


async def one_site(connectors: int, seconds: float, settle: float,
                   poll_interval: float | None = None, charge: bool = True) -> dict[str, Any]:
    options = SiteOptions(connectors=connectors, sample_interval=1, ocpp_frames=False)
    with workdir() as path:
        site = BenchSite(path, options)
        async with site:
            agent = AgentProcess(site, site.agent_config_with(poll_interval))
            await agent.start()
            try:
                await wait_all_status(site, "Available")
                await asyncio.sleep(settle)
                out = {"idle": await window(agent.pid, seconds)}
                if charge:
                    await start_sessions(site, connectors)
                    await asyncio.sleep(settle)
                    meter_values = len(site.csms.calls("MeterValues"))
                    out["charging"] = await window(agent.pid, seconds)
                    out["charging"]["meter_values"] = (
                        len(site.csms.calls("MeterValues")) - meter_values)
            finally:
                await agent.stop()
    return out


async def measure(quick: bool) -> Result:
    quiet_logging()
    seconds = QUICK_WINDOW if quick else FULL_WINDOW
    settle = QUICK_SETTLE if quick else SETTLE
    metrics: dict[str, Any] = {"window_seconds": seconds, "site_poll_ms": 20}
    for n in CONNECTOR_COUNTS:
        say(f"footprint: {n} connector(s), {seconds:.0f} s idle, {seconds:.0f} s charging")
        metrics[f"connectors_{n}"] = await one_site(n, seconds, settle)
    sweep: dict[str, Any] = {}
    for poll in (DEFAULT_POLL,) if quick else SWEEP_POLLS:
        say(f"footprint: 1 connector idle, pilot polled every {poll * 1000:.0f} ms")
        sweep[f"{poll * 1000:.0f}"] = (await one_site(1, seconds, settle, poll, False))["idle"]
    metrics["idle_by_poll_ms"] = sweep
    say(f"footprint: the floor, a bare ocpp charge point, {seconds:.0f} s idle")
    bare = metrics["bare_charge_point"] = await bare_floor(seconds, settle)
    one = metrics["connectors_1"]
    metrics["rss_mb_one_connector"] = max(one["idle"]["rss_mb"], one["charging"]["rss_mb"])
    metrics["idle_cpu_percent_one_connector"] = sweep[f"{DEFAULT_POLL * 1000:.0f}"]["cpu_percent"]
    tick_percent = 100 * 0.01 / bare["seconds"]  # utime/stime count 10 ms clock ticks
    metrics["rss_ratio_to_bare"] = ratio(metrics["rss_mb_one_connector"], bare["rss_mb"])
    metrics["idle_cpu_ratio_to_bare"] = ratio(metrics["idle_cpu_percent_one_connector"],
                                              bare["cpu_percent"], tick_percent)
    result = Result(
        name="footprint",
        title="agent process: resident memory and CPU, idle and charging",
        measured=(
            "`python -m agent run` as a child process: VmRSS/VmHWM from /proc/<pid>/status and "
            "utime+stime from /proc/<pid>/stat over each window, idle after boot and with an "
            "EV charging on every connector at 1 s meter sampling, the pilot polled every 20 ms "
            "(the simulated site's setting); idle again for one connector at the agent's "
            "default poll interval (50 ms) and longer ones."
        ),
        quick=quick,
        metrics=metrics,
    )
    for n in CONNECTOR_COUNTS:
        for phase in ("idle", "charging"):
            w = metrics[f"connectors_{n}"][phase]
            result.row(f"{n} connector(s), {phase}, 20 ms poll",
                       _window_text(w, bare, tick_percent))
    for poll_ms, w in sweep.items():
        result.row(f"1 connector, idle, {poll_ms} ms poll", _window_text(w, bare, tick_percent))
    result.row("floor: bare ocpp+websockets charge point, idle", _window_text(bare))
    result.budget("resident memory, 1 connector", "rss_mb_one_connector", 60, "MB",
                  ratio=metrics["rss_ratio_to_bare"],
                  floor=f"bare ocpp charge point: {bare['rss_mb']:.1f} MB")
    result.budget("idle CPU, 1 connector, default 50 ms poll",
                  "idle_cpu_percent_one_connector", 0.5, "% of one core",
                  ratio=metrics["idle_cpu_ratio_to_bare"],
                  floor=f"bare ocpp charge point: {bare['cpu_percent']:.3f} %, taken as at "
                        f"least one 10 ms tick, {tick_percent:.3f} %")
    result.notes.append("(Nx): the ratio to the floor measured in this run, a bare ocpp+"
                        "websockets charge point (a floor CPU below one 10 ms tick counts as "
                        "one tick)")
    result.notes.append("idle CPU is mostly the pilot poll (one Modbus request per poll "
                        "interval on the driver's thread); CPU is counted in 10 ms clock ticks, "
                        "so quick windows mean little")
    return result


def _window_text(w: dict[str, Any], floor: dict[str, Any] | None = None,
                 tick: float = 0.0) -> str:
    """A window's figures; with the ``floor``'s window, each beside its ratio to the floor."""
    rss = f"RSS {w['rss_mb']:.1f} MB"
    cpu = f"CPU {w['cpu_percent']:.2f} %"
    if floor is not None:
        rss += f" ({ratio(w['rss_mb'], floor['rss_mb'])}x)"
        cpu += f" ({ratio(w['cpu_percent'], floor['cpu_percent'], tick)}x)"
    return (f"{rss}, peak {w['peak_rss_mb']:.1f} MB, {cpu} = {w['cpu_seconds_per_hour']:.0f} "
            f"CPU s/h, {w['threads']} threads")


def main(argv: Sequence[str] | None = None) -> int:
    return benchmark_main(measure, argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
