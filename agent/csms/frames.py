"""Checks of raw OCPP-J frames from the CSMS, answered with the error codes of each version.

The ``ocpp`` library validates payloads too, but its CALLERROR codes fit neither version
exactly (a missing field is a ProtocolError, a value out of range a FormatViolation) and it
ignores frames it cannot parse. Here every bad frame gets the code its OCPP-J specification
names: :data:`agent.csms.v16_frames.V16` (OCPP-J 1.6 section 4.2.3) and
:data:`agent.csms.v201.FRAME_CODES` (OCPP-J 2.0.1 part 4 section 4.3) say which.
"""

from __future__ import annotations

import decimal
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from jsonschema.exceptions import ValidationError as SchemaError
from ocpp.messages import get_validator

from agent.csms.adapter import CommandHandler, Refused

log = logging.getLogger(__name__)

MAX_FRAME_CHARS = 65536
CALL, CALL_RESULT, CALL_ERROR = 2, 3, 4
UNKNOWN_ID = "-1"

_PROPERTY_VALIDATORS = {"enum", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
                        "pattern", "format", "minLength", "multipleOf", "minItems", "maxItems"}


@dataclass(frozen=True)
class ErrorCodes:
    """The CALLERROR code for each kind of bad frame, in one OCPP version's spelling."""

    version: str  # the ``ocpp`` library's name for the schemas: "1.6", "2.0.1"
    not_json: str  # not JSON, or over the size limit
    not_rpc: str  # not an array [MessageTypeId, uniqueId, ...]
    unknown_type: str  # a MessageTypeId other than 2, 3, 4
    malformed_call: str = "ProtocolError"  # not [2, id, action, {...}]
    required: str = "OccurrenceConstraintViolation"
    wrong_type: str = "TypeConstraintViolation"  # and strings over their length
    bad_value: str = "PropertyConstraintViolation"  # out of range, not in the enumeration
    other: str = "FormatViolation"  # an unknown field and the like


class FrameError(Exception):
    """A frame the charger refuses; ``code`` is the CALLERROR code."""

    def __init__(self, unique_id: str, code: str, description: str) -> None:
        super().__init__(f"{code}: {description}")
        self.unique_id = unique_id
        self.code = code
        self.description = description

    def to_json(self) -> str:
        return json.dumps([CALL_ERROR, self.unique_id, self.code, self.description[:255], {}])


def check(raw: str | bytes, codes: ErrorCodes) -> None:
    """Raise :class:`FrameError` for a frame that must be refused; return for a good one."""
    if len(raw) > MAX_FRAME_CHARS:
        raise FrameError(_peek_id(raw), codes.not_json,
                         f"frame of {len(raw)} characters exceeds {MAX_FRAME_CHARS}")
    try:
        message = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise FrameError(UNKNOWN_ID, codes.not_json, "frame is not valid JSON") from None
    unique_id = _unique_id(message)
    if not isinstance(message, list) or len(message) < 3 or not isinstance(message[0], int):
        raise FrameError(unique_id, codes.not_rpc, "frame is not an OCPP-J message array")
    if message[0] not in (CALL, CALL_RESULT, CALL_ERROR):
        raise FrameError(unique_id, codes.unknown_type, f"unknown MessageTypeId {message[0]}")
    if message[0] == CALL:
        _check_call(unique_id, message, codes)


def _check_call(unique_id: str, message: list[Any], codes: ErrorCodes) -> None:
    if len(message) != 4 or not isinstance(message[2], str) or not isinstance(message[3], dict):
        raise FrameError(unique_id, codes.malformed_call,
                         "a CALL is [2, uniqueId, action, payload]")
    validator = _validator(message[2], codes.version)
    if validator is None:
        return  # unknown action: answered NotImplemented by the adapter
    payload = message[3]
    if (codes.version, message[2]) in _DECIMAL_CALLS:
        # The library loads these schemas with decimals (their multipleOf 0.1 fails on binary
        # floats) and caches them so: the payload must be decimals too, or a limit such as
        # 7.5 raises a TypeError in the check (ocpp.messages.validate_payload does the same).
        payload = json.loads(json.dumps(payload), parse_float=decimal.Decimal)
    error = _first_error(validator, payload)
    if error is not None:
        raise FrameError(unique_id, _code_for(error, codes), error.message)


_DECIMAL_CALLS: Final = {("1.6", "SetChargingProfile"), ("1.6", "RemoteStartTransaction")}


def _validator(action: str, version: str) -> Any:
    parse_float = decimal.Decimal if (version, action) in _DECIMAL_CALLS else float
    try:
        return get_validator(CALL, action, version, parse_float)
    except (OSError, ValueError):
        return None


def _first_error(validator: Any, payload: dict[str, Any]) -> SchemaError | None:
    errors = sorted(validator.iter_errors(payload), key=lambda e: list(e.absolute_path))
    return errors[0] if errors else None


def _code_for(error: SchemaError, codes: ErrorCodes) -> str:
    if error.validator == "required":
        return codes.required
    if error.validator in ("type", "maxLength"):
        return codes.wrong_type
    if error.validator in _PROPERTY_VALIDATORS:
        return codes.bad_value
    return codes.other


def _unique_id(message: object) -> str:
    if isinstance(message, list) and len(message) > 1 and isinstance(message[1], str):
        return message[1][:36]
    return UNKNOWN_ID


def _action_of(raw: str | bytes) -> str | None:
    """The action of a CALL frame, when the frame parses that far."""
    if len(raw) > MAX_FRAME_CHARS:
        return None
    try:
        message = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if (isinstance(message, list) and len(message) > 2 and message[0] == CALL
            and isinstance(message[2], str)):
        return message[2][:50]
    return None


def _peek_id(raw: str | bytes) -> str:
    """The uniqueId of an oversized frame, if its head parses."""
    head = raw[:64] if isinstance(raw, str) else raw[:64].decode(errors="replace")
    parts = head.split('"')
    return parts[1][:36] if len(parts) > 2 and head.lstrip("[ ").startswith("2") else UNKNOWN_ID


class StrictSession:
    """What the adapters' sessions share, mixed in before an ``ocpp`` ChargePoint class.

    ``commands`` receives each CSMS command as a neutral request and returns the neutral
    response synchronously; it must not await a call to the CSMS (the library's receive loop
    is blocked while a handler runs, see hardware.md §9.1).

    A bad frame is refused with the version's CALLERROR before the library routes it, an
    action without a handler gets NotImplemented when the version does not know it and
    NotSupported when it does but this charger does not offer it (OCPP-J 1.6 §4.2.3, 2.0.1
    part 4 §4.3; the library has the two the other way round), and ``_replied`` runs after
    each answer to the CSMS has been sent (TriggerMessage: the reply goes first).
    """

    frame_codes: ErrorCodes
    actions: frozenset[str]  # every action of the version
    route_map: dict[str, dict[str, Any]]

    if TYPE_CHECKING:
        async def _send(self, message: str) -> None: ...

    def __init__(self, charge_point_id: str, connection: Any, commands: CommandHandler,
                 response_timeout: float, replied: Callable[[], None] = lambda: None,
                 refused: Refused | None = None) -> None:
        super().__init__(charge_point_id, connection,  # type: ignore[call-arg]
                         response_timeout=response_timeout,
                         logger=logging.getLogger("agent.ocpp"))
        self._commands = commands
        self._replied = replied
        self._refused = refused

    async def route_message(self, raw_msg: str) -> None:
        try:
            check(raw_msg, self.frame_codes)
            self._check_action(raw_msg)
        except FrameError as error:
            log.warning("refusing a frame from the CSMS: %s", error)
            await self._send(error.to_json())
            # NotSupported answers a valid OCPP call this charger does not offer; everything
            # else refused is not a valid OCPP message (security event InvalidMessages).
            if self._refused is not None and error.code != "NotSupported":
                self._refused(error.code, _action_of(raw_msg))
            return
        await super().route_message(raw_msg)  # type: ignore[misc]

    def _check_action(self, raw_msg: str) -> None:
        message = json.loads(raw_msg)
        if message[0] != CALL or "_on_action" in self.route_map.get(message[2], {}):
            return
        known = message[2] in self.actions
        code = "NotSupported" if known else "NotImplemented"
        raise FrameError(message[1], code, f"{message[2]} is not {'offered' if known else 'known'}")

    async def _handle_call(self, msg: Any) -> None:
        try:
            await super()._handle_call(msg)  # type: ignore[misc]
        finally:
            self._replied()
