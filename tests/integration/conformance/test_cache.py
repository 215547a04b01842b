"""OCTT authorization cache cases: TC_007 (start with a cached id), TC_061 (ClearCache)."""

from __future__ import annotations

from ocpp.v16 import call

from evsim.site import SimSite
from tests.integration.conftest import Bench, RunningAgent

from .helpers import VALID, booted, change, present_again, status


def statuses(site: SimSite, connector_id: int = 1) -> list[str]:
    return [s for cid, s, _ in site.csms.statuses if cid == connector_id]


async def test_tc_007_remote_start_with_a_cached_id_needs_no_authorize(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    for key in ("AuthorizationCacheEnabled", "AuthorizeRemoteTxRequests", "LocalPreAuthorize"):
        assert await change(site, key, "true") == "Accepted"
    assert await change(site, "ConnectionTimeOut", "1") == "Accepted"
    await bench("present_card", VALID)  # IdTagCached: the CSMS's Accepted is remembered
    await site.csms.wait_for_action("Authorize")
    await site.csms.wait_for(lambda: ("Preparing" in statuses(site)), within=5)
    await status(site, "Available", within=5)
    authorizes = len(site.csms.calls("Authorize"))
    await bench("plug", 1)
    await status(site, "Preparing")
    result = await site.csms.call(call.RemoteStartTransaction(id_tag=VALID, connector_id=1))
    assert result.status == "Accepted"
    await site.csms.wait_for_action("StartTransaction")
    assert len(site.csms.calls("Authorize")) == authorizes, "started from the cache"


async def test_tc_061_clear_cache_forces_a_new_authorize(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    assert await change(site, "LocalPreAuthorize", "true") == "Accepted"
    assert await change(site, "ConnectionTimeOut", "1") == "Accepted"
    await bench("present_card", VALID)
    await site.csms.wait_for_action("Authorize")
    await site.csms.wait_for(lambda: statuses(site).count("Preparing") == 1, within=5)
    await status(site, "Available", within=5)
    await present_again(bench, VALID)
    await site.csms.wait_for(lambda: statuses(site).count("Preparing") == 2, within=5)
    assert len(site.csms.calls("Authorize")) == 1, "LocalPreAuthorize: the cache answered"
    await site.csms.wait_for(lambda: statuses(site)[-1] == "Available", within=5)
    result = await site.csms.call(call.ClearCache())
    assert result.status == "Accepted"
    await present_again(bench, VALID)
    await site.csms.wait_for_action("Authorize", count=2)
