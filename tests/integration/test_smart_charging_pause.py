"""In the simulator: a TxDefaultProfile of 0 A pauses a charging EV without ending its
transaction (SuspendedEVSE, the contactor opens after the IEC 61851-1 grace of 6 s since the
simulated EV stays in C), and 16 A resumes it in the same transaction; the simulated EV's draw
follows the offer on the way (issue 14, "Done when")."""

from __future__ import annotations

import pytest

from evsim.site import SimSite
from tests.integration.conformance.helpers import booted, charging, status
from tests.integration.conformance.test_smart_charging import install, profile
from tests.integration.conftest import Bench, RunningAgent


def drawing(amps: float) -> object:
    return lambda s: all(abs(a - amps) < 0.5 for a in s["meter"]["current_a"])


async def test_a_zero_amp_profile_pauses_and_sixteen_resumes_one_transaction(
    site: SimSite, bench: Bench, agent: RunningAgent, caplog: pytest.LogCaptureFixture
) -> None:
    await booted(site)
    transaction_id = await charging(site, bench)
    await bench.until_connector(drawing(16), within=10, what="drawing 16 A")  # type: ignore[arg-type]

    assert await install(site, 0, profile(1, "TxDefaultProfile", [(0, 10)])) == "Accepted"
    await bench.until_connector(drawing(10), within=15, what="drawing 10 A")  # type: ignore[arg-type]

    assert await install(site, 0, profile(1, "TxDefaultProfile", [(0, 0)])) == "Accepted"
    await status(site, "SuspendedEVSE")
    state = await bench.until_connector(lambda s: s["offered_current_a"] == 0, within=5)
    assert state["ev"]["state"] == "C"  # the EV stays in C: the 6 s grace opens the contactor
    await bench.until_relay(False, within=15)
    assert "opening the contactor under load" in caplog.text  # the 6 s grace opened it
    assert site.csms.last_status(1) == "SuspendedEVSE"

    assert await install(site, 0, profile(1, "TxDefaultProfile", [(0, 16)])) == "Accepted"
    await status(site, "Charging", within=15)
    await bench.until_connector(drawing(16), within=15, what="drawing 16 A again")  # type: ignore[arg-type]
    assert not site.csms.calls("StopTransaction")
    assert len(site.csms.calls("StartTransaction")) == 1
    assert site.csms.transactions[transaction_id].meter_stop is None


async def test_an_ev_that_stops_on_the_pause_opens_the_contactor_at_once(
    site: SimSite, bench: Bench, agent: RunningAgent, caplog: pytest.LogCaptureFixture
) -> None:
    await booted(site)
    transaction_id = await charging(site, bench)
    assert await install(site, 0, profile(1, "TxDefaultProfile", [(0, 0)])) == "Accepted"
    await status(site, "SuspendedEVSE")
    await bench("ev_state", 1, "B")  # the EV stops: the contactor opens on that, not the 6 s
    await bench.until_relay(False, within=15)
    assert "opening the contactor under load" not in caplog.text
    assert site.csms.last_status(1) == "SuspendedEVSE"
    assert await install(site, 0, profile(1, "TxDefaultProfile", [(0, 16)])) == "Accepted"
    await bench("ev_state", 1, "C")
    await status(site, "Charging", within=15)
    assert site.csms.transactions[transaction_id].meter_stop is None
    assert len(site.csms.calls("StartTransaction")) == 1
