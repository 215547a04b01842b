"""Device faults and the error codes they show as.

A fault is kept on its connector (``Connector.faults``, error code -> info) for as long as it
lasts; a faulted connector is Faulted and its contactor stays open (agent/core/connector.py
derives both). A few faults are warnings of the charger as a whole instead, shown only in
connector 0's errorCode, and a few are latched until the EV leaves.
"""

from __future__ import annotations

from agent.core import events as ev
from agent.core.connector import Connector
from agent.core.context import Context
from agent.core.types import ErrorCode
from hal.roles import PilotState

WARNING_CODES = frozenset({ErrorCode.READER_FAILURE.value})  # reported, but nothing stops
# Held after the device recovers until the EV is unplugged: an RCD trip (hardware.md §1.4:
# "latch a fault"), and a contactor that failed during a session (a stuck-open contactor
# agrees with its command again as soon as it is commanded open; only a new session can tell).
LATCHED_CODES = frozenset({ErrorCode.GROUND_FAILURE.value, ErrorCode.POWER_SWITCH_FAILURE.value})
# The charger's own pilot hardware (EVSE board, PWM/ADC) is lost: the driver then reports E as
# a stand-in, which is not the EV's fault. InternalError, not EVCommunicationError: the link
# that failed is the one inside the charger (RS-485 to the board, SPI to the ADC); the EV may
# be fine, and a CSMS operator must send a technician, not blame the car.
PILOT_LOST = ErrorCode.INTERNAL_ERROR.value


class Faults:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._station_warnings: dict[str, str | None] = {}

    def on_fault(self, event: ev.DeviceFault) -> None:
        """A device fault. Most fault their connector (or, on connector 0, every connector);
        warnings such as a lost reader only show in connector 0's errorCode: remote starts
        and running sessions go on."""
        if event.error_code in WARNING_CODES:
            warnings = self._station_warnings
            if event.active:
                warnings[event.error_code] = event.info
            else:
                warnings.pop(event.error_code, None)
            return
        for connector in self._ctx.targets(event.connector_id):
            self._set(connector, event.error_code, event.active, event.info)

    def _set(self, connector: Connector, code: str, active: bool, info: str | None) -> None:
        if active:
            connector.faults[code] = info
            connector.latched.discard(code)
            if code == PILOT_LOST:  # the E that follows is the driver's stand-in
                connector.faults.pop(ErrorCode.EV_COMMUNICATION_ERROR.value, None)
        elif code in LATCHED_CODES and code in connector.faults and connector.pilot.plugged:
            connector.latched.add(code)  # until the EV is unplugged (track_pilot)
        else:
            connector.faults.pop(code, None)

    def track_pilot(self, connector: Connector, state: PilotState) -> None:
        """A pilot in E or F is EVCommunicationError (unless it is the driver's stand-in for
        lost pilot hardware); an unplug ends the latched faults whose device recovered."""
        code = ErrorCode.EV_COMMUNICATION_ERROR.value
        stand_in = state is PilotState.E and PILOT_LOST in connector.faults
        if state.is_error and not stand_in:
            connector.faults[code] = f"control pilot in state {state.value}"
        else:
            connector.faults.pop(code, None)
        if state is PilotState.A:
            for latched in connector.latched:
                connector.faults.pop(latched, None)
            connector.latched.clear()

    def station_error(self) -> ErrorCode:
        """Connector 0's errorCode: the first of the charger's warnings."""
        if not self._station_warnings:
            return ErrorCode.NO_ERROR
        return ErrorCode(sorted(self._station_warnings)[0])

    def station_info(self) -> str | None:
        """The info of the warning :meth:`station_error` reports."""
        code = self.station_error()
        return self._station_warnings.get(code.value) if code is not ErrorCode.NO_ERROR else None
