"""Start-up: process start -> BootNotification at the CSMS, and -> contactor control ready.

``python -m agent run --config FILE`` is started as a child process against the simulated
site (CSMS on loopback). Measured from just before the process is spawned:

* the agent's "ready:" log line: contactors forced open, pilot drivers running, the reader
  open, so the agent controls the contactors (agent.app logs it after Runtime.start());
* the BootNotification arriving at the CSMS;
* the first StatusNotification arriving at the CSMS (registration accepted).

For reference, the bare interpreter's start (``python -c pass``) is timed too.

    python -m benchmarks.startup [--quick] [--json PATH]
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence

from benchmarks.harness import AgentProcess, BenchSite, quiet_logging, workdir
from benchmarks.report import Result, benchmark_main, fmt_ms, say, summary_ms
from evsim.site import SiteOptions

FULL_RUNS, QUICK_RUNS = 10, 2


async def one_start(site: BenchSite) -> tuple[float, float, float]:
    """(ready line, BootNotification, first StatusNotification), seconds after spawning."""
    csms = site.csms
    boots = len(csms.calls("BootNotification"))
    agent = AgentProcess(site)
    await agent.start()
    try:
        boot = await csms.wait_for_action("BootNotification", count=boots + 1, within=30)
        ready = await agent.wait_line("ready:", within=30)
        status = await csms.wait_for(
            lambda: next((f for f in csms.calls("StatusNotification") if f.at > boot.at), None),
            30)
    finally:
        await agent.stop()
    t0 = agent.started_at
    return ready - t0, boot.at - t0, status.at - t0


async def bare_interpreter() -> float:
    t0 = time.monotonic()
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await proc.wait()
    return time.monotonic() - t0


async def measure(quick: bool) -> Result:
    quiet_logging()
    runs = QUICK_RUNS if quick else FULL_RUNS
    say(f"startup: {runs} starts of the agent process")
    ready, boot, status, bare = [], [], [], []
    with workdir() as path:
        site = BenchSite(path, SiteOptions(ocpp_frames=False))
        async with site:
            for _ in range(runs):
                r, b, s = await one_start(site)
                ready.append(r)
                boot.append(b)
                status.append(s)
                bare.append(await bare_interpreter())
    result = Result(
        name="startup",
        title="process start -> contactor control ready / BootNotification",
        measured=(
            "From spawning `python -m agent run` to its 'ready:' log line (contactors forced "
            "open, drivers started), to the BootNotification and the first StatusNotification "
            "arriving at the CSMS on loopback."
        ),
        quick=quick,
        metrics={
            "to_contactor_control_ready_ms": summary_ms(ready),
            "to_boot_notification_ms": summary_ms(boot),
            "to_first_status_notification_ms": summary_ms(status),
            "bare_python_start_ms": summary_ms(bare),
        },
    )
    m = result.metrics
    floor = m["bare_python_start_ms"]["p50"]
    m["ready_ratio_to_bare_python"] = round(m["to_contactor_control_ready_ms"]["p50"] / floor, 1)
    m["boot_ratio_to_bare_python"] = round(m["to_boot_notification_ms"]["p50"] / floor, 1)
    status_ratio = round(m["to_first_status_notification_ms"]["p50"] / floor, 1)
    result.row("start -> contactor control ready", fmt_ms(m["to_contactor_control_ready_ms"])
               + f"; p50 {m['ready_ratio_to_bare_python']}x the floor")
    result.row("start -> BootNotification at the CSMS", fmt_ms(m["to_boot_notification_ms"])
               + f"; p50 {m['boot_ratio_to_bare_python']}x the floor")
    result.row("start -> first StatusNotification",
               fmt_ms(m["to_first_status_notification_ms"]) + f"; p50 {status_ratio}x the floor")
    result.row("floor: bare `python -c pass`", fmt_ms(m["bare_python_start_ms"]))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    return benchmark_main(measure, argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
