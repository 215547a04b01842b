"""Free vend: no reader, a configured idTag, still normal transactions at the CSMS."""

from __future__ import annotations

import pytest

from evsim.site import SimSite, SiteOptions
from tests.integration.conformance.helpers import booted, status

from .conftest import Bench, RunningAgent

FREE = "FREEVEND"


@pytest.fixture
def site_options() -> SiteOptions:
    return SiteOptions(sample_interval=1, free_vend_id_tag=FREE)


async def test_plugging_in_starts_a_transaction_with_the_configured_id_tag(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    await bench("plug", 1)
    await bench("ev_state", 1, "C")
    start = await site.csms.wait_for_action("StartTransaction")
    assert start.payload["idTag"] == FREE
    assert not site.csms.calls("Authorize")
    await status(site, "Charging")
    await bench("unplug", 1)
    stop = await site.csms.wait_for_action("StopTransaction")
    assert stop.payload["reason"] == "EVDisconnected"
