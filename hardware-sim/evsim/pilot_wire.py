"""The control pilot wire of a connector whose charger drives the pilot itself (PWM + ADC).

The charger's ±12 V driver stage switches the wire between its two plateaus at the PWM's
duty; the EV's resistors pull the high plateau down (+12 V A, +9 V B, +6 V C) and its diode
keeps the low plateau at -12 V (IEC 61851-1 Table A.4). The front end divides -12..+12 V onto
the MCP3008's 0..full scale (the agent's ``adc_low_v``/``adc_high_v`` defaults).

:class:`AdcInput` is what the world tells the charger's simulated MCP3008 over the pin bus:
both plateaus as ADC levels and the sysfs PWM channel that switches between them, so each
conversion samples the wire at a random instant of the period, as a real ADC does. Pure.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from evsim.ev import EvState

FRONT_END_V = (-12.0, 12.0)  # the pilot voltage at ADC level 0 and at full scale
HIGH_PLATEAU_V = {EvState.UNPLUGGED: 12.0, EvState.CONNECTED: 9.0, EvState.REQUESTING: 6.0}
LOW_PLATEAU_V = -12.0
SHORTED_V = 0.0  # pilot_e: the pilot shorted to PE
SPI_PORT, SPI_DEVICE = 0, 0  # SPI0 CE0: /dev/spidev0.0

AdcKey = tuple[int, int, int]  # SPI port, chip select, MCP3008 channel


@dataclass(frozen=True)
class AdcInput:
    """One MCP3008 input: its level (0..1 of full scale) while the PWM output ``pwm`` (a
    sysfs channel directory) is high, and while it is low."""

    high: float
    low: float
    pwm: str


def plateaus_v(state: EvState, faults: Collection[str]) -> tuple[float, float]:
    """The wire's (high, low) plateau in V for an EV in ``state`` and the pilot faults on."""
    if "pilot_e" in faults:
        return SHORTED_V, SHORTED_V
    if "pilot_f" in faults:
        return LOW_PLATEAU_V, LOW_PLATEAU_V
    high = HIGH_PLATEAU_V[state]
    if "diode_failure" in faults and state is not EvState.UNPLUGGED:
        return high, -high  # no diode: the EV's resistors load the negative half too
    return high, LOW_PLATEAU_V


def adc_level(volts: float) -> float:
    """What the front end makes of ``volts`` on the wire: 0..1 of the ADC's full scale."""
    low, high = FRONT_END_V
    return min(max((volts - low) / (high - low), 0.0), 1.0)


def pilot_letter(state: EvState, faults: Collection[str], *, driven: bool) -> str:
    """The IEC state the wire shows (what a correct pilot classifier reads); ``driven`` is
    False while the charger's PWM output is disabled or at 0 % (steady -12 V: F)."""
    if "pilot_e" in faults:
        return "E"
    if not driven or "pilot_f" in faults or "diode_failure" in faults:
        return "F"
    return state.value
