"""A whole charging session with the PN532 NFC reader: the world serves an emulated PN532 in
HSU mode on its reader pty, and the agent runs its real Pn532Reader (``[reader] driver =
"pn532"``) against it, with OCPP 1.6J to a strict CSMS."""

from __future__ import annotations

import pytest

from evsim.site import SimSite, SiteOptions

from .conftest import Bench, RunningAgent, wait_status

CARD = "04A1B2C3"  # the PN532 reports the 4-byte UID as read: 04 A1 B2 C3


@pytest.fixture
def site_options() -> SiteOptions:
    return SiteOptions(sample_interval=1, reader="pn532")


async def test_a_card_on_the_pn532_starts_a_session_that_unplugging_ends(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    csms = site.csms
    assert "[reader]\ndriver = \"pn532\"" in site.agent_config()
    await wait_status(site, "Available")
    await bench("plug", 1)
    await wait_status(site, "Preparing")
    presented = await bench("present_card", CARD)
    assert "PN532" in presented["reader"]  # the emulated PN532's pty, not an RDM6300's

    authorize = await csms.wait_for_action("Authorize")
    assert authorize.payload == {"idTag": CARD}
    start = await csms.wait_for_action("StartTransaction")
    assert start.payload["idTag"] == CARD
    await bench("ev_state", 1, "C")
    await wait_status(site, "Charging")
    state = await bench.until_connector(lambda s: s["meter"]["power_w"] > 0,
                                        what="no current flows")
    assert state["contactor"]["relay_closed"] is True

    await bench("unplug", 1)
    await bench.until_relay(False)
    await csms.wait_for_action("StopTransaction")
    await wait_status(site, "Available")
    (tx,) = csms.transactions.values()
    assert (tx.id_tag, tx.reason) == (CARD, "EVDisconnected")
    assert tx.meter_stop is not None and tx.meter_stop >= tx.meter_start


async def test_an_unplugged_pn532_is_a_reader_failure_until_it_is_back(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    csms = site.csms

    def station(error_code: str) -> bool:
        last = [(status, error) for cid, status, error in csms.statuses if cid == 0][-1:]
        return last == [("Available", error_code)]

    await csms.wait_for(lambda: station("NoError"))
    await bench("fault", 0, "reader_unplugged", True)
    await csms.wait_for(lambda: station("ReaderFailure"))
    await bench("fault", 0, "reader_unplugged", False)
    await csms.wait_for(lambda: station("NoError"))
    await bench("plug", 1)
    await bench("present_card", CARD)  # the replugged chip was woken and configured again
    assert (await csms.wait_for_action("StartTransaction")).payload["idTag"] == CARD
