"""The frame check on calls whose schemas the ocpp library loads with decimals: a limit or a
minChargingRate with a fraction is checked, not a TypeError that drops the connection."""

from __future__ import annotations

import json

import pytest

from agent.csms.frames import FrameError, check
from agent.csms.v16_frames import V16


def set_profile(limit: object, rate: object) -> str:
    schedule = {"chargingRateUnit": "A", "minChargingRate": rate,
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}]}
    profile = {"chargingProfileId": 1, "stackLevel": 0, "chargingProfileKind": "Relative",
               "chargingProfilePurpose": "TxDefaultProfile", "chargingSchedule": schedule}
    return json.dumps([2, "m1", "SetChargingProfile",
                       {"connectorId": 1, "csChargingProfiles": profile}])


def test_fractions_pass_and_a_second_decimal_place_is_refused() -> None:
    check(set_profile(7.5, 6.1), V16)
    remote = {"idTag": "A", "chargingProfile": json.loads(set_profile(10.5, 6))[3][
        "csChargingProfiles"]}
    check(json.dumps([2, "m2", "RemoteStartTransaction", remote]), V16)
    with pytest.raises(FrameError):
        check(set_profile(7.55, 6), V16)  # 1.6: at most one digit after the point
