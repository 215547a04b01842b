"""A limit change -> the pilot's new offer on the EVSE board, over the whole agent.

The CSMS sends SetChargingProfile (a TxDefaultProfile on connector 1) to a charging EV; the
timer stops when the simulated EVSE board's configured current (the Modbus register the
agent's pilot driver writes) shows the new offer. Three kinds of change, each measured from
the SetChargingProfile call: a new limit (16 A <-> 10 A), a pause (0 A: "no charging"),
and a resume (16 A after a pause). Changes are 5.2 s apart: the agent changes the offer
toward the EV at most once per 5 s (IEC 61851-1, docs/smart-charging.md), so a change sooner
would measure that wait instead.

    python -m benchmarks.limit_to_offer [--quick] [--json PATH]

Standalone (not in ``python -m benchmarks``: a round takes about 20 s).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from typing import Any

from benchmarks.harness import InProcessAgent, SiteThread, agent_in_site, plug_in_c, wait_status
from benchmarks.report import Result, benchmark_main, fmt_ms, say, summary_ms
from evsim.site import SiteOptions

FULL_ROUNDS, QUICK_ROUNDS = 8, 1
SPACING = 5.2  # s between changes: above the agent's 5 s offer spacing
POLL = 0.001


def _profile(limit: float) -> dict[str, Any]:
    return {"charging_profile_id": 1, "stack_level": 0,
            "charging_profile_purpose": "TxDefaultProfile", "charging_profile_kind": "Relative",
            "charging_schedule": {"charging_rate_unit": "A",
                                  "charging_schedule_period": [{"start_period": 0,
                                                                "limit": limit}]}}


async def _change(site: SiteThread, limit: float) -> float:
    from ocpp.v16 import call

    csms, world = site.site.csms, site.site.world
    t0 = time.monotonic()
    answer = await csms.call(call.SetChargingProfile(connector_id=1,
                                                     cs_charging_profiles=_profile(limit)))
    if answer.status != "Accepted":
        raise RuntimeError(f"SetChargingProfile was answered {answer.status}")
    while world.connector_state(1)["offered_current_a"] != limit:
        if time.monotonic() - t0 > 10:
            raise TimeoutError(f"the offer never became {limit} A")
        await asyncio.sleep(POLL)
    elapsed = time.monotonic() - t0
    await asyncio.sleep(SPACING)
    return elapsed


async def _rounds(site: SiteThread, agent: InProcessAgent, rounds: int
                  ) -> dict[str, list[float]]:
    from ocpp.v16 import call

    csms = site.site.csms
    answer = await csms.call(call.RemoteStartTransaction(id_tag="B0000001", connector_id=1))
    if answer.status != "Accepted":
        raise RuntimeError(f"RemoteStartTransaction was answered {answer.status}")
    await wait_status(csms, 1, "Preparing")
    await plug_in_c(site.site.world, agent.probes[1], 1)
    await wait_status(csms, 1, "Charging")
    await asyncio.sleep(SPACING)
    found: dict[str, list[float]] = {"limit": [], "pause": [], "resume": []}
    for _ in range(rounds):
        found["limit"].append(await _change(site, 10))
        found["limit"].append(await _change(site, 16))
        found["pause"].append(await _change(site, 0))
        found["resume"].append(await _change(site, 16))
    return found


async def measure(quick: bool) -> Result:
    rounds = QUICK_ROUNDS if quick else FULL_ROUNDS
    say(f"limit_to_offer: {rounds} rounds of 4 changes, {SPACING} s apart")
    options = SiteOptions(sample_interval=10, ocpp_frames=False)
    async with agent_in_site(options) as (site, agent):
        found = await site.run(_rounds(site, agent, rounds))
    result = Result(
        name="limit_to_offer",
        title="SetChargingProfile -> the EVSE board's offered current",
        measured=("SetChargingProfile sent by the CSMS (loopback) -> the simulated EVSE "
                  "board's configured-current register shows the new offer, polled every "
                  f"{POLL * 1000:g} ms; changes {SPACING} s apart."),
        quick=quick,
        metrics={f"{kind}_ms": summary_ms(values) for kind, values in found.items()},
    )
    for kind in found:
        result.row(f"{kind} -> offer on the board", fmt_ms(result.metrics[f"{kind}_ms"]))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    return benchmark_main(measure, argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
