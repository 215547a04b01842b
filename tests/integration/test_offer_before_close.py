"""The contactor closes only once the pilot offers (DESIGN.md Safety; commit d25b3ee
"Close a contactor only under an offer on the pilot"). The core orders its effects offer
first, then close; this checks what the hardware sees, through the real runtime and drivers:
the pilot's offer write must have completed before the contactor is commanded closed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from evsim.site import SimSite
from hal.errors import DeviceError
from tests.integration.conformance.helpers import booted, charging, status
from tests.integration.conformance.test_smart_charging import install, profile
from tests.integration.conftest import Bench, RunningAgent


def record(agent: RunningAgent) -> list[tuple[str, Any]]:
    """What connector 1's pilot and contactor are told, in order, from now on."""
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
    return seen


def assert_offered_before_closing(seen: list[tuple[str, Any]]) -> None:
    first_close = seen.index(("contactor", True))
    offered_before = [amps for what, amps in seen[:first_close] if what == "offer applied"]
    assert offered_before and offered_before[-1] > 0, (
        f"the contactor closed before the pilot offered anything: {seen}")


async def test_the_contactor_closes_after_the_offer_reached_the_pilot(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    seen = record(agent)
    await charging(site, bench)
    await bench.until_relay(True, within=5)
    assert_offered_before_closing(seen)


async def test_a_resume_closes_the_contactor_after_the_offer_reached_the_pilot(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    """A pause (0 A) with the EV staying in C: the 6 s grace opens the contactor; the resume
    (16 A, more than 5 s after the pause, so not held) decides the offer and the close in one
    reconcile. The runtime applied the close at once and the offer in a task: the contactor
    was commanded closed before the offer was even asked of the pilot."""
    await booted(site)
    await charging(site, bench)
    assert await install(site, 0, profile(1, "TxDefaultProfile", [(0, 0)])) == "Accepted"
    await status(site, "SuspendedEVSE")
    await bench.until_relay(False, within=15)
    seen = record(agent)
    assert await install(site, 0, profile(1, "TxDefaultProfile", [(0, 16)])) == "Accepted"
    await status(site, "Charging", within=15)
    await bench.until_relay(True, within=5)
    assert_offered_before_closing(seen)


async def test_no_close_when_the_pilot_did_not_take_the_offer(
    site: SimSite, bench: Bench, agent: RunningAgent, caplog: pytest.LogCaptureFixture
) -> None:
    """An offer the pilot refused (the board did not answer the write): the EV may see any
    offer, or none, so the contactor stays open although the core asked for it."""
    await booted(site)
    pilot = agent.runtime.hardware[1].pilot
    set_offer = pilot.set_offered_current

    async def refused(amps: float) -> None:
        if amps > 0:
            raise DeviceError("the EVSE board did not answer the write")
        await set_offer(amps)

    pilot.set_offered_current = refused  # type: ignore[method-assign]
    await charging(site, bench)
    for _ in range(500):  # the runtime says why before it gives up the close
        if any("not closing the contactor" in r.getMessage() for r in caplog.records):
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the runtime never refused the close")
    assert not await bench.relay_closed()
    pilot.set_offered_current = set_offer  # type: ignore[method-assign]
