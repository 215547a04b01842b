"""Bad frames from the CSMS get the OCPP-J 1.6 CALLERROR and never disturb charging."""

from __future__ import annotations

import json

import pytest
from ocpp.v16 import call

from evsim.site import SimSite
from tests.integration.conftest import Bench, RunningAgent

from .helpers import booted, charging

BAD_FRAMES = [
    ("not json", "{oops", "-1", "FormationViolation"),
    ("not an array", '{"a": 1}', "-1", "ProtocolError"),
    ("unknown message type", '[9, "m1", "Reset", {}]', "m1", "ProtocolError"),
    ("call without payload", '[2, "m2", "Reset"]', "m2", "ProtocolError"),
    ("unknown action", '[2, "m3", "Frobnicate", {}]', "m3", "NotImplemented"),
    # Every CSMS-initiated 1.6 action is offered now (GetCompositeSchedule was the last, with
    # Smart Charging): a charger-initiated one sent to the charger stands in.
    ("1.6 action we do not offer", '[2, "m4", "Heartbeat", {}]', "m4", "NotSupported"),
    ("missing field", '[2, "m5", "RemoteStopTransaction", {}]', "m5",
     "OccurenceConstraintViolation"),
    ("wrong type", '[2, "m6", "RemoteStopTransaction", {"transactionId": "x"}]', "m6",
     "TypeConstraintViolation"),
    ("not in the enumeration", '[2, "m7", "Reset", {"type": "Sometimes"}]', "m7",
     "PropertyConstraintViolation"),
    ("unknown field", '[2, "m8", "ClearCache", {"please": true}]', "m8", "FormationViolation"),
    ("local list: bad update type", '[2, "m10", "SendLocalList", {"listVersion": 2, '
     '"updateType": "Sometimes"}]', "m10", "PropertyConstraintViolation"),
    ("local list: no version", '[2, "m11", "SendLocalList", {"updateType": "Full"}]', "m11",
     "OccurenceConstraintViolation"),
    ("local list: bad entry", '[2, "m12", "SendLocalList", {"listVersion": 2, "updateType": '
     '"Full", "localAuthorizationList": [{"idTag": "A", "idTagInfo": {"status": "Maybe"}}]}]',
     "m12", "PropertyConstraintViolation"),
    ("oversized", json.dumps([2, "m9", "DataTransfer", {"vendorId": "x", "data": "y" * 70000}]),
     "m9", "FormationViolation"),
]


@pytest.mark.parametrize(("name", "frame", "unique_id", "code"), BAD_FRAMES,
                         ids=[b[0] for b in BAD_FRAMES])
async def test_bad_frame_gets_the_right_callerror(
    site: SimSite, agent: RunningAgent, name: str, frame: str, unique_id: str, code: str
) -> None:
    await booted(site)
    await site.csms.send_raw(frame)
    (error,) = await site.csms.wait_for(site.csms.call_errors)
    assert (error[1], error[2]) == (unique_id, code), name


async def test_a_barrage_of_garbage_leaves_a_charging_session_untouched(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    await charging(site, bench)
    for _, frame, _, _ in BAD_FRAMES:
        await site.csms.send_raw(frame)
    await site.csms.wait_for(lambda: len(site.csms.call_errors()) == len(BAD_FRAMES))
    assert site.csms.last_status(1) == "Charging"
    assert await bench.relay_closed()
    assert (await site.csms.call(call.GetLocalListVersion())).list_version == 0  # untouched
    await bench("unplug", 1)
    stop = await site.csms.wait_for_action("StopTransaction")
    assert stop.payload["reason"] == "EVDisconnected"
