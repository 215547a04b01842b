"""Every fault the world can inject, seen where it matters: the StatusNotification at the CSMS
(status and errorCode) and the relay; then cleared, and the connector usable again.

Also UnlockConnector with a connector lock and with a fixed cable.
"""

from __future__ import annotations

import asyncio

import pytest
from ocpp.v16 import call

from evsim.site import SimSite, SiteOptions

from .conftest import Bench, RunningAgent

CARD = "00A1B2C3"
WITHIN = 30.0  # s: generous bounds; a lost meter is three failed reads of two tries each


def last_status(site: SimSite, connector_id: int) -> tuple[str, str] | None:
    for cid, status, error in reversed(site.csms.statuses):
        if cid == connector_id:
            return status, error
    return None


async def until_status(site: SimSite, status: str, error: str = "NoError",
                       connector_id: int = 1, within: float = WITHIN) -> None:
    await site.csms.wait_for(lambda: last_status(site, connector_id) == (status, error), within)


async def start_charging(site: SimSite, bench: Bench) -> None:
    await until_status(site, "Available")
    await bench("plug", 1)
    await bench("present_card", CARD)
    await site.csms.wait_for_action("StartTransaction")
    await bench("ev_state", 1, "C")
    await until_status(site, "Charging")
    await bench.until_relay(True)


async def until_world_fault(bench: Bench, fault: str, active: bool) -> None:
    """The world has (or no longer has) the fault; the agent then sees it on its wires."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5.0
    while (fault in (await bench.connector(1))["faults"]) is not active:
        assert loop.time() < deadline, f"world fault {fault} never became {active}"
        await asyncio.sleep(0.05)


# --- faults during a session -------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["meter_offline", "meter_garbage", "meter_implausible"])
async def test_a_failing_meter_is_power_meter_failure_until_it_reads_again(
    site: SimSite, bench: Bench, agent: RunningAgent, fault: str
) -> None:
    await start_charging(site, bench)
    await bench("fault", 1, fault, True)
    await until_status(site, "Faulted", "PowerMeterFailure")
    await bench.until_relay(False)

    await bench("fault", 1, fault, False)
    await until_status(site, "Charging")
    await bench.until_relay(True)


@pytest.mark.parametrize("fault", ["pilot_e", "pilot_f", "diode_failure"])
async def test_a_pilot_error_is_ev_communication_error_with_the_contactor_open(
    site: SimSite, bench: Bench, agent: RunningAgent, fault: str
) -> None:
    await start_charging(site, bench)
    await bench("fault", 1, fault, True)
    await until_status(site, "Faulted", "EVCommunicationError")
    await bench.until_relay(False)

    await bench("fault", 1, fault, False)
    await until_status(site, "Charging")
    await bench.until_relay(True)


async def test_a_contactor_stuck_open_is_power_switch_failure_until_the_ev_leaves(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await start_charging(site, bench)
    await bench("fault", 1, "contactor_stuck_open", True)
    await until_status(site, "Faulted", "PowerSwitchFailure")
    await bench.until_relay(False)

    await bench("fault", 1, "contactor_stuck_open", False)
    await bench("unplug", 1)
    await until_status(site, "Available")
    (tx,) = site.csms.transactions.values()
    assert tx.reason == "EVDisconnected"


@pytest.fixture
def site_options() -> SiteOptions:
    return SiteOptions(sample_interval=1, lock=True, rcd=True)


async def test_an_rcd_trip_is_ground_failure_latched_until_the_ev_is_unplugged(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await start_charging(site, bench)
    await bench("fault", 1, "rcd_trip", True)
    await until_status(site, "Faulted", "GroundFailure")
    await bench.until_relay(False)

    await bench("fault", 1, "rcd_trip", False)
    await until_world_fault(bench, "rcd_trip", False)
    await asyncio.sleep(0.5)  # the reset reaches the agent; the fault must hold regardless
    assert last_status(site, 1) == ("Faulted", "GroundFailure")
    assert not await bench.relay_closed()

    await bench("unplug", 1)
    await until_status(site, "Available")


async def test_a_jammed_lock_is_connector_lock_failure_until_it_locks(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await until_status(site, "Available")
    await bench("fault", 1, "lock_failure", True)
    await bench("plug", 1)
    await bench("present_card", CARD)
    await site.csms.wait_for_action("StartTransaction")
    await bench("ev_state", 1, "C")
    await until_status(site, "Faulted", "ConnectorLockFailure")
    assert not await bench.relay_closed()  # never closed on an unlocked plug

    await bench("fault", 1, "lock_failure", False)
    await until_status(site, "Charging")
    await bench.until_relay(True)
    assert (await bench.connector(1))["lock"]["locked"] is True


# --- faults while idle -------------------------------------------------------------------------


async def test_a_lost_evse_board_is_an_internal_error(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await until_status(site, "Available")
    await bench("fault", 1, "evse_board_offline", True)
    await until_status(site, "Faulted", "InternalError")
    assert not await bench.relay_closed()
    assert ("Faulted", "EVCommunicationError") not in [
        (s, e) for cid, s, e in site.csms.statuses if cid == 1]

    await bench("fault", 1, "evse_board_offline", False)
    await until_status(site, "Available")


async def test_a_welded_contactor_blocks_new_sessions_until_it_is_released(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await until_status(site, "Available")
    await bench("fault", 1, "contactor_welded", True)
    await until_status(site, "Faulted", "PowerSwitchFailure")
    answer = await site.csms.call(call.RemoteStartTransaction(id_tag=CARD, connector_id=1))
    assert answer.status == "Rejected"
    await bench("plug", 1)
    await bench("present_card", CARD)
    await bench("ev_state", 1, "C")
    await asyncio.sleep(1.0)  # the card and the plug reach the agent (reader, pilot polling)
    assert not site.csms.calls("Authorize") and not site.csms.calls("StartTransaction")
    assert not await bench.relay_closed()

    await bench("fault", 1, "contactor_welded", False)
    await bench("unplug", 1)
    await until_status(site, "Available")


async def test_an_unplugged_reader_is_reader_failure_on_connector_0_only(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await until_status(site, "Available")
    await until_status(site, "Available", connector_id=0)
    await bench("fault", 0, "reader_unplugged", True)
    await until_status(site, "Available", "ReaderFailure", connector_id=0)
    assert last_status(site, 1) == ("Available", "NoError")

    await bench("fault", 0, "reader_unplugged", False)
    await until_status(site, "Available", connector_id=0)


# --- UnlockConnector ---------------------------------------------------------------------------


async def test_unlock_connector_with_a_lock_ends_the_transaction_and_opens_the_lock(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await start_charging(site, bench)
    assert (await bench.connector(1))["lock"]["locked"] is True

    answer = await site.csms.call(call.UnlockConnector(connector_id=1))
    assert answer.status == "Unlocked"
    await site.csms.wait_for(
        lambda: [tx.reason for tx in site.csms.transactions.values()] == ["UnlockCommand"])
    assert (await bench.connector(1))["lock"]["locked"] is False
    await bench.until_relay(False)


async def test_unlock_connector_with_a_jammed_lock_answers_unlock_failed(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await start_charging(site, bench)
    await bench("fault", 1, "lock_failure", True)

    answer = await site.csms.call(call.UnlockConnector(connector_id=1))
    assert answer.status == "UnlockFailed"
    await until_status(site, "Faulted", "ConnectorLockFailure")
    await bench.until_relay(False)


class TestFixedCable:
    @pytest.fixture
    def site_options(self) -> SiteOptions:
        return SiteOptions(sample_interval=1)

    async def test_unlock_connector_is_not_supported(
        self, site: SimSite, bench: Bench, agent: RunningAgent
    ) -> None:
        await start_charging(site, bench)
        answer = await site.csms.call(call.UnlockConnector(connector_id=1))
        assert answer.status == "NotSupported"
        assert await bench.relay_closed()
        assert not site.csms.calls("StopTransaction")
