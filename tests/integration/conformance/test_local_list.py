"""OCTT local authorization list cases: TC_042_1, TC_042_2, TC_043, TC_043_2, TC_043_3, TC_008."""

from __future__ import annotations

from ocpp.v16 import call

from evsim.site import SimSite
from tests.integration.conftest import Bench, RunningAgent

from .helpers import VALID, VALID_2, booted, change, status


def entry(tag: str, status_: str | None = "Accepted") -> dict[str, object]:
    return {"idTag": tag, "idTagInfo": {"status": status_}} if status_ else {"idTag": tag}


async def version(site: SimSite) -> int:
    return int((await site.csms.call(call.GetLocalListVersion())).list_version)


async def test_tc_042_1_disabled_list_reports_version_minus_one(
    site: SimSite, agent: RunningAgent
) -> None:
    await booted(site)
    assert await change(site, "LocalAuthListEnabled", "false") == "Accepted"
    assert await version(site) == -1


async def test_tc_042_2_empty_list_reports_version_zero(
    site: SimSite, agent: RunningAgent
) -> None:
    await booted(site)
    assert await version(site) == 0


async def test_tc_043_send_full_then_differential_and_version_mismatch(
    site: SimSite, agent: RunningAgent
) -> None:
    await booted(site)
    full = call.SendLocalList(list_version=1, update_type="Full",
                              local_authorization_list=[entry(VALID), entry(VALID_2)])
    assert (await site.csms.call(full)).status == "Accepted"
    assert await version(site) == 1
    diff = call.SendLocalList(list_version=2, update_type="Differential",
                              local_authorization_list=[entry(VALID_2, None)])
    assert (await site.csms.call(diff)).status == "Accepted"
    assert await version(site) == 2
    stale = call.SendLocalList(list_version=2, update_type="Differential",
                               local_authorization_list=[entry("0F0F0F0F")])
    assert (await site.csms.call(stale)).status == "VersionMismatch"  # TC_043_2
    assert await version(site) == 2


async def test_tc_008_a_listed_id_starts_without_authorize(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    assert await change(site, "LocalPreAuthorize", "true") == "Accepted"
    full = call.SendLocalList(list_version=1, update_type="Full",
                              local_authorization_list=[entry(VALID)])
    assert (await site.csms.call(full)).status == "Accepted"
    await bench("plug", 1)
    await status(site, "Preparing")
    await bench("present_card", VALID)
    start = await site.csms.wait_for_action("StartTransaction")
    assert start.payload["idTag"] == VALID
    assert not site.csms.calls("Authorize")


async def test_tc_043_3_a_list_that_cannot_be_stored_is_failed_and_not_used(
    site: SimSite, agent: RunningAgent
) -> None:
    await booted(site)
    full = call.SendLocalList(list_version=1, update_type="Full",
                              local_authorization_list=[entry(VALID)])
    assert (await site.csms.call(full)).status == "Accepted"
    # The state directory's disk turns read-only under the running agent.
    assert agent.store is not None
    agent.store._db.execute("PRAGMA query_only = ON")
    try:
        full_2 = call.SendLocalList(list_version=2, update_type="Full",
                                    local_authorization_list=[entry(VALID_2)])
        assert (await site.csms.call(full_2)).status == "Failed"
        assert await version(site) == 1  # the list it kept is the one it had
    finally:
        agent.store._db.execute("PRAGMA query_only = OFF")
