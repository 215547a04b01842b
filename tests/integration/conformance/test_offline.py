"""OCTT offline and power failure cases: TC_036, TC_037_1..3, TC_038, TC_039 (the CSMS goes
away while the charger works on), TC_032_1, TC_032_2 and TC_034 (the charger loses power).

A connection loss is the CSMS going down (``csms.go_down``), so the agent sees its WebSocket
close. A power cut is the agent object stopped and a new one started on the same site and state
directory: with a backup supply the agent stops in order (``Agent.stop(PowerLoss)``); without
one it dies (:func:`die`: nothing is stopped, drained or sent). The world (EV, meter) and the
CSMS outlive it.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import datetime

import pytest
from ocpp.v16 import call

from agent.core.types import StopReason
from evsim.csms import Frame
from evsim.site import SimSite
from tests.integration.conftest import Bench, RunningAgent

from .helpers import (
    INVALID,
    VALID,
    booted,
    change,
    charging,
    energy_stopped,
    first_sends,
    offline,
    online,
    present_again,
    sample_times,
    status,
    statuses_since,
    until,
)

OUTAGE_SAMPLES = 3  # TC_036: "wait for at least 3 samples"


# --- power ---------------------------------------------------------------------------------


async def die(agent: RunningAgent) -> None:
    """A power cut without backup, in-process: like kill -9, no transaction is stopped and
    nothing is drained or sent. The devices are released (a dead Pi drives no pin, so the
    contactor drops out) and the store keeps what it had committed."""
    await agent.halt()


class Power:
    """The charger's supply: ``on()`` starts an agent on the site, ``cut()`` takes it down."""

    def __init__(self, site: SimSite) -> None:
        self.site = site
        self.agent: RunningAgent | None = None

    async def on(self) -> RunningAgent:
        assert self.agent is None, "already on"
        self.agent = RunningAgent(self.site)
        await self.agent.start()
        return self.agent

    async def cut(self, backup: bool) -> None:
        """With a backup supply the agent stops in order, transactions end with PowerLoss."""
        agent, self.agent = self.agent, None
        assert agent is not None, "not on"
        if backup:
            await agent.stop(StopReason.POWER_LOSS)
        else:
            await die(agent)


@pytest.fixture
async def power(site: SimSite) -> AsyncIterator[Power]:
    supply = Power(site)
    yield supply
    if supply.agent is not None:
        await supply.agent.stop()
    assert site.csms.violations == [], "the CSMS saw frames that break the OCPP 1.6 schemas"


# --- helpers -------------------------------------------------------------------------------


def index_of(site: SimSite, frame: Frame) -> int:
    return next(i for i, f in enumerate(site.csms.frames) if f is frame)


async def plug_and_present(bench: Bench, tag: str) -> None:
    await bench("plug", 1)
    await bench("ev_state", 1, "C")
    await bench("present_card", tag)


async def cache_tag(site: SimSite, bench: Bench, tag: str) -> None:
    """Memory state IdTagCached, short form: the CSMS's Accepted for ``tag`` is remembered."""
    assert await change(site, "ConnectionTimeOut", "1") == "Accepted"
    await bench("present_card", tag)
    await site.csms.wait_for_action("Authorize")
    await status(site, "Preparing")
    await status(site, "Available")  # ConnectionTimeOut: no plug-in followed


# --- offline behaviour ---------------------------------------------------------------------


async def test_tc_036_meter_values_queued_offline_go_first_in_order_and_evenly_spaced(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    interval = 1
    assert await change(site, "MeterValueSampleInterval", str(interval)) == "Accepted"
    transaction_id = await charging(site, bench)
    await site.csms.wait_for_action("MeterValues")

    await offline(site, agent)
    went_down = datetime.now().astimezone()
    unsent = agent.runtime.outbox.backlog  # a call cut off by the outage goes again
    await until(lambda: agent.runtime.outbox.backlog >= unsent + OUTAGE_SAMPLES, within=10,
                what=f"{OUTAGE_SAMPLES} samples journaled offline")
    assert await bench.relay_closed(), "charging goes on while the CSMS is away"
    came_back = datetime.now().astimezone()
    await online(site, agent)
    queued = len(first_sends(site, "MeterValues")) + agent.runtime.outbox.backlog
    await site.csms.wait_for(lambda: len(first_sends(site, "MeterValues")) >= queued + 2)

    sends = first_sends(site, "MeterValues")
    assert {f.payload["transactionId"] for f in sends} == {transaction_id}
    times = [t for f in sends for t in sample_times(f)]
    assert times == sorted(times) and len(set(times)) == len(times), \
        "queued values go out in chronological order, before any new one"
    assert sum(went_down < t < came_back for t in times) >= OUTAGE_SAMPLES
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert all(0.5 * interval <= gap <= 2.5 * interval for gap in gaps), \
        f"timestamps spaced by the interval, outage or not: {gaps}"


async def test_tc_037_1_offline_start_with_a_cached_valid_id(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    for key in ("LocalAuthorizeOffline", "AuthorizationCacheEnabled"):
        assert await change(site, key, "true") == "Accepted"
    await cache_tag(site, bench, VALID)

    await offline(site, agent)
    await plug_and_present(bench, VALID)
    await bench.until_relay(True)  # the cache authorized it: charging, offline
    mark = await online(site, agent)

    start = await site.csms.wait_for_action("StartTransaction")
    assert index_of(site, start) >= mark and start.payload["idTag"] == VALID
    await status(site, "Charging")
    assert "Charging" in statuses_since(site, mark)
    (tx,) = site.csms.transactions.values()
    assert tx.meter_stop is None and len(site.csms.calls("Authorize")) == 1


async def offline_start_with_an_unknown_id(site: SimSite, bench: Bench,
                                           agent: RunningAgent, stop_on_invalid: bool) -> int:
    """TC_037_2/3 up to the reconnect: returns the index of the first frame after it."""
    await booted(site)
    assert await change(site, "AllowOfflineTxForUnknownId", "true") == "Accepted"
    assert await change(site, "StopTransactionOnInvalidId",
                        "true" if stop_on_invalid else "false") == "Accepted"
    site.csms.authorizations[INVALID] = {"status": "Invalid"}
    await offline(site, agent)
    await plug_and_present(bench, INVALID)
    await bench.until_relay(True)  # unknown offline: allowed
    mark = await online(site, agent)
    start = await site.csms.wait_for_action("StartTransaction")
    assert start.payload["idTag"] == INVALID
    return mark


async def test_tc_037_2_offline_start_invalid_id_suspends_without_stopping(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    mark = await offline_start_with_an_unknown_id(site, bench, agent, stop_on_invalid=False)
    await status(site, "SuspendedEVSE")
    after = statuses_since(site, mark)
    assert after.index("Charging") < after.index("SuspendedEVSE")
    await energy_stopped(bench)
    (tx,) = site.csms.transactions.values()
    assert tx.stop_count == 0, "the transaction is kept"

    await present_again(bench, INVALID)  # the driver ends it (EVerest's follow-up)
    await site.csms.wait_for(lambda: tx.stop_count)
    assert tx.reason == "Local"


async def test_tc_037_3_offline_start_invalid_id_is_stopped_deauthorized(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    mark = await offline_start_with_an_unknown_id(site, bench, agent, stop_on_invalid=True)
    (tx,) = site.csms.transactions.values()
    await site.csms.wait_for(lambda: tx.stop_count)  # the CSMS has booked the stop
    (stop,) = site.csms.calls("StopTransaction")
    await status(site, "Finishing")
    assert (tx.reason, tx.stop_count) == ("DeAuthorized", 1)
    assert stop.payload["transactionId"] == tx.transaction_id
    after = statuses_since(site, mark)
    assert after.index("Charging") < after.index("Finishing")
    assert not await bench.relay_closed()


async def test_tc_038_offline_stop_is_delivered_after_reconnect(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    transaction_id = await charging(site, bench)
    await offline(site, agent)
    await present_again(bench, VALID)  # the driver stops while the CSMS is away
    await bench.until_relay(False)
    mark = await online(site, agent)

    await site.csms.wait_for(lambda: site.csms.transactions[transaction_id].stop_count)
    (stop,) = site.csms.calls("StopTransaction")
    assert index_of(site, stop) >= mark
    assert stop.payload.get("reason", "Local") == "Local"
    await status(site, "Finishing")


async def test_tc_039_offline_transaction_start_then_stop_after_reconnect(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    entry = {"idTag": VALID, "idTagInfo": {"status": "Accepted"}}
    result = await site.csms.call(call.SendLocalList(
        list_version=1, update_type="Full", local_authorization_list=[entry]))
    assert result.status == "Accepted"  # memory state IdTagLocalAuthList

    await offline(site, agent)
    await plug_and_present(bench, VALID)
    await bench.until_relay(True)
    await present_again(bench, VALID)
    await bench.until_relay(False)
    await bench("unplug", 1)
    await until(lambda: agent.runtime.station.status(1).value == "Available",
                what="the connector free again")
    mark = await online(site, agent)

    await site.csms.wait_for(lambda: any(t.stop_count for t in site.csms.transactions.values()))
    (stop,) = site.csms.calls("StopTransaction")
    (start,) = site.csms.calls("StartTransaction")
    assert mark <= index_of(site, start) < index_of(site, stop), "Start first, then Stop"
    (tx,) = site.csms.transactions.values()
    assert stop.payload["transactionId"] == tx.transaction_id
    assert (tx.reason, tx.stop_count, tx.id_tag) == ("Local", 1, VALID)
    assert tx.meter_stop is not None and tx.meter_stop >= tx.meter_start
    await status(site, "Available")


# --- power failure -------------------------------------------------------------------------


async def test_tc_032_1_power_failure_with_backup_stops_before_going_down(
    site: SimSite, bench: Bench, power: Power
) -> None:
    await power.on()
    await booted(site)
    transaction_id = await charging(site, bench)

    await power.cut(backup=True)
    tx = site.csms.transactions[transaction_id]
    assert (tx.reason, tx.stop_count) == ("PowerLoss", 1)
    assert site.csms.last_status(1) == "Finishing", "reported before going down"
    assert not await bench.relay_closed()

    mark = len(site.csms.frames)
    await power.on()
    await site.csms.wait_for_action("BootNotification", count=2)
    await site.csms.wait_for(lambda: statuses_since(site, mark))
    assert statuses_since(site, mark)[-1] in ("Finishing", "Preparing")  # still plugged
    assert tx.stop_count == 1 and len(site.csms.calls("StartTransaction")) == 1


async def test_tc_032_2_power_failure_without_backup_stops_after_boot(
    site: SimSite, bench: Bench, power: Power
) -> None:
    await power.on()
    await booted(site)
    transaction_id = await charging(site, bench)
    await site.csms.wait_for_action("MeterValues")

    await power.cut(backup=False)
    await bench.until_relay(False)  # a dead charger drives nothing
    tx = site.csms.transactions[transaction_id]
    assert tx.stop_count == 0

    mark = len(site.csms.frames)
    await power.on()
    await site.csms.wait_for_action("BootNotification", count=2)
    await site.csms.wait_for(lambda: tx.stop_count)
    # The charger itself ended the transaction because of the power loss (recovery policy
    # "end"), so charging does not resume and step 2 (the driver's stop) does not apply.
    assert (tx.reason, tx.stop_count) == ("PowerLoss", 1)
    assert tx.meter_stop is not None and tx.meter_stop >= tx.meter_start
    await site.csms.wait_for(lambda: statuses_since(site, mark))
    after = statuses_since(site, mark)
    assert set(after) <= {"Preparing", "Finishing", "Charging", "Unavailable", "Available"}
    await status(site, "Preparing")  # the EV is still plugged in
    assert len(site.csms.calls("StartTransaction")) == 1


async def test_tc_034_unavailable_is_kept_across_a_power_failure(
    site: SimSite, power: Power
) -> None:
    await power.on()
    await booted(site)
    result = await site.csms.call(call.ChangeAvailability(connector_id=0, type="Inoperative"))
    assert result.status == "Accepted"
    await status(site, "Unavailable", 0)
    await status(site, "Unavailable", 1)

    await power.cut(backup=False)
    mark = len(site.csms.frames)
    await power.on()
    await site.csms.wait_for_action("BootNotification", count=2)
    await site.csms.wait_for(lambda: statuses_since(site, mark, 0) and statuses_since(site, mark))
    assert statuses_since(site, mark, 0) == ["Unavailable"]
    assert statuses_since(site, mark, 1) == ["Unavailable"]

    result = await site.csms.call(call.ChangeAvailability(connector_id=0, type="Operative"))
    assert result.status == "Accepted"
    await booted(site)
