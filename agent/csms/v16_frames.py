"""Checks of raw OCPP-J 1.6 frames from the CSMS, answered with the 1.6 error codes.

The checks are :mod:`agent.csms.frames`; these are the OCPP-J 1.6 error codes (section 4.2.3
of the JSON specification):

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
action not in OCPP 1.6           NotImplemented (the adapter)
action in 1.6, not supported     NotSupported (the adapter)
===============================  ==============================================
"""

from __future__ import annotations

from agent.csms.frames import MAX_FRAME_CHARS, ErrorCodes, FrameError, check

__all__ = ["MAX_FRAME_CHARS", "V16", "FrameError", "check_frame"]

V16 = ErrorCodes(
    version="1.6",
    not_json="FormationViolation",
    not_rpc="ProtocolError",
    unknown_type="ProtocolError",
    required="OccurenceConstraintViolation",  # sic: the 1.6 spelling
    other="FormationViolation",
)


def check_frame(raw: str | bytes) -> None:
    """Raise :class:`FrameError` for a frame that must be refused; return for a good one."""
    check(raw, V16)
