"""OCTT remote cases: TC_010, TC_011_1, TC_011_2, TC_012, TC_026, TC_027, TC_028."""

from __future__ import annotations

import asyncio

import pytest
from ocpp.exceptions import OCPPError
from ocpp.v16 import call

from evsim.site import SimSite
from tests.integration.conftest import Bench, RunningAgent

from .helpers import VALID, VALID_2, booted, change, charging, status


async def test_tc_010_remote_start_cable_plugged_in_first(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    await bench("plug", 1)
    await status(site, "Preparing")
    await bench("ev_state", 1, "C")
    result = await site.csms.call(call.RemoteStartTransaction(id_tag=VALID, connector_id=1))
    assert result.status == "Accepted"
    await site.csms.wait_for_action("Authorize")  # AuthorizeRemoteTxRequests is true
    start = await site.csms.wait_for_action("StartTransaction")
    assert (start.payload["connectorId"], start.payload["idTag"]) == (1, VALID)
    await status(site, "Charging")


async def test_tc_011_1_remote_start_first_then_plug(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    assert await change(site, "AuthorizeRemoteTxRequests", "false") == "Accepted"
    result = await site.csms.call(call.RemoteStartTransaction(id_tag=VALID, connector_id=1))
    assert result.status == "Accepted"
    await status(site, "Preparing")
    assert not site.csms.calls("Authorize")
    await bench("plug", 1)
    await site.csms.wait_for_action("StartTransaction")
    await bench("ev_state", 1, "C")
    await status(site, "Charging")


async def test_tc_011_2_remote_start_times_out_without_plug(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    assert await change(site, "ConnectionTimeOut", "2") == "Accepted"
    result = await site.csms.call(call.RemoteStartTransaction(id_tag=VALID, connector_id=1))
    assert result.status == "Accepted"
    await status(site, "Preparing")
    again = await site.csms.call(call.RemoteStartTransaction(id_tag=VALID_2, connector_id=1))
    assert again.status == "Rejected", "a second remote start on a waiting connector"
    await status(site, "Available", within=5)
    assert not site.csms.calls("StartTransaction")


async def test_tc_012_remote_stop(site: SimSite, bench: Bench, agent: RunningAgent) -> None:
    await booted(site)
    transaction_id = await charging(site, bench)
    result = await site.csms.call(call.RemoteStopTransaction(transaction_id))
    assert result.status == "Accepted"
    stop = await site.csms.wait_for_action("StopTransaction")
    assert (stop.payload["transactionId"], stop.payload["reason"]) == (transaction_id, "Remote")
    await status(site, "Finishing")
    again = await site.csms.call(call.RemoteStopTransaction(transaction_id))
    assert again.status == "Rejected", "a stopped transaction cannot be stopped twice"
    await asyncio.sleep(0.3)
    assert len(site.csms.calls("StopTransaction")) == 1


async def test_tc_026_remote_start_on_a_busy_connector_is_rejected(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    await charging(site, bench)
    result = await site.csms.call(call.RemoteStartTransaction(id_tag=VALID_2, connector_id=1))
    assert result.status == "Rejected"
    anywhere = await site.csms.call(call.RemoteStartTransaction(id_tag=VALID_2))
    assert anywhere.status == "Rejected", "no free connector left"


async def test_tc_027_remote_start_on_connector_zero_is_rejected(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    try:
        result = await site.csms.call(call.RemoteStartTransaction(id_tag=VALID, connector_id=0))
    except OCPPError:
        return  # a CALLERROR is allowed too
    assert result.status == "Rejected"


async def test_tc_028_remote_stop_of_an_unknown_transaction_is_rejected(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    result = await site.csms.call(call.RemoteStopTransaction(4711))
    assert result.status == "Rejected"


@pytest.mark.parametrize("connector_id", [None, 1])
async def test_remote_start_without_connector_picks_the_plugged_one(
    site: SimSite, bench: Bench, agent: RunningAgent, connector_id: int | None
) -> None:
    await booted(site)
    await bench("plug", 1)
    await status(site, "Preparing")
    result = await site.csms.call(call.RemoteStartTransaction(id_tag=VALID,
                                                              connector_id=connector_id))
    assert result.status == "Accepted"
    start = await site.csms.wait_for_action("StartTransaction")
    assert start.payload["connectorId"] == 1
