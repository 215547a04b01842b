"""Several connectors on one charger, one reader for all of them, and free vend."""

from __future__ import annotations

import pytest
from ocpp.v16 import call

from evsim.site import SimSite, SiteOptions
from tests.integration.conformance.helpers import VALID, VALID_2, booted, present_again, status

from .conftest import Bench, RunningAgent


@pytest.fixture
def site_options() -> SiteOptions:
    return SiteOptions(connectors=2, sample_interval=1)


async def test_two_simultaneous_transactions_each_with_its_own_meter_and_contactor(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site, connectors=2)
    for connector_id, tag in ((1, VALID), (2, VALID_2)):
        await bench("plug", connector_id)
        await status(site, "Preparing", connector_id)
        await bench("ev_state", connector_id, "C")
        await present_again(bench, tag)  # plug first: the card goes to the waiting connector
        await status(site, "Charging", connector_id)
        await bench.until_relay(True, connector_id)
    starts = {f.payload["connectorId"]: f.payload["idTag"]
              for f in site.csms.calls("StartTransaction")}
    assert starts == {1: VALID, 2: VALID_2}
    await bench("unplug", 2)
    await status(site, "Available", 2)
    await bench.until_relay(False, 2)
    assert await bench.relay_closed(1), "connector 1 charges on"
    await present_again(bench, VALID)
    stop = await site.csms.wait_for_action("StopTransaction", count=2)
    assert stop.payload["idTag"] == VALID
    books = {t.connector_id: t for t in site.csms.transactions.values()}
    for connector_id in (1, 2):
        meter = (await bench.connector(connector_id))["meter"]["energy_wh"]
        assert books[connector_id].meter_stop == int(meter)


async def test_card_first_with_two_connectors_goes_to_the_next_plugged_in(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site, connectors=2)
    await bench("present_card", VALID)
    await site.csms.wait_for_action("Authorize")
    await bench("plug", 2)
    start = await site.csms.wait_for_action("StartTransaction")
    assert (start.payload["connectorId"], start.payload["idTag"]) == (2, VALID)
    assert site.csms.last_status(1) == "Available"


async def test_remote_start_without_connector_takes_a_free_one(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site, connectors=2)
    await bench("plug", 2)
    await status(site, "Preparing", 2)
    result = await site.csms.call(call.RemoteStartTransaction(id_tag=VALID))
    assert result.status == "Accepted"
    start = await site.csms.wait_for_action("StartTransaction")
    assert start.payload["connectorId"] == 2, "the plugged-in connector is preferred"
