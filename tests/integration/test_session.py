"""A whole charging session: real drivers, simulated devices, OCPP 1.6J to a strict CSMS."""

from __future__ import annotations

import asyncio

from evsim.site import SimSite

from .conftest import Bench, RunningAgent, wait_status

CARD = "00A1B2C3"
READER_REPEAT_WINDOW = 1.0


async def test_plug_first_session_charges_and_books_the_metered_energy(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    csms = site.csms
    await wait_status(site, "Available")
    start_energy = (await bench.connector())["meter"]["energy_wh"]

    await bench("plug", 1)
    await wait_status(site, "Preparing")
    await bench("present_card", CARD)
    await csms.wait_for_action("StartTransaction")
    await bench("ev_state", 1, "C")
    await wait_status(site, "Charging")
    await bench.until_relay(True)

    await csms.wait_for_action("MeterValues", count=2)
    await bench("ev_state", 1, "B")
    await wait_status(site, "SuspendedEV")
    await bench.until_relay(False)

    await bench("unplug", 1)
    await csms.wait_for_action("StopTransaction")
    await wait_status(site, "Available")

    (tx,) = csms.transactions.values()
    end_energy = (await bench.connector())["meter"]["energy_wh"]
    assert tx.id_tag == CARD
    assert tx.reason == "EVDisconnected"
    assert tx.meter_stop is not None and tx.meter_stop > tx.meter_start
    assert tx.meter_start == int(start_energy)
    assert tx.meter_stop == int(end_energy)
    assert len(tx.meter_values) >= 2


async def test_card_first_session_stopped_by_the_same_card(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    csms = site.csms
    await wait_status(site, "Available")
    await bench("present_card", CARD)
    await wait_status(site, "Preparing")
    await bench("plug", 1)
    await csms.wait_for_action("StartTransaction")
    await bench("ev_state", 1, "C")
    await wait_status(site, "Charging")
    await asyncio.sleep(READER_REPEAT_WINDOW)  # a card held on is one presentation, not two
    await bench("present_card", CARD)
    await csms.wait_for_action("StopTransaction")
    await wait_status(site, "Finishing")
    await bench.until_relay(False)
    (tx,) = csms.transactions.values()
    assert (tx.reason, tx.stop_id_tag) == ("Local", CARD)
