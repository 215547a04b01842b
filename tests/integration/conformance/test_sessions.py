"""OCTT session cases: TC_003, TC_004_1, TC_004_2, TC_068, TC_069, TC_005_1/2/3, TC_023."""

from __future__ import annotations

import asyncio

from ocpp.v16 import call

from evsim.site import SimSite
from tests.integration.conftest import Bench, RunningAgent

from .helpers import (
    INVALID,
    VALID,
    VALID_2,
    booted,
    change,
    charging,
    present_again,
    status,
)


async def test_tc_003_plug_in_first(site: SimSite, bench: Bench, agent: RunningAgent) -> None:
    await booted(site)
    await bench("plug", 1)
    await status(site, "Preparing")
    await bench("ev_state", 1, "C")
    await bench("present_card", VALID)
    await site.csms.wait_for_action("StartTransaction")
    await status(site, "Charging")
    assert [s for _, s, _ in site.csms.statuses[2:]] == ["Preparing", "Charging"]
    assert [f.action for f in site.csms.calls()][-3:-1] == ["Authorize", "StartTransaction"]


async def test_tc_004_1_identification_first(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    await bench("present_card", VALID)
    await site.csms.wait_for_action("Authorize")
    await status(site, "Preparing")
    await bench("plug", 1)
    start = await site.csms.wait_for_action("StartTransaction")
    assert start.payload["idTag"] == VALID
    await bench("ev_state", 1, "C")
    await status(site, "Charging")


async def test_tc_004_2_identification_first_connection_timeout(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    assert await change(site, "ConnectionTimeOut", "2") == "Accepted"
    await bench("present_card", VALID)
    await status(site, "Preparing")
    await status(site, "Available", within=5)
    await bench("plug", 1)
    await status(site, "Preparing")
    await asyncio.sleep(0.5)
    assert not site.csms.calls("StartTransaction")


async def test_tc_068_only_the_same_id_tag_stops(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    await charging(site, bench)
    authorizes = len(site.csms.calls("Authorize"))
    await present_again(bench, VALID_2)
    await asyncio.sleep(0.5)
    assert len(site.csms.calls("Authorize")) == authorizes, "no Authorize for another tag"
    assert not site.csms.calls("StopTransaction")
    await present_again(bench, VALID)
    stop = await site.csms.wait_for_action("StopTransaction")
    assert (stop.payload["idTag"], stop.payload["reason"]) == (VALID, "Local")
    await status(site, "Finishing")


async def test_tc_069_a_tag_of_the_same_parent_stops(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    site.csms.authorizations[VALID] = {"status": "Accepted", "parentIdTag": "FLEET1"}
    site.csms.authorizations[VALID_2] = {"status": "Accepted", "parentIdTag": "FLEET1"}
    await booted(site)
    await charging(site, bench)
    await present_again(bench, VALID_2)
    stop = await site.csms.wait_for_action("StopTransaction")
    assert stop.payload["idTag"] == VALID_2
    await status(site, "Finishing")


async def test_tc_005_1_ev_side_disconnect_stops_with_ev_disconnected(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    await charging(site, bench)
    await bench("unplug", 1)
    stop = await site.csms.wait_for_action("StopTransaction")
    assert stop.payload["reason"] == "EVDisconnected"
    await status(site, "Available")
    await bench.until_relay(False)


async def test_tc_005_3_no_stop_on_ev_side_disconnect_keeps_the_transaction(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    assert await change(site, "StopTransactionOnEVSideDisconnect", "false") == "Accepted"
    transaction_id = await charging(site, bench)
    await bench("unplug", 1)
    await status(site, "SuspendedEV")
    await bench.until_relay(False)
    assert not site.csms.calls("StopTransaction")
    result = await site.csms.call(call.RemoteStopTransaction(transaction_id))
    assert result.status == "Accepted"
    stop = await site.csms.wait_for_action("StopTransaction")
    assert stop.payload["reason"] == "Remote"
    await status(site, "Available")


async def test_tc_023_invalid_blocked_expired_tags_start_nothing(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    site.csms.authorizations[INVALID] = {"status": "Invalid"}
    site.csms.authorizations["0B10C4ED"] = {"status": "Blocked"}
    site.csms.authorizations["0E4819ED"] = {"status": "Expired"}
    await booted(site)
    await bench("plug", 1)
    await status(site, "Preparing")
    for tag in (INVALID, "0B10C4ED", "0E4819ED"):
        await bench("present_card", tag)
    await site.csms.wait_for(lambda: len(site.csms.calls("Authorize")) == 3)
    await asyncio.sleep(0.3)
    assert not site.csms.calls("StartTransaction")
    assert site.csms.last_status(1) == "Preparing"
    await bench.until_relay(False)
