"""OCTT cases: resets TC_013..016, unlock TC_017_2/TC_018_2/TC_031, TriggerMessage TC_054/055,
DataTransfer TC_062, ChangeAvailability, fault behaviour TC_041."""

from __future__ import annotations

import asyncio

import pytest
from ocpp.v16 import call

from evsim.site import SimSite
from tests.integration.conftest import Bench, RunningAgent

from .helpers import booted, charging, status


@pytest.mark.parametrize(("kind", "reason"), [("Hard", "HardReset"), ("Soft", "SoftReset")])
async def test_tc_015_016_reset_with_a_transaction_stops_it_then_reboots(
    site: SimSite, bench: Bench, agent: RunningAgent, kind: str, reason: str
) -> None:
    reboots: list[bool] = []
    agent.runtime.on_reboot = reboots.append
    await booted(site)
    await charging(site, bench)
    result = await site.csms.call(call.Reset(type=kind))
    assert result.status == "Accepted"
    stop = await site.csms.wait_for_action("StopTransaction")
    assert stop.payload["reason"] == reason
    await bench.until_relay(False)
    await site.csms.wait_for(lambda: reboots)
    assert reboots == [kind == "Hard"]


@pytest.mark.parametrize("kind", ["Hard", "Soft"])
async def test_tc_013_014_reset_without_a_transaction_reboots(
    site: SimSite, agent: RunningAgent, kind: str
) -> None:
    reboots: list[bool] = []
    agent.runtime.on_reboot = reboots.append
    await booted(site)
    result = await site.csms.call(call.Reset(type=kind))
    assert result.status == "Accepted"
    await site.csms.wait_for(lambda: reboots)
    assert not site.csms.calls("StopTransaction")


async def test_tc_017_2_018_2_031_unlock_without_a_lock_is_not_supported(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    for connector_id in (1, 7):  # TC_031: an unknown connector is NotSupported too
        result = await site.csms.call(call.UnlockConnector(connector_id))
        assert result.status == "NotSupported"
    await charging(site, bench)
    result = await site.csms.call(call.UnlockConnector(1))
    assert result.status == "NotSupported"
    await asyncio.sleep(0.3)
    assert not site.csms.calls("StopTransaction"), "TC_018_2: the transaction goes on"


@pytest.mark.parametrize(("message", "action"), [
    ("BootNotification", "BootNotification"),
    ("Heartbeat", "Heartbeat"),
    ("StatusNotification", "StatusNotification"),
    ("MeterValues", "MeterValues"),
    ("DiagnosticsStatusNotification", "DiagnosticsStatusNotification"),
    ("FirmwareStatusNotification", "FirmwareStatusNotification"),
])
async def test_tc_054_trigger_message_answers_first_then_sends(
    site: SimSite, agent: RunningAgent, message: str, action: str
) -> None:
    await booted(site)
    before = len(site.csms.calls(action))
    result = await site.csms.call(call.TriggerMessage(requested_message=message, connector_id=1))
    assert result.status == "Accepted"
    triggered = await site.csms.wait_for_action(action, count=before + 1)
    reply = next(f for f in site.csms.frames
                 if f.direction == "in" and f.message_type == 3 and f.action == "TriggerMessage")
    assert reply.at <= triggered.at and site.csms.frames.index(reply) < \
        site.csms.frames.index(triggered), "the TriggerMessage reply goes first"


async def test_tc_055_trigger_message_for_an_unknown_connector_is_rejected(
    site: SimSite, agent: RunningAgent
) -> None:
    await booted(site)
    result = await site.csms.call(call.TriggerMessage(requested_message="MeterValues",
                                                      connector_id=5))
    assert result.status == "Rejected"


async def test_tc_062_data_transfer_with_an_unknown_vendor(
    site: SimSite, agent: RunningAgent
) -> None:
    await booted(site)
    result = await site.csms.call(call.DataTransfer(vendor_id="com.example.unknown"))
    assert result.status in ("UnknownVendorId", "Rejected")


async def test_change_availability_inoperative_now_and_scheduled_during_a_transaction(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    result = await site.csms.call(call.ChangeAvailability(connector_id=1, type="Inoperative"))
    assert result.status == "Accepted"
    await status(site, "Unavailable")
    await status(site, "Unavailable", connector_id=0)
    await bench("present_card", "0C0FFEE0")
    await asyncio.sleep(0.3)
    assert not site.csms.calls("Authorize"), "an unavailable charger takes no card"
    result = await site.csms.call(call.ChangeAvailability(connector_id=0, type="Operative"))
    assert result.status == "Accepted"
    await status(site, "Available")
    await charging(site, bench)
    result = await site.csms.call(call.ChangeAvailability(connector_id=1, type="Inoperative"))
    assert result.status == "Scheduled"
    assert site.csms.last_status(1) == "Charging"
    await bench("unplug", 1)
    await site.csms.wait_for_action("StopTransaction")
    await status(site, "Unavailable")


async def test_tc_041_a_failed_evse_board_faults_the_connector_and_recovers(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    board = site.world_server.world.evse_board(1)
    board.offline = True
    await status(site, "Faulted", within=5)
    (_, _, error_code) = site.csms.statuses[-1]
    # The charger's own board is lost, not the EV's pilot: InternalError (agent.core.station,
    # PILOT_LOST).
    assert error_code == "InternalError"
    board.offline = False
    await status(site, "Available", within=5)
