"""The strict OCPP 2.0.1 CSMS: it answers good frames, refuses bad ones with the 2.0.1
CALLERROR, checks frames both ways and keeps the books of TransactionEvents."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from evsim.csms201 import Csms201, frame_problem

NOW = "2026-12-04T12:00:00.000Z"
BOOT = {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}}


class Charger:
    """A bare 2.0.1 charger: raw frames over a WebSocket."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._ids = 0

    async def send(self, frame: Any) -> list[Any]:
        await self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))
        answer: list[Any] = json.loads(await asyncio.wait_for(self.ws.recv(), 5))
        return answer

    async def call(self, action: str, payload: dict[str, Any]) -> list[Any]:
        self._ids += 1
        return await self.send([2, str(self._ids), action, payload])


@pytest.fixture
async def csms() -> AsyncIterator[Csms201]:
    async with Csms201() as server:
        yield server


@pytest.fixture
async def charger(csms: Csms201) -> AsyncIterator[Charger]:
    async with connect(f"{csms.url}/CP1", subprotocols=["ocpp2.0.1"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "ocpp2.0.1"
        yield Charger(ws)


def event(kind: str, seq_no: int, trigger: str, **extra: Any) -> dict[str, Any]:
    return {"eventType": kind, "timestamp": NOW, "triggerReason": trigger, "seqNo": seq_no,
            "transactionInfo": {"transactionId": "CP1-1", **extra.pop("info", {})}, **extra}


def energy(wh: int, context: str) -> list[dict[str, Any]]:
    return [{"timestamp": NOW, "sampledValue": [
        {"value": wh, "context": context, "measurand": "Energy.Active.Import.Register",
         "unitOfMeasure": {"unit": "Wh"}}]}]


async def test_a_good_boot_is_accepted_and_both_frames_are_valid(
    csms: Csms201, charger: Charger
) -> None:
    answer = await charger.call("BootNotification", BOOT)
    assert answer[0] == 3 and answer[2]["status"] == "Accepted"
    assert csms.violations == [] and csms.sent_violations == []
    assert [f.direction for f in csms.frames] == ["in", "out"]
    assert csms.frames[1].action == "BootNotification"


@pytest.mark.parametrize(("payload", "code"), [
    ({"reason": "PowerUp"}, "OccurrenceConstraintViolation"),
    ({**BOOT, "reason": 7}, "TypeConstraintViolation"),
    ({**BOOT, "reason": "Hunger"}, "PropertyConstraintViolation"),
    ({**BOOT, "colour": "red"}, "FormatViolation"),
])
async def test_a_bad_payload_gets_its_callerror_and_is_a_violation(
    csms: Csms201, charger: Charger, payload: dict[str, Any], code: str
) -> None:
    answer = await charger.call("BootNotification", payload)
    assert answer[:3] == [4, "1", code]
    assert len(csms.violations) == 1 and code in csms.violations[0]
    assert csms.sent_violations == []  # the CALLERROR itself is a good frame


@pytest.mark.parametrize(("frame", "answer"), [
    ("not json", [4, "-1", "RpcFrameworkError"]),
    ([2, "9", "BootNotification"], [4, "9", "ProtocolError"]),
    ([7, "9", {}], [4, "9", "MessageTypeNotSupported"]),
    ([2, "9", "StartTransaction", {}], [4, "9", "NotImplemented"]),  # 1.6, not 2.0.1
    ([2, "9", "SecurityEventNotification", {"type": "x", "timestamp": NOW}],
     [4, "9", "NotSupported"]),  # 2.0.1, not handled here
])
async def test_frames_it_cannot_take_get_the_2_0_1_error_code(
    csms: Csms201, charger: Charger, frame: Any, answer: list[Any]
) -> None:
    assert (await charger.send(frame))[:3] == answer


async def test_transaction_events_are_booked_in_sequence(
    csms: Csms201, charger: Charger
) -> None:
    token = {"idToken": "CARD", "type": "ISO14443"}
    started = event("Started", 0, "CablePluggedIn", idToken=token,
                    evse={"id": 1, "connectorId": 1},
                    meterValue=energy(100, "Transaction.Begin"))
    answer = await charger.call("TransactionEvent", started)
    assert answer[2] == {"idTokenInfo": {"status": "Accepted"}}
    await charger.call("TransactionEvent", started)  # re-sent: a duplicate
    await charger.call("TransactionEvent", event("Updated", 1, "MeterValuePeriodic",
                                                 meterValue=energy(150, "Sample.Periodic")))
    await charger.call("TransactionEvent", event(
        "Ended", 2, "EVCommunicationLost", info={"stoppedReason": "EVDisconnected"},
        meterValue=energy(200, "Transaction.End")))
    tx = csms.transactions["CP1-1"]
    assert (tx.event_types, tx.seq_nos) == (["Started", "Updated", "Ended"], [0, 1, 2])
    assert tx.trigger_reasons == ["CablePluggedIn", "MeterValuePeriodic", "EVCommunicationLost"]
    assert (tx.meter_start, tx.meter_stop, tx.stopped_reason) == (100, 200, "EVDisconnected")
    assert (tx.id_token, tx.evse_id, tx.duplicates) == ("CARD", 1, 1)
    assert csms.violations == []


@pytest.mark.parametrize(("seq_nos", "kinds", "problem"), [
    ([0, 2], ["Started", "Updated"], "seqNo 2, expected 1"),
    ([0], ["Updated"], "Updated as event 0"),
    ([0, 1, 2], ["Started", "Ended", "Updated"], "Updated after Ended"),
])
async def test_a_broken_sequence_is_a_violation(
    csms: Csms201, charger: Charger, seq_nos: list[int], kinds: list[str], problem: str
) -> None:
    for seq_no, kind in zip(seq_nos, kinds, strict=True):
        answer = await charger.call("TransactionEvent", event(kind, seq_no, "Authorized"))
        assert answer[0] == 3
    assert len(csms.violations) == 1 and problem in csms.violations[0]


async def test_request_start_reaches_the_charger_and_its_answer_is_checked(
    csms: Csms201, charger: Charger
) -> None:
    started = asyncio.ensure_future(csms.request_start("CARD", evse_id=1, remote_start_id=7))
    request = json.loads(await asyncio.wait_for(charger.ws.recv(), 5))
    assert request[2:] == ["RequestStartTransaction", {
        "idToken": {"idToken": "CARD", "type": "ISO14443"}, "remoteStartId": 7, "evseId": 1}]
    await charger.ws.send(json.dumps([3, request[1], {"status": "Maybe"}]))  # not an enum value
    with pytest.raises(Exception, match="status"):
        await asyncio.wait_for(started, 5)
    assert len(csms.violations) == 1 and "PropertyConstraintViolation" in csms.violations[0]


async def test_request_stop_returns_the_answer(csms: Csms201, charger: Charger) -> None:
    stopped = asyncio.ensure_future(csms.request_stop("CP1-1"))
    request = json.loads(await asyncio.wait_for(charger.ws.recv(), 5))
    assert request[2:] == ["RequestStopTransaction", {"transactionId": "CP1-1"}]
    await charger.ws.send(json.dumps([3, request[1], {"status": "Accepted"}]))
    assert (await asyncio.wait_for(stopped, 5)).status == "Accepted"
    assert csms.violations == [] and csms.sent_violations == []


async def test_status_for_the_whole_station_is_a_violation(
    csms: Csms201, charger: Charger
) -> None:
    status = {"timestamp": NOW, "connectorStatus": "Occupied", "evseId": 1, "connectorId": 1}
    await charger.call("StatusNotification", status)
    assert csms.last_status(1) == "Occupied" and csms.violations == []
    await charger.call("StatusNotification", {**status, "evseId": 0})
    assert csms.violations == ["StatusNotification for evseId 0"]


def test_a_callerror_with_a_1_6_code_is_a_problem() -> None:
    problem = frame_problem(json.dumps([4, "1", "FormationViolation", "", {}]))
    assert problem is not None and problem.code == "ProtocolError"
    assert frame_problem(json.dumps([4, "1", "FormatViolation", "", {}])) is None


def test_a_result_for_no_call_is_a_problem() -> None:
    problem = frame_problem(json.dumps([3, "1", {}]))
    assert problem is not None and "no CALL" in problem.description
