"""Remote start -> plug-in -> contactor output closed, measured from the plug-in.

The CSMS sends RemoteStartTransaction (connector 1, a new idTag each session); the agent
accepts it and, with AuthorizeRemoteTxRequests (the default), authorizes the idTag with the
CSMS. Then the EV is plugged in and asks for power at once (state C): the pilot driver sees it,
the core reads meterStart, sends StartTransaction and closes the contactor.

    python -m benchmarks.remote_start [--quick] [--json PATH]
"""

from __future__ import annotations

import asyncio
import functools
import sys
import time
from collections.abc import Sequence

from benchmarks.harness import (
    InProcessAgent,
    SiteThread,
    agent_in_site,
    card,
    plug_in_c,
    wait_contactor,
    wait_status,
)
from benchmarks.report import Result, benchmark_main, fmt_ms, say, summary_ms
from evsim.csms import Csms
from evsim.site import SiteOptions

FULL_SESSIONS, QUICK_SESSIONS = 50, 5
SETTLE = 0.05  # after the remote start is authorized, before the plug-in


def _more_calls(csms: Csms, action: str, than: int) -> bool:
    return len(csms.calls(action)) > than


async def _sessions(site: SiteThread, agent: InProcessAgent,
                    sessions: int) -> tuple[list[float], list[float]]:
    from ocpp.v16 import call

    csms, world, probes = site.site.csms, site.site.world, agent.probes[1]
    plug_to_closed: list[float] = []
    call_round_trips: list[float] = []
    for k in range(1, sessions + 1):
        authorizations = len(csms.calls("Authorize"))
        t_call = time.monotonic()
        answer = await csms.call(call.RemoteStartTransaction(id_tag=card(k), connector_id=1))
        call_round_trips.append(time.monotonic() - t_call)
        if answer.status != "Accepted":
            raise RuntimeError(f"RemoteStartTransaction was answered {answer.status}")
        await csms.wait_for(functools.partial(_more_calls, csms, "Authorize", authorizations))
        await wait_status(csms, 1, "Preparing")
        await asyncio.sleep(SETTLE)
        t_plug = await plug_in_c(world, probes, 1)
        closed = await wait_contactor(probes, t_plug, True)
        plug_to_closed.append(closed.at - t_plug)
        world.unplug(1)
        await wait_status(csms, 1, "Available")
    return plug_to_closed, call_round_trips


async def measure(quick: bool) -> Result:
    sessions = QUICK_SESSIONS if quick else FULL_SESSIONS
    say(f"remote_start: {sessions} sessions")
    options = SiteOptions(sample_interval=1, ocpp_frames=False)
    async with agent_in_site(options) as (site, agent):
        plug_to_closed, round_trips = await site.run(_sessions(site, agent, sessions))
    result = Result(
        name="remote_start",
        title="RemoteStartTransaction, then plug-in -> contactor output closed",
        measured=(
            "EV plugged in and in C at once (the world's EVSE board register changes) -> the "
            "GpioContactor output switched on, after a RemoteStartTransaction accepted and "
            "authorized with the CSMS (AuthorizeRemoteTxRequests = true)."
        ),
        quick=quick,
        metrics={
            "plug_to_closed_ms": summary_ms(plug_to_closed),
            "remote_start_round_trip_ms": summary_ms(round_trips),
        },
    )
    result.row("plug-in -> contactor closed", fmt_ms(result.metrics["plug_to_closed_ms"]))
    result.row("RemoteStartTransaction round trip",
               fmt_ms(result.metrics["remote_start_round_trip_ms"]))
    result.notes.append("plug-in -> closed includes the pilot poll interval (20 ms on the "
                        "simulated site) and the meterStart read over Modbus")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    return benchmark_main(measure, argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
