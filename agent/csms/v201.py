"""OCPP 2.0.1: a thin translation between the core's neutral messages and the ``ocpp`` library.

This module is the only place that knows 2.0.1 names. It turns :mod:`agent.core.messages`
requests into ``ocpp.v201.call`` payloads, the answers back into neutral results, and the
CSMS's RequestStartTransaction / RequestStopTransaction (``@on`` handlers) into
:class:`~agent.core.messages.CsmsRemoteStart` / :class:`~agent.core.messages.CsmsRemoteStop`.
Everything else the CSMS sends is answered by the library's routing with a CALLERROR:
NotSupported for a 2.0.1 action this charger does not offer, NotImplemented for an action
2.0.1 does not know (OCPP-J 2.0.1 part 4 §4.3; the library has the two the other way round,
see :class:`agent.csms.frames.StrictSession`).

What this first 2.0.1 path carries (issue 11): BootNotification, Heartbeat,
StatusNotification (evseId = the core's connector, connectorId 1; the station as a whole,
connector 0, is not reported), Authorize (idToken of type ISO14443), TransactionEvent
Started / Updated / Ended with seqNo, triggerReason and meterValue, MeterValues outside
transactions. Error codes of a status (1.6's errorCode) belong to NotifyEvent in 2.0.1 and
are not sent yet; neither are the diagnostics and firmware status reports.

The transactionId is the charger's in 2.0.1: :func:`transaction_id` makes it from the core's
``tx_ref`` and :func:`tx_ref_of` reads it back, so ``uses_csms_transaction_ids`` is False.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ocpp.exceptions import OCPPError
from ocpp.v201 import ChargePoint as _OcppChargePoint
from ocpp.v201 import call, call_result
from ocpp.v201.enums import (
    Action,
    BootReasonEnumType,
    ConnectorStatusEnumType,
    ReasonEnumType,
    RequestStartStopStatusEnumType,
    TransactionEventEnumType,
    TriggerReasonEnumType,
)

from agent.core import messages as msg
from agent.core.types import AuthorizationInfo, AuthStatus, ConnectorStatus, StopReason
from agent.core.types import RegistrationStatus as CoreRegistration
from agent.csms.adapter import CommandHandler, Refused, on, parse_timestamp, timestamp
from agent.csms.errors import CallRejected
from agent.csms.frames import ErrorCodes, StrictSession

SUBPROTOCOL = "ocpp2.0.1"
FRAME_CODES = ErrorCodes(version="2.0.1", not_json="RpcFrameworkError",
                         not_rpc="RpcFrameworkError", unknown_type="MessageTypeNotSupported")
_ACTIONS = frozenset(action.value for action in Action)
_ID_TOKEN_TYPE = "ISO14443"  # the UID of a card, as the readers deliver it
_MAX_TRANSACTION_ID = 36
log = logging.getLogger(__name__)


# --- transaction ids ------------------------------------------------------------------------


def transaction_id(charge_point_id: str, tx_ref: int) -> str:
    """The 2.0.1 transactionId (at most 36 characters) for the core's ``tx_ref``."""
    suffix = f"-{tx_ref}"
    return charge_point_id[:_MAX_TRANSACTION_ID - len(suffix)] + suffix


def tx_ref_of(charge_point_id: str, text: str) -> int | None:
    """The ``tx_ref`` a transactionId of ours names; None for one we did not make."""
    number = text.rpartition("-")[2]
    if not number.isdigit() or transaction_id(charge_point_id, int(number)) != text:
        return None
    return int(number)


# --- outbound requests ----------------------------------------------------------------------

_CONNECTOR_STATUS = {
    ConnectorStatus.AVAILABLE: ConnectorStatusEnumType.available,
    ConnectorStatus.PREPARING: ConnectorStatusEnumType.occupied,
    ConnectorStatus.CHARGING: ConnectorStatusEnumType.occupied,
    ConnectorStatus.SUSPENDED_EV: ConnectorStatusEnumType.occupied,
    ConnectorStatus.SUSPENDED_EVSE: ConnectorStatusEnumType.occupied,
    ConnectorStatus.FINISHING: ConnectorStatusEnumType.occupied,
    ConnectorStatus.RESERVED: ConnectorStatusEnumType.reserved,
    ConnectorStatus.UNAVAILABLE: ConnectorStatusEnumType.unavailable,
    ConnectorStatus.FAULTED: ConnectorStatusEnumType.faulted,
}

# StopReason (1.6 spelling) -> (2.0.1 stoppedReason, the triggerReason of the Ended event)
_STOPPED = {
    StopReason.LOCAL: (ReasonEnumType.local, TriggerReasonEnumType.stop_authorized),
    StopReason.REMOTE: (ReasonEnumType.remote, TriggerReasonEnumType.remote_stop),
    StopReason.EV_DISCONNECTED: (ReasonEnumType.ev_disconnected,
                                 TriggerReasonEnumType.ev_communication_lost),
    StopReason.POWER_LOSS: (ReasonEnumType.power_loss, TriggerReasonEnumType.abnormal_condition),
    StopReason.HARD_RESET: (ReasonEnumType.immediate_reset, TriggerReasonEnumType.reset_command),
    StopReason.SOFT_RESET: (ReasonEnumType.reboot, TriggerReasonEnumType.reset_command),
    StopReason.DE_AUTHORIZED: (ReasonEnumType.de_authorized, TriggerReasonEnumType.deauthorized),
    StopReason.EMERGENCY_STOP: (ReasonEnumType.emergency_stop,
                                TriggerReasonEnumType.abnormal_condition),
    StopReason.REBOOT: (ReasonEnumType.reboot, TriggerReasonEnumType.abnormal_condition),
    StopReason.UNLOCK_COMMAND: (ReasonEnumType.other, TriggerReasonEnumType.unlock_command),
    StopReason.OTHER: (ReasonEnumType.other, TriggerReasonEnumType.abnormal_condition),
}

_SAMPLE_TRIGGER = {
    "Sample.Periodic": TriggerReasonEnumType.meter_value_periodic,
    "Sample.Clock": TriggerReasonEnumType.meter_value_clock,
    "Trigger": TriggerReasonEnumType.trigger,
}

_PHASE_NAMES = {"Voltage": {"L1": "L1-N", "L2": "L2-N", "L3": "L3-N"}}
_ENERGY = "Energy.Active.Import.Register"


def _sampled_value(value: msg.SampledValue, context: str) -> dict[str, Any]:
    out: dict[str, Any] = {"value": round(value.value, 3), "context": context,
                           "measurand": value.measurand, "location": "Outlet"}
    if value.unit:
        out["unit_of_measure"] = {"unit": value.unit}
    if value.phase:
        out["phase"] = _PHASE_NAMES.get(value.measurand, {}).get(value.phase, value.phase)
    return out


def meter_value(sample: msg.MeterSample) -> dict[str, Any]:
    return {"timestamp": timestamp(sample.timestamp),
            "sampled_value": [_sampled_value(v, sample.context) for v in sample.values]}


def _register(wh: int, moment: datetime, context: str) -> dict[str, Any]:
    """The energy register reading that opens or closes a transaction."""
    return meter_value(msg.MeterSample(moment, (msg.SampledValue(_ENERGY, wh, "Wh"),), context))


def _id_token(id_tag: str) -> dict[str, str]:
    return {"id_token": id_tag, "type": _ID_TOKEN_TYPE}


def _evse(connector_id: int) -> dict[str, int]:
    return {"id": connector_id, "connector_id": 1}  # one connector per EVSE


def to_call(req: msg.OutboundReq, charge_point_id: str) -> Any:
    """The ``ocpp.v201.call`` payload for ``req``; None for what 2.0.1 does not carry here."""
    match req:
        case msg.RegistrationRequest():
            return call.BootNotification(
                charging_station={"model": req.model, "vendor_name": req.vendor,
                                  "serial_number": req.serial_number,
                                  "firmware_version": req.firmware_version},
                reason=BootReasonEnumType.power_up)
        case msg.HeartbeatRequest():
            return call.Heartbeat()
        case msg.StatusChanged(connector_id=0):
            return None  # 2.0.1 reports the status of connectors only
        case msg.StatusChanged():
            return call.StatusNotification(
                timestamp=timestamp(req.timestamp),
                connector_status=_CONNECTOR_STATUS[req.status],
                evse_id=req.connector_id, connector_id=1)
        case msg.AuthorizationRequest():
            return call.Authorize(id_token=_id_token(req.id_tag))
        case msg.MeterValuesReported():
            return call.MeterValues(evse_id=req.connector_id,
                                    meter_value=[meter_value(s) for s in req.samples])
    return _transaction_event(req, charge_point_id)


def _transaction_event(req: msg.OutboundReq, charge_point_id: str) -> Any:
    match req:
        case msg.TransactionStarted():
            return call.TransactionEvent(
                event_type=TransactionEventEnumType.started,
                timestamp=timestamp(req.timestamp),
                trigger_reason=TriggerReasonEnumType(req.trigger.value),
                seq_no=req.seq_no,
                transaction_info={"transaction_id": transaction_id(charge_point_id, req.tx_ref),
                                  "remote_start_id": req.remote_start_id},
                id_token=_id_token(req.id_tag),
                evse=_evse(req.connector_id),
                meter_value=[_register(req.meter_start_wh, req.timestamp,
                                       "Transaction.Begin")],
                reservation_id=req.reservation_id)
        case msg.TransactionUpdated():
            contexts = [s.context for s in req.samples]
            return call.TransactionEvent(
                event_type=TransactionEventEnumType.updated,
                timestamp=timestamp(req.samples[-1].timestamp if req.samples
                                    else datetime.now(UTC)),
                trigger_reason=_SAMPLE_TRIGGER.get(
                    contexts[0] if contexts else "", TriggerReasonEnumType.meter_value_periodic),
                seq_no=req.seq_no,
                transaction_info={"transaction_id": transaction_id(charge_point_id, req.tx_ref)},
                meter_value=[meter_value(s) for s in req.samples] or None)
        case msg.TransactionEnded():
            return _ended(req, charge_point_id)
    return None  # diagnostics and firmware reports: not in this step


def _ended(req: msg.TransactionEnded, charge_point_id: str) -> Any:
    stopped, trigger = _STOPPED[req.reason]
    return call.TransactionEvent(
        event_type=TransactionEventEnumType.ended,
        timestamp=timestamp(req.timestamp),
        trigger_reason=trigger,
        seq_no=req.seq_no,
        transaction_info={"transaction_id": transaction_id(charge_point_id, req.tx_ref),
                          "stopped_reason": stopped},
        id_token=_id_token(req.id_tag) if req.id_tag else None,
        evse=_evse(req.connector_id),
        meter_value=[*(meter_value(s) for s in req.samples),
                     _register(req.meter_stop_wh, req.timestamp, "Transaction.End")])


# --- answers -----------------------------------------------------------------------------

_CORE_STATUSES = frozenset(status.value for status in AuthStatus)


def authorization_info(raw: dict[str, Any] | None) -> AuthorizationInfo:
    """The neutral info of an IdTokenInfoType; 2.0.1 statuses the core lacks are Invalid."""
    raw = raw or {}
    status = raw.get("status", AuthStatus.INVALID.value)
    group = raw.get("group_id_token") or {}
    return AuthorizationInfo(
        status=AuthStatus(status) if status in _CORE_STATUSES else AuthStatus.INVALID,
        group_id=group.get("id_token"),
        expiry=parse_timestamp(raw.get("cache_expiry_date_time")),
    )


def from_result(sent: Any, result: Any) -> msg.InboundConf:
    """The neutral result for an ``ocpp.v201.call_result`` payload answering ``sent``."""
    match result:
        case call_result.BootNotification():
            return msg.RegistrationResult(
                status=CoreRegistration(result.status), interval=int(result.interval),
                current_time=parse_timestamp(result.current_time))
        case call_result.Heartbeat():
            return msg.HeartbeatResult(parse_timestamp(result.current_time))
        case call_result.Authorize():
            return msg.AuthorizationResult(authorization_info(result.id_token_info))
        case call_result.TransactionEvent():
            return _transaction_result(sent, result)
    return msg.Ack()


def _transaction_result(sent: Any, result: Any) -> msg.InboundConf:
    raw = result.id_token_info
    info = authorization_info(raw) if raw else None
    if sent.event_type == TransactionEventEnumType.started:
        return msg.TransactionStartResult(info, None)  # the charger made the transactionId
    if sent.event_type == TransactionEventEnumType.ended:
        return msg.TransactionEndResult(info)
    return msg.Ack()


# --- the charge point session -------------------------------------------------------------


class ChargePoint201(StrictSession, _OcppChargePoint):  # type: ignore[misc]  # ocpp is untyped
    """One OCPP 2.0.1 session over an open WebSocket (see :class:`StrictSession`)."""

    frame_codes = FRAME_CODES
    actions = _ACTIONS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # connectorStatus last reported per EVSE in this session: 1.6's Preparing -> Charging
        # -> SuspendedEV is Occupied throughout in 2.0.1, reported once.
        self._reported: dict[int, str] = {}

    async def send(self, req: msg.OutboundReq, ref: str,
                   transaction_id: int | None = None) -> msg.InboundConf:
        """Send one call and return its result; what 2.0.1 does not carry is acknowledged
        without a word. Raises :class:`CallRejected` for a CALLERROR and
        :class:`TimeoutError` when the CSMS stays silent for the response timeout."""
        payload = to_call(req, self.id)
        if payload is None or self._reported_already(payload):
            return msg.Ack()
        try:
            result = await self.call(payload, suppress=False, unique_id=ref)
        except OCPPError as error:
            raise CallRejected(type(error).__name__, str(error)) from error
        if isinstance(payload, call.StatusNotification):
            self._reported[payload.evse_id] = payload.connector_status
        return from_result(payload, result)

    def _reported_already(self, payload: Any) -> bool:
        return (isinstance(payload, call.StatusNotification)
                and self._reported.get(payload.evse_id) == payload.connector_status)

    def _command_status(self, request: msg.CsmsRequest) -> RequestStartStopStatusEnumType:
        response = self._commands(request)
        assert isinstance(response, msg.CommandResult)
        return RequestStartStopStatusEnumType(response.status.value)

    @on(Action.request_start_transaction)
    def _on_request_start(self, id_token: dict[str, Any], remote_start_id: int,
                          evse_id: int | None = None, **_: Any) -> Any:
        status = self._command_status(msg.CsmsRemoteStart(
            id_token["id_token"], connector_id=evse_id, remote_start_id=remote_start_id))
        return call_result.RequestStartTransaction(status=status)

    @on(Action.request_stop_transaction)
    def _on_request_stop(self, transaction_id: str, **_: Any) -> Any:
        tx_ref = tx_ref_of(self.id, transaction_id)
        if tx_ref is None:  # not one of ours: nothing to stop
            return call_result.RequestStopTransaction(RequestStartStopStatusEnumType.rejected)
        status = self._command_status(msg.CsmsRemoteStop(tx_ref=tx_ref))
        return call_result.RequestStopTransaction(status=status)


class Adapter201:
    """OCPP 2.0.1 for :class:`agent.csms.link.Link`."""

    subprotocol = SUBPROTOCOL
    uses_csms_transaction_ids = False  # the charger names its transactions

    def open(self, charge_point_id: str, connection: Any, commands: CommandHandler,
             response_timeout: float, replied: Callable[[], None],
             refused: Refused | None = None) -> ChargePoint201:
        return ChargePoint201(charge_point_id, connection, commands, response_timeout, replied,
                     refused)


ADAPTER = Adapter201()
