"""How the ``ocpp`` library checks payloads against the OCPP JSON schemas, made cheaper.

The library validates every call and every answer, in both directions, with a jsonschema
``Draft4Validator`` (``ocpp.messages.get_validator``), and maps a failure to the OCPP error
code of the CALLERROR by the failing keyword. That check walks the schema in Python for each
message: for a MeterValues call about 0.1 ms on a Raspberry Pi class core, most of the agent's
CPU per message when it replays an offline backlog.

:func:`install` keeps the library's validators and puts a compiled one in front of each
(fastjsonschema turns a schema into a Python function). A payload the compiled check accepts
is valid; any other goes to the library's own validator, which raises the error the library
always raised, so the CALLERROR codes do not change (tests/integration/conformance/
test_bad_input.py). When the two disagree, the library's verdict stands.

Also: the library validates in a thread pool by default (``ocpp.messages.ASYNC_VALIDATION``,
ocpp 2.x). For OCPP's small payloads the hop to a thread and back costs more than the check,
and threads beside fork() are what the library's maintainers were asked to make optional
(mobilityhouse/ocpp #676, #705); the agent validates on the loop, in order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import fastjsonschema
import ocpp.messages

_original_get_validator = ocpp.messages.get_validator
_checked: dict[int, _CompiledFirst] = {}


class _CompiledFirst:
    """A library validator with a compiled check in front of it."""

    def __init__(self, validator: Any) -> None:
        self.validator = validator
        self.schema = validator.schema
        self._fast: Callable[[Any], Any] | None
        try:
            # Formats unchecked, as the library checks none; no messages: the library gives them.
            self._fast = fastjsonschema.compile(validator.schema, use_formats=False,
                                                detailed_exceptions=False)
        except fastjsonschema.JsonSchemaDefinitionException:
            self._fast = None  # a schema it cannot compile: the library alone checks it

    def validate(self, payload: Any) -> None:
        if self._fast is not None:
            try:
                self._fast(payload)
                return
            except Exception:  # invalid, or a payload it cannot judge (Decimals)
                pass
        self.validator.validate(payload)  # raises the library's own error

    def __getattr__(self, name: str) -> Any:
        return getattr(self.validator, name)


def _get_validator(message_type_id: int, action: str, ocpp_version: str,
                   parse_float: Callable[[str], Any] = float) -> Any:
    validator = _original_get_validator(message_type_id, action, ocpp_version, parse_float)
    checked = _checked.get(id(validator))
    if checked is None or checked.validator is not validator:
        checked = _checked[id(validator)] = _CompiledFirst(validator)
    return checked


def install() -> None:
    """Validate on the loop, compiled check first. Idempotent."""
    ocpp.messages.ASYNC_VALIDATION = False
    ocpp.messages.get_validator = _get_validator  # looked up by _validate_payload at each call
