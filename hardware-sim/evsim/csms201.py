"""A small, strict OCPP 2.0.1 CSMS on loopback, for the demo and the integration tests.

The 2.0.1 sibling of :mod:`evsim.csms`: the ``ocpp`` library's central side
(``ocpp.v201.ChargePoint``) over ``websockets``, subprotocol ``ocpp2.0.1``. It

* validates *every* frame in both directions against the OCPP 2.0.1 JSON schemas the library
  ships (``ocpp/v201/schemas``): what the charger sends lands in :attr:`Csms201.violations`,
  what this CSMS sends in :attr:`Csms201.sent_violations` (tests assert both stay empty);
* answers a CALL it cannot accept with the OCPP-J 2.0.1 CALLERROR (section 4.3 of part 4 of
  the specification): RpcFrameworkError for a frame that is not an RPC message, ProtocolError
  for a malformed CALL, OccurrenceConstraintViolation / TypeConstraintViolation /
  PropertyConstraintViolation / FormatViolation for a payload that breaks its schema,
  NotImplemented for an action 2.0.1 does not know and NotSupported for one it knows that this
  CSMS does not handle;
* keeps the books of the transactions (:attr:`Csms201.transactions`, by transactionId, with
  every TransactionEvent) and checks their sequence: seqNo counts from 0 without gaps, Started
  comes first and nothing follows Ended (a re-sent event, same seqNo and same payload, is a
  duplicate, counted, not a violation: delivery is at least once);
* lets tests command the charger (:meth:`Csms201.request_start`,
  :meth:`Csms201.request_stop`, or any ``ocpp.v201.call`` payload through ``call``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from jsonschema.exceptions import ValidationError as SchemaError
from ocpp.charge_point import snake_to_camel_case
from ocpp.messages import get_validator
from ocpp.routing import on
from ocpp.v201 import ChargePoint as _CentralSide
from ocpp.v201 import call, call_result
from ocpp.v201.enums import Action, AuthorizationStatusEnumType

from evsim.csms_base import CsmsServer, Frame, Recorder, utc_now

__all__ = ["CentralSide201", "Csms201", "Frame", "Transaction201", "frame_problem"]
log = logging.getLogger(__name__)

VERSION = "2.0.1"
CALL, CALL_RESULT, CALL_ERROR = 2, 3, 4
UNKNOWN_ID = "-1"
ACTIONS = frozenset(action.value for action in Action)
ERROR_CODES = frozenset({
    "FormatViolation", "GenericError", "InternalError", "MessageTypeNotSupported",
    "NotImplemented", "NotSupported", "OccurrenceConstraintViolation",
    "PropertyConstraintViolation", "ProtocolError", "RpcFrameworkError", "SecurityError",
    "TypeConstraintViolation",
})
_PROPERTY_VALIDATORS = {"enum", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
                        "pattern", "format", "minLength", "multipleOf",
                        "minItems", "maxItems"}


# --- frame checks ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """What is wrong with a frame; ``code`` is the OCPP-J 2.0.1 CALLERROR code."""

    unique_id: str
    code: str
    description: str

    def call_error(self) -> str:
        return json.dumps([CALL_ERROR, self.unique_id, self.code, self.description[:255], {}])


def frame_problem(raw: str, answered_action: str = "") -> Problem | None:
    """Check one frame against OCPP-J 2.0.1 and the 2.0.1 schemas; None when it is good.

    ``answered_action`` is the action of the CALL a CALLRESULT answers (its schema is the
    action's Response schema); an unknown one leaves the result's payload unchecked.
    """
    try:
        message = json.loads(raw)
    except ValueError:
        return Problem(UNKNOWN_ID, "RpcFrameworkError", "frame is not valid JSON")
    if not isinstance(message, list) or len(message) < 3 or not isinstance(message[1], str):
        return Problem(UNKNOWN_ID, "RpcFrameworkError", "frame is not an OCPP-J message array")
    unique_id = message[1][:36]
    if len(message[1]) > 36:
        return Problem(unique_id, "RpcFrameworkError", "messageId longer than 36 characters")
    kind = message[0]
    if kind == CALL:
        return _call_problem(unique_id, message)
    if kind == CALL_RESULT:
        return _result_problem(unique_id, message, answered_action)
    if kind == CALL_ERROR:
        return _error_problem(unique_id, message)
    return Problem(unique_id, "MessageTypeNotSupported", f"unknown MessageTypeId {kind!r}")


def _call_problem(unique_id: str, message: list[Any]) -> Problem | None:
    if len(message) != 4 or not isinstance(message[2], str) or not isinstance(message[3], dict):
        return Problem(unique_id, "ProtocolError", "a CALL is [2, messageId, action, payload]")
    if message[2] not in ACTIONS:
        return Problem(unique_id, "NotImplemented", f"{message[2]} is not an OCPP 2.0.1 action")
    return _schema_problem(unique_id, CALL, message[2], message[3])


def _result_problem(unique_id: str, message: list[Any], action: str) -> Problem | None:
    if len(message) != 3 or not isinstance(message[2], dict):
        return Problem(unique_id, "ProtocolError", "a CALLRESULT is [3, messageId, payload]")
    if not action:
        return Problem(unique_id, "ProtocolError", "a CALLRESULT for no CALL")
    return _schema_problem(unique_id, CALL_RESULT, action, message[2])


def _error_problem(unique_id: str, message: list[Any]) -> Problem | None:
    if len(message) != 5 or not isinstance(message[3], str) or not isinstance(message[4], dict):
        return Problem(unique_id, "ProtocolError",
                       "a CALLERROR is [4, messageId, errorCode, errorDescription, details]")
    if message[2] not in ERROR_CODES:
        return Problem(unique_id, "ProtocolError", f"{message[2]!r} is no 2.0.1 error code")
    if len(message[3]) > 255:
        return Problem(unique_id, "ProtocolError", "errorDescription over 255 characters")
    return None


def _schema_problem(unique_id: str, kind: int, action: str,
                    payload: dict[str, Any]) -> Problem | None:
    validator = get_validator(kind, action, VERSION)
    errors = sorted(validator.iter_errors(payload), key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    error = errors[0]
    where = "/".join(str(p) for p in error.absolute_path) or "payload"
    return Problem(unique_id, _code_for(error), f"{action} {where}: {error.message}")


def _code_for(error: SchemaError) -> str:
    if error.validator == "required":
        return "OccurrenceConstraintViolation"
    if error.validator in ("type", "maxLength"):  # a string over its length: its type
        return "TypeConstraintViolation"
    if error.validator in _PROPERTY_VALIDATORS:
        return "PropertyConstraintViolation"
    return "FormatViolation"  # additionalProperties and the like


# --- the books ------------------------------------------------------------------------------


def _energy_wh(meter_values: list[dict[str, Any]]) -> float | None:
    """The last Energy.Active.Import.Register reading (Wh) in ``meter_values``."""
    found = None
    for value in meter_values:
        for sampled in value.get("sampledValue", ()):
            if sampled.get("measurand", "Energy.Active.Import.Register") == \
                    "Energy.Active.Import.Register" and "phase" not in sampled:
                found = float(sampled["value"]) * (1000 if _unit(sampled) == "kWh" else 1)
    return found


def _unit(sampled: dict[str, Any]) -> str:
    return str(sampled.get("unitOfMeasure", {}).get("unit", "Wh"))


@dataclass
class Transaction201:
    """One transaction as the CSMS saw its TransactionEvents (payloads in camelCase)."""

    transaction_id: str
    events: list[dict[str, Any]] = field(default_factory=list)
    duplicates: int = 0

    @property
    def event_types(self) -> list[str]:
        return [e["eventType"] for e in self.events]

    @property
    def seq_nos(self) -> list[int]:
        return [e["seqNo"] for e in self.events]

    @property
    def trigger_reasons(self) -> list[str]:
        return [e["triggerReason"] for e in self.events]

    @property
    def meter_values(self) -> list[dict[str, Any]]:
        return [v for e in self.events for v in e.get("meterValue", ())]

    @property
    def ended(self) -> bool:
        return "Ended" in self.event_types

    @property
    def id_token(self) -> str | None:
        tokens = [e["idToken"]["idToken"] for e in self.events if "idToken" in e]
        return tokens[0] if tokens else None

    @property
    def evse_id(self) -> int | None:
        evses = [e["evse"]["id"] for e in self.events if "evse" in e]
        return evses[0] if evses else None

    @property
    def stopped_reason(self) -> str | None:
        ends = [e["transactionInfo"].get("stoppedReason", "Local")
                for e in self.events if e["eventType"] == "Ended"]
        return ends[0] if ends else None

    @property
    def remote_start_id(self) -> int | None:
        ids = [e["transactionInfo"]["remoteStartId"] for e in self.events
               if "remoteStartId" in e["transactionInfo"]]
        return ids[0] if ids else None

    @property
    def meter_start(self) -> float | None:
        return _energy_wh(self.events[0].get("meterValue", [])) if self.events else None

    @property
    def meter_stop(self) -> float | None:
        ends = [e for e in self.events if e["eventType"] == "Ended"]
        return _energy_wh(ends[0].get("meterValue", [])) if ends else None

    def add(self, event: dict[str, Any]) -> str | None:
        """Book ``event``; return what is wrong with its place in the sequence, if anything."""
        seq_no = event["seqNo"]
        if seq_no < len(self.events) and self.events[seq_no] == event:
            self.duplicates += 1
            return None
        problem = self._sequence_problem(event)
        self.events.append(event)
        return problem

    def _sequence_problem(self, event: dict[str, Any]) -> str | None:
        tx, kind, seq_no = self.transaction_id, event["eventType"], event["seqNo"]
        if seq_no != len(self.events):
            return f"transaction {tx}: {kind} has seqNo {seq_no}, expected {len(self.events)}"
        if (kind == "Started") != (not self.events):
            return f"transaction {tx}: {kind} as event {len(self.events)}"
        if self.ended:
            return f"transaction {tx}: {kind} after Ended"
        return None


# --- the session ----------------------------------------------------------------------------


class CentralSide201(_CentralSide):  # type: ignore[misc]  # ocpp is untyped
    """The CSMS's session with one charger."""

    def __init__(self, charge_point_id: str, connection: Recorder, csms: Csms201) -> None:
        super().__init__(charge_point_id, connection, response_timeout=10)
        self.csms = csms

    async def route_message(self, raw_msg: str) -> None:
        """Refuse a bad CALL with its 2.0.1 CALLERROR; let the library route the rest."""
        problem = frame_problem(raw_msg, self.csms.action_of(_message_id(raw_msg)))
        kind = _message_type(raw_msg)
        if problem is None and kind == CALL and self._unhandled(raw_msg):
            problem = Problem(_message_id(raw_msg), "NotSupported",
                              f"{json.loads(raw_msg)[2]} is not handled by this CSMS")
        if problem is not None and kind not in (CALL_RESULT, CALL_ERROR):
            await self._send(problem.call_error())
            return
        await super().route_message(raw_msg)

    def _unhandled(self, raw_msg: str) -> bool:
        return "_on_action" not in self.route_map.get(json.loads(raw_msg)[2], {})

    @on(Action.boot_notification)
    def on_boot(self, **_: Any) -> Any:
        status, interval = self.csms.next_boot_answer()
        return call_result.BootNotification(utc_now(), interval, status)

    @on(Action.heartbeat)
    def on_heartbeat(self, **_: Any) -> Any:
        return call_result.Heartbeat(utc_now())

    @on(Action.status_notification)
    def on_status(self, evse_id: int, connector_id: int, connector_status: str,
                  **_: Any) -> Any:
        self.csms.book_status(evse_id, connector_id, connector_status)
        return call_result.StatusNotification()

    @on(Action.authorize)
    def on_authorize(self, id_token: dict[str, Any], **_: Any) -> Any:
        return call_result.Authorize(self.csms.id_token_info(id_token["id_token"]))

    @on(Action.transaction_event)
    def on_transaction_event(self, **payload: Any) -> Any:
        event: dict[str, Any] = snake_to_camel_case(payload)
        self.csms.book_event(event)
        token = event.get("idToken")
        info = self.csms.id_token_info(token["idToken"]) if token else None
        return call_result.TransactionEvent(id_token_info=info)

    @on(Action.meter_values)
    def on_meter_values(self, evse_id: int, meter_value: list[dict[str, Any]],
                        **_: Any) -> Any:
        self.csms.meter_values.append((evse_id, snake_to_camel_case(meter_value)))
        return call_result.MeterValues()


def _message_id(raw: str) -> str:
    try:
        return str(json.loads(raw)[1])
    except (ValueError, IndexError, KeyError, TypeError):
        return UNKNOWN_ID


def _message_type(raw: str) -> object:
    try:
        return json.loads(raw)[0]
    except (ValueError, IndexError, KeyError, TypeError):
        return None


class Csms201(CsmsServer[CentralSide201]):
    """The CSMS server. ``async with Csms201() as csms:`` listens on ``csms.url``."""

    subprotocol = "ocpp2.0.1"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, path: str = "/ocpp",
                 password: str | None = None) -> None:
        super().__init__(host, port, path, password)
        self.statuses: list[tuple[int, int, str]] = []  # (evseId, connectorId, status)
        self.transactions: dict[str, Transaction201] = {}
        self.meter_values: list[tuple[int, list[dict[str, Any]]]] = []
        self.authorizations: dict[str, str] = {}  # idToken (upper case) -> status
        self.default_authorization: str = AuthorizationStatusEnumType.accepted.value

    def open_session(self, charge_point_id: str, connection: Recorder) -> CentralSide201:
        return CentralSide201(charge_point_id, connection, self)

    def validate(self, direction: str, raw: str, frame: Frame) -> None:
        """Every frame, both ways: a CALLRESULT is checked against the Response schema of
        the CALL it answers (sent the other way)."""
        answered = self.action_of(_message_id(raw), "out" if direction == "in" else "in")
        if frame.message_type == CALL_RESULT:
            frame.action = answered
        problem = frame_problem(raw, answered)
        if problem is not None:
            target = self.violations if direction == "in" else self.sent_violations
            target.append(f"{problem.code}: {problem.description} in {raw[:300]}")

    # --- the books -----------------------------------------------------------------------

    def id_token_info(self, id_token: str) -> dict[str, Any]:
        return {"status": self.authorizations.get(id_token.upper(), self.default_authorization)}

    def book_status(self, evse_id: int, connector_id: int, status: str) -> None:
        if evse_id < 1:
            self.violations.append(f"StatusNotification for evseId {evse_id}")
        self.statuses.append((evse_id, connector_id, status))

    def book_event(self, event: dict[str, Any]) -> None:
        transaction_id = event["transactionInfo"]["transactionId"]
        tx = self.transactions.setdefault(transaction_id, Transaction201(transaction_id))
        problem = tx.add(event)
        if problem is not None:
            self.violations.append(problem)
        self.spawn(self._notify())

    def last_status(self, evse_id: int) -> str | None:
        for evse, _, status in reversed(self.statuses):
            if evse == evse_id:
                return status
        return None

    def events(self, event_type: str | None = None) -> list[Frame]:
        """The TransactionEvent CALLs from the charger, of ``event_type`` if given."""
        return [f for f in self.calls("TransactionEvent")
                if event_type is None or f.payload.get("eventType") == event_type]

    async def wait_for_event(self, event_type: str, count: int = 1,
                             within: float = 10.0) -> Frame:
        """Wait for the ``count``-th TransactionEvent of ``event_type`` to be booked in
        :attr:`transactions` (the frame arrives a moment before); return its frame."""
        def found() -> Frame | None:
            frames = self.events(event_type)
            frame = frames[count - 1] if len(frames) >= count else None
            return frame if frame is not None and self._booked(frame.payload) else None

        result: Frame = await self.wait_for(found, within)
        return result

    def _booked(self, event: dict[str, Any]) -> bool:
        tx = self.transactions.get(event.get("transactionInfo", {}).get("transactionId", ""))
        return tx is not None and event in tx.events

    # --- commands ------------------------------------------------------------------------

    async def request_start(self, id_token: str, evse_id: int | None = None,
                            remote_start_id: int = 1) -> Any:
        """RequestStartTransaction; returns the charger's call_result."""
        return await self.call(call.RequestStartTransaction(
            id_token={"idToken": id_token, "type": "ISO14443"},
            remote_start_id=remote_start_id, evse_id=evse_id))

    async def request_stop(self, transaction_id: str) -> Any:
        """RequestStopTransaction; returns the charger's call_result."""
        return await self.call(call.RequestStopTransaction(transaction_id=transaction_id))
