"""Scenarios that run on the simulator and, marked ``bench``, on a real bench (docs/bench.md).

Only the bench control API and the CSMS are used: no emulator internals, no agent internals,
no meter readings from the bench (a real bench cannot read the charger's own meter bus).
"""

from __future__ import annotations

import asyncio

from agent.app import Agent

from .conftest import Rig

# A real bench reads the relay over HTTP while the agent opens it on its own thread; the
# 100 ms of IEC 61851-1 is measured on the bench itself (a scope), not through this API.
RELAY_OPENS_WITHIN_S = 1.0


async def status(rig: Rig, wanted: str) -> None:
    await rig.csms.wait_for(lambda: rig.csms.last_status(rig.connector) == wanted,
                            within=rig.step_timeout)


async def charging(rig: Rig) -> None:
    """Plug in, present the accepted card, EV asks for power: the relay closes."""
    await status(rig, "Available")
    await rig.bench("plug", rig.connector)
    await status(rig, "Preparing")
    await rig.bench("present_card", rig.accepted_card)
    await rig.csms.wait_for_action("StartTransaction", within=rig.step_timeout)
    await rig.bench("ev_state", rig.connector, "C")
    await status(rig, "Charging")
    await rig.bench.until_relay(True, rig.connector, within=rig.step_timeout)


async def test_whole_session_plug_card_charge_stop_unplug(rig: Rig, charger: Agent) -> None:
    await charging(rig)
    await rig.bench("ev_state", rig.connector, "B")
    await status(rig, "SuspendedEV")
    await rig.bench.until_relay(False, rig.connector, within=rig.step_timeout)
    await rig.bench("unplug", rig.connector)
    await rig.csms.wait_for_action("StopTransaction", within=rig.step_timeout)
    await status(rig, "Available")
    (tx,) = rig.csms.transactions.values()
    assert tx.id_tag == rig.accepted_card
    assert tx.reason == "EVDisconnected"
    assert tx.meter_stop is not None and tx.meter_stop >= tx.meter_start


async def test_unplug_while_charging_opens_the_relay(rig: Rig, charger: Agent) -> None:
    await charging(rig)
    await rig.bench("unplug", rig.connector)  # straight from C: the cable is pulled
    await rig.bench.until_relay(False, rig.connector, within=RELAY_OPENS_WITHIN_S)
    stop = await rig.csms.wait_for_action("StopTransaction", within=rig.step_timeout)
    assert stop.payload["reason"] == "EVDisconnected"
    await status(rig, "Available")


async def test_unknown_card_is_rejected_and_nothing_switches(rig: Rig, charger: Agent) -> None:
    rig.csms.authorizations[rig.unknown_card.upper()] = {"status": "Invalid"}
    await status(rig, "Available")
    await rig.bench("plug", rig.connector)
    await status(rig, "Preparing")
    await rig.bench("ev_state", rig.connector, "C")  # the EV asks for power: still no
    await rig.bench("present_card", rig.unknown_card)
    await rig.csms.wait_for(
        lambda: any(f.payload.get("idTag") == rig.unknown_card
                    for f in rig.csms.calls("Authorize")), within=rig.step_timeout)
    for _ in range(10):  # a second of watching: the relay never closes
        assert not await rig.bench.relay_closed(rig.connector)
        await asyncio.sleep(0.1)
    assert not rig.csms.calls("StartTransaction")
    assert rig.csms.last_status(rig.connector) in ("Preparing", "SuspendedEVSE")
