"""OCTT boot cases: TC_001_CS (Rejected), TC_002_CS (Pending)."""

from __future__ import annotations

from typing import Any

from ocpp.v16 import call

from evsim.site import SimSite

from .helpers import booted


async def test_tc_001_cold_boot_rejected_waits_the_interval_and_sends_nothing_else(
    site: SimSite, start_agent: Any
) -> None:
    csms = site.csms
    csms.boot_answers = [("Rejected", 2)]
    csms.heartbeat_interval = 1
    await start_agent()
    second = await csms.wait_for_action("BootNotification", count=2)
    first = csms.calls("BootNotification")[0]
    assert second.at - first.at >= 1.9, "the second boot must wait for the Rejected interval"
    between = [f.action for f in csms.calls() if first.at <= f.at < second.at]
    assert between == ["BootNotification"], "nothing but boot while Rejected"
    await booted(site)
    assert [s[:2] for s in csms.statuses] == [(0, "Available"), (1, "Available")]
    beat_2 = await csms.wait_for_action("Heartbeat", count=2, within=5)
    beat_1 = csms.calls("Heartbeat")[0]
    assert beat_2.at - beat_1.at >= 0.9, "heartbeats at the interval from the Accepted answer"


async def test_tc_002_pending_answers_configuration_calls_then_boots_again(
    site: SimSite, start_agent: Any
) -> None:
    csms = site.csms
    csms.boot_answers = [("Pending", 3)]
    await start_agent()
    await csms.wait_for_action("BootNotification")
    everything = await csms.call(call.GetConfiguration())
    assert {k["key"] for k in everything.configuration_key} >= {"MeterValueSampleInterval"}
    changed = await csms.call(call.ChangeConfiguration("MeterValueSampleInterval", "7"))
    assert changed.status == "Accepted"
    assert not csms.statuses, "no StatusNotification while Pending"
    await csms.wait_for_action("BootNotification", count=2, within=6)
    await booted(site)
    value = await csms.call(call.GetConfiguration(key=["MeterValueSampleInterval"]))
    assert value.configuration_key[0]["value"] == "7"
