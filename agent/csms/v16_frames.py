"""Checks of raw OCPP-J 1.6 frames from the CSMS, answered with the 1.6 error codes.

The ``ocpp`` library validates payloads too, but it answers with OCPP 2.0 names
(``FormatViolation``) and ignores frames it cannot parse. Here every bad frame gets the
OCPP-J 1.6 error code (section 4.2.3 of the JSON specification):

===============================  ==============================================
frame                            CALLERROR code
===============================  ==============================================
not JSON, or over the size limit FormationViolation (uniqueId "-1" if unknown)
not ``[2, id, action, {...}]``   ProtocolError
unknown MessageTypeId            ProtocolError
payload: required field missing  OccurenceConstraintViolation
payload: field of wrong type     TypeConstraintViolation
payload: value out of range /    PropertyConstraintViolation
  not in the enumeration
payload: unknown field           FormationViolation
action not in OCPP 1.6           NotImplemented (the library)
action in 1.6, not supported     NotSupported (the library)
===============================  ==============================================
"""

from __future__ import annotations

import json
from typing import Any

from jsonschema.exceptions import ValidationError as SchemaError
from ocpp.messages import get_validator

MAX_FRAME_CHARS = 65536
CALL, CALL_RESULT, CALL_ERROR = 2, 3, 4
UNKNOWN_ID = "-1"

_PROPERTY_VALIDATORS = {"enum", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
                        "pattern", "format", "minLength", "multipleOf", "minItems", "maxItems"}


class FrameError(Exception):
    """A frame the charger refuses; ``code`` is the OCPP 1.6 CALLERROR code."""

    def __init__(self, unique_id: str, code: str, description: str) -> None:
        super().__init__(f"{code}: {description}")
        self.unique_id = unique_id
        self.code = code
        self.description = description

    def to_json(self) -> str:
        return json.dumps([CALL_ERROR, self.unique_id, self.code, self.description[:255], {}])


def check_frame(raw: str | bytes) -> None:
    """Raise :class:`FrameError` for a frame that must be refused; return for a good one."""
    if len(raw) > MAX_FRAME_CHARS:
        raise FrameError(_peek_id(raw), "FormationViolation",
                         f"frame of {len(raw)} characters exceeds {MAX_FRAME_CHARS}")
    try:
        message = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise FrameError(UNKNOWN_ID, "FormationViolation", "frame is not valid JSON") from None
    unique_id = _unique_id(message)
    if not isinstance(message, list) or len(message) < 3 or not isinstance(message[0], int):
        raise FrameError(unique_id, "ProtocolError", "frame is not an OCPP-J message array")
    if message[0] not in (CALL, CALL_RESULT, CALL_ERROR):
        raise FrameError(unique_id, "ProtocolError", f"unknown MessageTypeId {message[0]}")
    if message[0] == CALL:
        _check_call(unique_id, message)


def _check_call(unique_id: str, message: list[Any]) -> None:
    if len(message) != 4 or not isinstance(message[2], str) or not isinstance(message[3], dict):
        raise FrameError(unique_id, "ProtocolError", "a CALL is [2, uniqueId, action, payload]")
    validator = _validator(message[2])
    if validator is None:
        return  # unknown action: the library answers NotImplemented
    error = _first_error(validator, message[3])
    if error is not None:
        raise FrameError(unique_id, _code_for(error), error.message)


def _validator(action: str) -> Any:
    try:
        return get_validator(CALL, action, "1.6")
    except (OSError, ValueError):
        return None


def _first_error(validator: Any, payload: dict[str, Any]) -> SchemaError | None:
    errors = sorted(validator.iter_errors(payload), key=lambda e: list(e.absolute_path))
    return errors[0] if errors else None


def _code_for(error: SchemaError) -> str:
    if error.validator == "required":
        return "OccurenceConstraintViolation"
    if error.validator in ("type", "maxLength"):
        return "TypeConstraintViolation"
    if error.validator in _PROPERTY_VALIDATORS:
        return "PropertyConstraintViolation"
    return "FormationViolation"


def _unique_id(message: object) -> str:
    if isinstance(message, list) and len(message) > 1 and isinstance(message[1], str):
        return message[1][:36]
    return UNKNOWN_ID


def _peek_id(raw: str | bytes) -> str:
    """The uniqueId of an oversized frame, if its head parses."""
    head = raw[:64] if isinstance(raw, str) else raw[:64].decode(errors="replace")
    parts = head.split('"')
    return parts[1][:36] if len(parts) > 2 and head.lstrip("[ ").startswith("2") else UNKNOWN_ID
