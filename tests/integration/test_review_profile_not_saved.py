"""Review: a charging profile the store could not keep must not be answered Accepted (DESIGN.md
Durability: "nothing lost"; the local list answers Failed in the same case, TC_043_3). OCPP
1.6 SetChargingProfile.conf has Accepted, Rejected and NotSupported: Rejected fits."""

from __future__ import annotations

import pytest

from evsim.site import SimSite
from tests.integration.conformance.test_smart_charging import install, profile
from tests.integration.conftest import RunningAgent

from .conformance.helpers import booted
from .test_store_failure import fill_disk


@pytest.mark.xfail(strict=True, reason="review finding: runtime.command only checks "
                   "SaveLocalList in _unsaved; SaveChargingProfiles failures answer Accepted")
async def test_a_profile_the_store_refused_is_not_accepted(
    site: SimSite, agent: RunningAgent
) -> None:
    await booted(site)
    disk = fill_disk(agent)
    answer = await install(site, 0, profile(1, "TxDefaultProfile", [(0, 10)]))
    assert disk.refused, "the store was not asked to keep the profile"
    assert answer != "Accepted", "Accepted, but the profile is gone after a restart"
