"""A state store that fails while the agent runs (disk full, card worn out) is a fault, not a
crash: every connector reports Faulted with InternalError, the contactor opens, no new session
starts, the agent keeps talking to the CSMS, and the fault clears once a write succeeds again.

The failure is injected at the sqlite3 boundary: the store's connection refuses every write
the way SQLite refuses one on a full disk (``SQLITE_FULL``).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from ocpp.v16 import call

from agent import local_limit
from agent.core.types import LocalLimits
from evsim.site import SimSite
from tests.integration.conftest import Bench, RunningAgent

from .conformance.helpers import VALID, VALID_2, booted, charging, present_again, status, until

WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


class FullDisk:
    """The store's sqlite3 connection; while ``full``, every write fails as on a full disk."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self.full = False
        self.refused = 0

    def execute(self, sql: str, args: Any = ()) -> sqlite3.Cursor:
        if self.full and sql.lstrip().upper().startswith(WRITES):
            self.refused += 1
            raise sqlite3.OperationalError("database or disk is full")
        return self._db.execute(sql, args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def fill_disk(agent: RunningAgent) -> FullDisk:
    store = agent.store
    assert store is not None
    disk = FullDisk(store._db)
    store._db = disk  # type: ignore[assignment]
    disk.full = True
    return disk


def error_codes(site: SimSite, connector_id: int = 1) -> list[tuple[str, str]]:
    return [(s, e) for cid, s, e in site.csms.statuses if cid == connector_id]


async def test_a_store_failing_while_charging_faults_the_connector_and_opens_the_contactor(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    transaction_id = await charging(site, bench)
    await site.csms.wait_for_action("MeterValues")

    disk = fill_disk(agent)  # the next meter sample cannot be journaled
    await site.csms.wait_for(lambda: ("Faulted", "InternalError") in error_codes(site))
    await bench.until_relay(False)
    assert disk.refused > 0
    result = await site.csms.call(call.GetConfiguration(key=["HeartbeatInterval"]))
    assert result.configuration_key, "the event loop lives on"
    tx = site.csms.transactions[transaction_id]
    sampled = len(tx.meter_values)
    await site.csms.wait_for(lambda: len(tx.meter_values) > sampled)  # kept in memory, sent

    authorizes = len(site.csms.calls("Authorize"))
    await present_again(bench, VALID_2)  # a faulted connector takes no new session
    disk.full = False  # space again: the next write succeeds and clears the fault
    await status(site, "Charging")
    await bench.until_relay(True)
    assert len(site.csms.calls("Authorize")) == authorizes
    assert len(site.csms.calls("StartTransaction")) == 1
    await bench("unplug", 1)
    await site.csms.wait_for(lambda: tx.stop_count)
    assert tx.reason == "EVDisconnected"


async def test_a_store_failing_while_idle_lets_no_session_charge(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    disk = fill_disk(agent)
    await bench("plug", 1)
    await bench("ev_state", 1, "C")
    await status(site, "Preparing")
    await bench("present_card", VALID)
    await site.csms.wait_for(lambda: ("Faulted", "InternalError") in error_codes(site))
    await until(lambda: disk.refused > 0)
    assert not await bench.relay_closed()
    await present_again(bench, VALID_2)
    assert not await bench.relay_closed(), "no energy without a journal"
    assert site.csms.last_status(1) == "Faulted"
    # The cache write of the first Authorize.conf failed first: the transaction it would have
    # begun was abandoned, and the faulted connector asked for no other.
    assert site.csms.calls("StartTransaction") == []
    assert len(site.csms.calls("Authorize")) == 1


async def test_a_charging_profile_the_store_cannot_keep_is_rejected(
    site: SimSite, agent: RunningAgent
) -> None:
    await booted(site)
    schedule = {"charging_rate_unit": "A",
                "charging_schedule_period": [{"start_period": 0, "limit": 8}]}
    raw = {"charging_profile_id": 7, "stack_level": 0,
           "charging_profile_purpose": "TxDefaultProfile", "charging_profile_kind": "Relative",
           "charging_schedule": schedule}
    disk = fill_disk(agent)
    refused = await site.csms.call(call.SetChargingProfile(connector_id=1,
                                                           cs_charging_profiles=raw))
    assert refused.status == "Rejected" and disk.refused > 0
    assert agent.runtime.station.smart_charging.profiles == ()  # taken back
    disk.full = False
    accepted = await site.csms.call(call.SetChargingProfile(connector_id=1,
                                                            cs_charging_profiles=raw))
    assert accepted.status == "Accepted"
    assert [p.profile_id for p in agent.runtime.station.smart_charging.profiles] == [7]


async def test_a_local_limit_the_store_cannot_keep_applies_and_is_written_when_repeated(
    site: SimSite, agent: RunningAgent
) -> None:
    """What the API's PUT runs (agent/local_limit.py): the answer shows the limit in force,
    the charger faults as for any refused write, and the same limit sent again once the
    store takes writes is written (and clears the fault)."""
    await booted(site)
    store = agent.store
    assert store is not None
    disk = fill_disk(agent)
    view = local_limit.set_local_limit(agent.runtime, 1, 10, "hems")
    assert (view["limit_amps"], view["limit_source"]) == (10, "local:hems")
    assert disk.refused == 1
    await site.csms.wait_for(lambda: ("Faulted", "InternalError") in error_codes(site))
    disk.full = False
    local_limit.set_local_limit(agent.runtime, 1, 10, "hems")  # a home energy manager repeats
    assert store.local_limits() == {1: LocalLimits((10.0, "hems"))}
    await status(site, "Available")
