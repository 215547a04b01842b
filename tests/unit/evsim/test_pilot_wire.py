"""A PWM pilot's wire: plateaus per EV state and fault, the ADC front end."""

from __future__ import annotations

import pytest

from evsim.ev import EvState
from evsim.pilot_wire import adc_level, pilot_letter, plateaus_v


@pytest.mark.parametrize(
    ("state", "faults", "plateaus", "letter"),
    [(EvState.UNPLUGGED, set(), (12.0, -12.0), "A"),
     (EvState.CONNECTED, set(), (9.0, -12.0), "B"),
     (EvState.REQUESTING, set(), (6.0, -12.0), "C"),
     (EvState.REQUESTING, {"diode_failure"}, (6.0, -6.0), "F"),
     (EvState.CONNECTED, {"pilot_e"}, (0.0, 0.0), "E"),
     (EvState.CONNECTED, {"pilot_f"}, (-12.0, -12.0), "F")],
)
def test_plateaus_and_letters(state: EvState, faults: set[str],
                              plateaus: tuple[float, float], letter: str) -> None:
    assert plateaus_v(state, faults) == plateaus
    assert pilot_letter(state, faults, driven=True) == letter


def test_an_undriven_pilot_is_f_and_the_front_end_maps_12_v_onto_full_scale() -> None:
    assert pilot_letter(EvState.CONNECTED, set(), driven=False) == "F"
    assert (adc_level(-12.0), adc_level(0.0), adc_level(12.0), adc_level(15.0)) == (
        0.0, 0.5, 1.0, 1.0)
