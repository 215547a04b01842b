"""The compiled schema check in front of the ocpp library's: same verdicts, same errors."""

from __future__ import annotations

import copy
from typing import Any

import ocpp.messages
import pytest
from ocpp.exceptions import OCPPError
from ocpp.messages import Call, CallResult, _validate_payload

from agent.csms import validation

METER_VALUES = {"connectorId": 1, "transactionId": 7, "meterValue": [{
    "timestamp": "2026-01-01T00:00:00Z",
    "sampledValue": [{"value": "1234.5", "measurand": "Energy.Active.Import.Register",
                      "unit": "Wh"}]}]}
PROFILE = {"connectorId": 1, "csChargingProfiles": {
    "chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
    "chargingProfileKind": "Absolute", "chargingSchedule": {
        "chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 21.4}]}}}

BAD: list[tuple[str, dict[str, Any]]] = [
    ("MeterValues", {"connectorId": "one", "meterValue": []}),  # type
    ("MeterValues", {"meterValue": []}),  # required
    ("MeterValues", {**METER_VALUES, "extra": 1}),  # additionalProperties
    ("Authorize", {"idTag": "X" * 21}),  # maxLength
    ("StatusNotification", {"connectorId": 1, "errorCode": "Nope", "status": "Available"}),
]


def verdict(message: Call | CallResult) -> type[OCPPError] | None:
    try:
        _validate_payload(copy.deepcopy(message), "1.6")
    except OCPPError as error:
        return type(error)
    return None


@pytest.fixture
def library_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ocpp.messages, "get_validator", validation._original_get_validator)


@pytest.mark.parametrize(("action", "payload"), BAD)
def test_a_bad_payload_gets_the_error_the_library_alone_gives(
    action: str, payload: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    validation.install()
    call = Call("1", action, payload)
    with_compiled = verdict(call)
    monkeypatch.setattr(ocpp.messages, "get_validator", validation._original_get_validator)
    assert with_compiled is not None
    assert with_compiled is verdict(call)


def test_good_payloads_pass_through_the_compiled_check() -> None:
    validation.install()
    assert verdict(Call("1", "MeterValues", METER_VALUES)) is None
    assert verdict(Call("2", "SetChargingProfile", PROFILE)) is None  # the Decimal path
    validator = ocpp.messages.get_validator(2, "MeterValues", "1.6")
    assert isinstance(validator, validation._CompiledFirst)
    assert validator._fast is not None  # compiled: the fast path is the one taken


def test_the_library_validates_on_the_loop() -> None:
    validation.install()
    assert ocpp.messages.ASYNC_VALIDATION is False
