"""The OCPP 2.0.1 adapter: every neutral message becomes a payload the 2.0.1 schemas accept,
answers become neutral results, and the CSMS's commands reach the core or get a CALLERROR."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from ocpp.charge_point import remove_nones, serialize_as_dict, snake_to_camel_case
from ocpp.messages import get_validator
from ocpp.v201 import call_result

from agent.core import messages as msg
from agent.core.types import (
    AuthorizationInfo,
    AuthStatus,
    ConnectorStatus,
    ErrorCode,
    RegistrationStatus,
    RequestStatus,
    StopReason,
    TxTrigger,
)
from agent.csms import v201

CP = "SIM-0001"
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
SAMPLE = msg.MeterSample(NOW, (msg.SampledValue("Energy.Active.Import.Register", 1234.5, "Wh"),
                               msg.SampledValue("Voltage", 230.1, "V", "L1"),
                               msg.SampledValue("Power.Active.Import", 7000, "W")))


def wire(payload: Any) -> dict[str, Any]:
    """The payload as the library puts it on the wire."""
    camel: dict[str, Any] = remove_nones(snake_to_camel_case(serialize_as_dict(payload)))
    return camel


def assert_valid(payload: Any) -> dict[str, Any]:
    body = wire(payload)
    errors = list(get_validator(2, type(payload).__name__, "2.0.1").iter_errors(body))
    assert errors == [], f"{type(payload).__name__}: {[e.message for e in errors]}"
    return body


def started(trigger: TxTrigger = TxTrigger.CABLE_PLUGGED_IN) -> msg.TransactionStarted:
    return msg.TransactionStarted(tx_ref=7, connector_id=1, id_tag="00A1B2C3",
                                  meter_start_wh=1000, timestamp=NOW, seq_no=0,
                                  trigger=trigger, remote_start_id=42)


def test_boot_heartbeat_authorize_and_meter_values_are_valid_2_0_1() -> None:
    boot = assert_valid(v201.to_call(msg.RegistrationRequest("V", "M", "S1", "1.0"), CP))
    assert boot == {"reason": "PowerUp", "chargingStation": {
        "model": "M", "vendorName": "V", "serialNumber": "S1", "firmwareVersion": "1.0"}}
    assert assert_valid(v201.to_call(msg.HeartbeatRequest(), CP)) == {}
    authorize = assert_valid(v201.to_call(msg.AuthorizationRequest("00A1B2C3"), CP))
    assert authorize == {"idToken": {"idToken": "00A1B2C3", "type": "ISO14443"}}
    meter = assert_valid(v201.to_call(msg.MeterValuesReported(1, (SAMPLE,)), CP))
    values = meter["meterValue"][0]["sampledValue"]
    assert values[0]["value"] == 1234.5 and values[0]["unitOfMeasure"] == {"unit": "Wh"}
    assert values[1]["phase"] == "L1-N"


@pytest.mark.parametrize("status", list(ConnectorStatus))
def test_every_connector_status_is_reported_for_the_evse(status: ConnectorStatus) -> None:
    req = msg.StatusChanged(2, status, ErrorCode.NO_ERROR, NOW)
    body = assert_valid(v201.to_call(req, CP))
    assert (body["evseId"], body["connectorId"]) == (2, 1)
    occupied = {"Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing"}
    assert body["connectorStatus"] == ("Occupied" if status in occupied else status.value)


def test_the_station_as_a_whole_has_no_status_notification() -> None:
    assert v201.to_call(msg.StatusChanged(0, ConnectorStatus.AVAILABLE,
                                          ErrorCode.NO_ERROR, NOW), CP) is None


@pytest.mark.parametrize("trigger", list(TxTrigger))
def test_started_carries_seq_no_trigger_token_evse_and_start_energy(trigger: TxTrigger) -> None:
    body = assert_valid(v201.to_call(started(trigger), CP))
    assert (body["eventType"], body["seqNo"], body["triggerReason"]) == ("Started", 0,
                                                                        trigger.value)
    assert body["transactionInfo"] == {"transactionId": "SIM-0001-7", "remoteStartId": 42}
    assert body["evse"] == {"id": 1, "connectorId": 1}
    (begin,) = body["meterValue"][0]["sampledValue"]
    assert (begin["value"], begin["context"]) == (1000, "Transaction.Begin")


@pytest.mark.parametrize(("context", "trigger"), [("Sample.Periodic", "MeterValuePeriodic"),
                                                  ("Sample.Clock", "MeterValueClock")])
def test_updated_is_triggered_by_the_kind_of_sample(context: str, trigger: str) -> None:
    sample = msg.MeterSample(NOW, SAMPLE.values, context)
    body = assert_valid(v201.to_call(msg.TransactionUpdated(7, 1, (sample,), seq_no=3), CP))
    assert (body["eventType"], body["seqNo"], body["triggerReason"]) == ("Updated", 3, trigger)
    assert body["meterValue"][0]["sampledValue"][0]["context"] == context


@pytest.mark.parametrize("reason", list(StopReason))
def test_every_stop_reason_ends_with_a_valid_reason_and_trigger(reason: StopReason) -> None:
    req = msg.TransactionEnded(7, 1, 2500, NOW, reason, seq_no=9, id_tag="00A1B2C3",
                               samples=(SAMPLE,))
    body = assert_valid(v201.to_call(req, CP))
    assert (body["eventType"], body["seqNo"]) == ("Ended", 9)
    assert body["meterValue"][-1]["sampledValue"][0]["context"] == "Transaction.End"
    assert body["meterValue"][-1]["sampledValue"][0]["value"] == 2500


@pytest.mark.parametrize(("reason", "stopped", "trigger"), [
    (StopReason.LOCAL, "Local", "StopAuthorized"),
    (StopReason.REMOTE, "Remote", "RemoteStop"),
    (StopReason.EV_DISCONNECTED, "EVDisconnected", "EVCommunicationLost"),
    (StopReason.HARD_RESET, "ImmediateReset", "ResetCommand"),
    (StopReason.DE_AUTHORIZED, "DeAuthorized", "Deauthorized"),
])
def test_stop_reasons_map_onto_2_0_1(reason: StopReason, stopped: str, trigger: str) -> None:
    body = wire(v201.to_call(msg.TransactionEnded(7, 1, 2500, NOW, reason, seq_no=2), CP))
    assert (body["transactionInfo"]["stoppedReason"], body["triggerReason"]) == (stopped,
                                                                                 trigger)


def test_transaction_ids_are_ours_at_most_36_characters_and_read_back() -> None:
    long_id = "X" * 48
    made = v201.transaction_id(long_id, 123456)
    assert len(made) == 36 and made.endswith("-123456")
    assert v201.tx_ref_of(long_id, made) == 123456
    assert v201.tx_ref_of(CP, "SIM-0001-7") == 7
    for foreign in ("OTHER-7", "SIM-0001-x", "7", "SIM-0001-"):
        assert v201.tx_ref_of(CP, foreign) is None


def test_answers_become_neutral_results() -> None:
    boot = v201.from_result(None, call_result.BootNotification(
        current_time="2026-12-04T12:00:00Z", interval=60, status="Pending"))
    assert boot == msg.RegistrationResult(RegistrationStatus.PENDING, 60, NOW)
    auth = v201.from_result(None, call_result.Authorize(id_token_info={
        "status": "NoCredit", "group_id_token": {"id_token": "G", "type": "Central"},
        "cache_expiry_date_time": "2026-12-04T12:00:00Z"}))
    assert auth == msg.AuthorizationResult(AuthorizationInfo(AuthStatus.INVALID, "G", NOW))
    answer = call_result.TransactionEvent(id_token_info={"status": "Blocked"})
    start = v201.from_result(v201.to_call(started(), CP), answer)
    assert start == msg.TransactionStartResult(AuthorizationInfo(AuthStatus.BLOCKED), None)
    ended = v201.to_call(msg.TransactionEnded(7, 1, 2500, NOW, StopReason.LOCAL, seq_no=1), CP)
    assert v201.from_result(ended, call_result.TransactionEvent()) == msg.TransactionEndResult()
    updated = v201.to_call(msg.TransactionUpdated(7, 1, (SAMPLE,), seq_no=1), CP)
    assert v201.from_result(updated, call_result.TransactionEvent()) == msg.Ack()


# --- the session, over a connection in memory ----------------------------------------------


class Connection:
    def __init__(self) -> None:
        self.sent: asyncio.Queue[str] = asyncio.Queue()

    async def send(self, text: str) -> None:
        await self.sent.put(text)

    async def recv(self) -> str:
        await asyncio.Event().wait()
        raise AssertionError


class Core:
    def __init__(self, status: RequestStatus = RequestStatus.ACCEPTED) -> None:
        self.requests: list[msg.CsmsRequest] = []
        self.status = status

    def __call__(self, request: msg.CsmsRequest) -> msg.CsmsResponse:
        self.requests.append(request)
        return msg.CommandResult(self.status)


async def answer_to(frame: list[Any], core: Core) -> list[Any]:
    connection = Connection()
    session = v201.ADAPTER.open(CP, connection, core, 5.0, lambda: None)
    await session.route_message(json.dumps(frame))  # type: ignore[attr-defined]
    answer: list[Any] = json.loads(await asyncio.wait_for(connection.sent.get(), 5))
    return answer


async def test_request_start_reaches_the_core_as_a_remote_start() -> None:
    core = Core()
    answer = await answer_to([2, "a", "RequestStartTransaction", {
        "idToken": {"idToken": "00A1B2C3", "type": "ISO14443"}, "remoteStartId": 5,
        "evseId": 1}], core)
    assert answer == [3, "a", {"status": "Accepted"}]
    assert core.requests == [msg.CsmsRemoteStart("00A1B2C3", connector_id=1, remote_start_id=5)]


async def test_request_stop_names_our_transaction_or_is_rejected() -> None:
    core = Core(RequestStatus.REJECTED)
    answer = await answer_to([2, "b", "RequestStopTransaction",
                              {"transactionId": "SIM-0001-7"}], core)
    assert answer == [3, "b", {"status": "Rejected"}]
    assert core.requests == [msg.CsmsRemoteStop(tx_ref=7)]
    foreign = Core()
    answer = await answer_to([2, "c", "RequestStopTransaction", {"transactionId": "X-1"}],
                             foreign)
    assert answer == [3, "c", {"status": "Rejected"}] and foreign.requests == []


@pytest.mark.parametrize(("frame", "code"), [
    ([2, "d", "GetVariables", {"getVariableData": [
        {"component": {"name": "C"}, "variable": {"name": "V"}}]}], "NotSupported"),
    ([2, "e", "RemoteStopTransaction", {"transactionId": 1}], "NotImplemented"),
    ([2, "f", "RequestStopTransaction", {}], "OccurrenceConstraintViolation"),
    ([2, "g", "RequestStopTransaction", {"transactionId": 7}], "TypeConstraintViolation"),
    ([2, "h", "RequestStartTransaction", {"idToken": {"idToken": "A", "type": "Card"},
                                          "remoteStartId": 1}], "PropertyConstraintViolation"),
    ([2, "i", "RequestStopTransaction", {"transactionId": "x", "more": 1}], "FormatViolation"),
    ([9, "j", {}], "MessageTypeNotSupported"),
])
async def test_what_the_charger_cannot_take_gets_the_2_0_1_callerror(
    frame: list[Any], code: str
) -> None:
    core = Core()
    answer = await answer_to(frame, core)
    assert answer[:3] == [4, frame[1], code] and core.requests == []


async def test_a_status_is_reported_once_while_it_stays_occupied() -> None:
    connection = Connection()
    session = v201.ADAPTER.open(CP, connection, Core(), 5.0, lambda: None)
    statuses = [ConnectorStatus.PREPARING, ConnectorStatus.CHARGING, ConnectorStatus.FINISHING,
                ConnectorStatus.AVAILABLE]
    sent = []
    for status in statuses:
        reply = asyncio.ensure_future(session.send(
            msg.StatusChanged(1, status, ErrorCode.NO_ERROR, NOW), f"s{status}"))
        frame = asyncio.ensure_future(connection.sent.get())
        await asyncio.wait({reply, frame}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
        if frame.done():
            call = json.loads(frame.result())
            sent.append(call[3]["connectorStatus"])
            await session.route_message(json.dumps([3, call[1], {}]))  # type: ignore[attr-defined]
        else:
            frame.cancel()
        assert await asyncio.wait_for(reply, 5) == msg.Ack()
    assert sent == ["Occupied", "Available"]
