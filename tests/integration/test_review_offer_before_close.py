"""Review: the contactor closes only once the pilot offers (DESIGN.md Safety; commit d25b3ee
"Close a contactor only under an offer on the pilot"). The core orders its effects offer
first, then close; this checks what the hardware sees, through the real runtime and drivers:
the pilot's offer write must have completed before the contactor is commanded closed."""

from __future__ import annotations

from typing import Any

from evsim.site import SimSite
from tests.integration.conformance.helpers import booted, charging, status
from tests.integration.conformance.test_smart_charging import install, profile
from tests.integration.conftest import Bench, RunningAgent


async def test_the_contactor_closes_after_the_offer_reached_the_pilot(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    hw = agent.runtime.hardware[1]
    seen: list[tuple[str, Any]] = []
    pilot, contactor = hw.pilot, hw.interlock.contactor
    set_offer, set_closed = pilot.set_offered_current, contactor.set_closed

    async def offer(amps: float) -> None:
        await set_offer(amps)
        seen.append(("offer applied", amps))

    def closed(value: bool) -> None:
        seen.append(("contactor", value))
        set_closed(value)

    pilot.set_offered_current = offer  # type: ignore[method-assign]
    contactor.set_closed = closed  # type: ignore[method-assign]
    await charging(site, bench)
    first_close = seen.index(("contactor", True))
    offered_before = [amps for what, amps in seen[:first_close] if what == "offer applied"]
    assert offered_before and offered_before[-1] > 0, (
        f"the contactor closed before the pilot offered anything: {seen}")


async def test_a_resume_closes_the_contactor_after_the_offer_reached_the_pilot(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    """A pause (0 A) with the EV staying in C: the 6 s grace opens the contactor; the resume
    (16 A, more than 5 s after the pause, so not held) decides the offer and the close in one
    reconcile. The runtime applies the close at once and the offer in a task: the hardware
    must still see the offer first."""
    await booted(site)
    await charging(site, bench)
    assert await install(site, 0, profile(1, "TxDefaultProfile", [(0, 0)])) == "Accepted"
    await status(site, "SuspendedEVSE")
    await bench.until_relay(False, within=15)
    hw = agent.runtime.hardware[1]
    seen: list[tuple[str, Any]] = []
    pilot, contactor = hw.pilot, hw.interlock.contactor
    set_offer, set_closed = pilot.set_offered_current, contactor.set_closed

    async def offer(amps: float) -> None:
        seen.append(("offer asked", amps))
        await set_offer(amps)
        seen.append(("offer applied", amps))

    def closed(value: bool) -> None:
        seen.append(("contactor", value))
        set_closed(value)

    pilot.set_offered_current = offer  # type: ignore[method-assign]
    contactor.set_closed = closed  # type: ignore[method-assign]
    assert await install(site, 0, profile(1, "TxDefaultProfile", [(0, 16)])) == "Accepted"
    await status(site, "Charging", within=15)
    await bench.until_relay(True, within=5)
    first_close = seen.index(("contactor", True))
    offered_before = [amps for what, amps in seen[:first_close] if what == "offer applied"]
    assert offered_before and offered_before[-1] > 0, (
        f"the contactor closed before the pilot offered anything: {seen}")
