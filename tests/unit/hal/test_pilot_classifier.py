"""Pilot voltages -> A-F: levels, hysteresis, diode check, N-of-M debouncing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hal.errors import ConfigurationError
from hal.pilot_classifier import PilotClassifier, PilotThresholds, classify, level_state
from hal.roles import PilotState

T = PilotThresholds()
A, B, C, D, E, F = (PilotState.A, PilotState.B, PilotState.C, PilotState.D, PilotState.E,
                    PilotState.F)


def burst(high: float, low: float = -12.0, n: int = 20, duty: float = 0.5) -> list[float]:
    """``n`` samples of a PWM with plateaus ``high`` and ``low`` (no edges)."""
    k = max(1, round(n * duty))
    return [high] * k + [low] * (n - k)


@pytest.mark.parametrize(
    ("high", "state"),
    [(12.0, A), (11.2, A), (9.0, B), (8.1, B), (6.0, C), (5.0, C), (3.0, D), (2.0, D),
     (0.0, E), (-3.0, E), (-9.0, E), (-12.0, F)],
)
def test_nominal_levels(high: float, state: PilotState) -> None:
    assert level_state(high, T) is state


def test_steady_levels_without_pwm() -> None:
    assert classify([12.0] * 5, T, pwm_active=False) is A
    assert classify([9.0] * 5, T, pwm_active=False) is B  # x1: no PWM, no low plateau
    assert classify([-12.0] * 5, T, pwm_active=False) is F


@pytest.mark.parametrize(
    ("high", "previous", "state"),
    [(7.7, C, C), (7.95, C, B), (7.3, B, B), (7.05, B, C), (7.7, None, B), (7.3, None, C),
     (10.3, A, A), (10.7, B, B), (1.3, D, D), (1.7, E, E)],
)
def test_hysteresis_keeps_the_state_in_force(
    high: float, previous: PilotState | None, state: PilotState
) -> None:
    assert level_state(high, T, previous) is state


def test_diode_check_with_pwm() -> None:
    assert classify(burst(6.0, -12.0), T, pwm_active=True) is C
    assert classify(burst(6.0, -8.8), T, pwm_active=True) is F  # no diode: low follows the EV
    assert classify(burst(9.0, -8.8), T, pwm_active=True) is F
    assert classify(burst(6.0, -8.8), T, pwm_active=False) is C  # no PWM: nothing to check
    assert classify(burst(12.0, -8.8), T, pwm_active=True) is A  # no EV: no diode to check


def test_shorted_pilot_is_e_with_or_without_pwm() -> None:
    assert classify([0.1, -0.2, 0.0], T, pwm_active=True) is E
    assert classify([0.1, -0.2, 0.0], T, pwm_active=False) is E


def test_empty_burst_is_refused() -> None:
    with pytest.raises(ValueError):
        classify([], T, pwm_active=False)


@pytest.mark.parametrize(
    "kwargs",
    [{"b_c": 11.0}, {"hysteresis": -0.1}, {"hysteresis": 1.6}],
)
def test_bad_thresholds(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        PilotThresholds(**kwargs)


def test_bad_debounce() -> None:
    with pytest.raises(ConfigurationError):
        PilotClassifier(confirm=4, window=3)


# -- debouncing --------------------------------------------------------------------------------


def test_a_state_is_reported_once_confirmed() -> None:
    pilot = PilotClassifier(confirm=2, window=3)
    assert pilot.state is None
    assert pilot.feed(burst(12.0), pwm_active=False) is None
    assert pilot.feed(burst(12.0), pwm_active=False) is A
    assert pilot.feed(burst(12.0), pwm_active=False) is None  # no change, no report
    assert pilot.state is A


def test_one_glitch_is_ignored() -> None:
    pilot = PilotClassifier(confirm=2, window=3)
    for _ in range(3):
        pilot.feed(burst(6.0), pwm_active=True)
    assert pilot.state is C
    assert pilot.feed(burst(0.0), pwm_active=True) is None  # one E burst among C bursts
    assert pilot.feed(burst(6.0), pwm_active=True) is None
    assert pilot.feed(burst(9.0), pwm_active=True) is None
    assert pilot.feed(burst(9.0), pwm_active=True) is B


def test_diode_seen_this_session() -> None:
    pilot = PilotClassifier(confirm=1, window=1)
    pilot.feed(burst(12.0), pwm_active=False)
    pilot.feed(burst(9.0), pwm_active=False)
    assert pilot.state is B and not pilot.diode_seen  # no PWM yet: not checked
    pilot.feed(burst(9.0), pwm_active=True)
    assert pilot.diode_seen
    pilot.feed(burst(6.0), pwm_active=False)
    assert pilot.diode_seen  # stays seen while the EV is plugged
    pilot.feed(burst(12.0), pwm_active=False)
    assert pilot.state is A and not pilot.diode_seen


def test_failed_diode_is_f_and_not_seen() -> None:
    pilot = PilotClassifier(confirm=2, window=3)
    pilot.feed(burst(6.0, -8.8), pwm_active=True)
    assert pilot.feed(burst(6.0, -8.8), pwm_active=True) is F
    assert not pilot.diode_seen


def test_reset_forgets() -> None:
    pilot = PilotClassifier(confirm=1, window=1)
    pilot.feed(burst(6.0), pwm_active=True)
    pilot.reset()
    assert pilot.state is None and not pilot.diode_seen


# -- properties --------------------------------------------------------------------------------

NOMINAL = {A: 12.0, B: 9.0, C: 6.0, D: 3.0, E: 0.0}
voltages = st.floats(min_value=-15, max_value=15, allow_nan=False)


@given(st.lists(voltages, min_size=1, max_size=50), st.booleans(),
       st.sampled_from([None, A, B, C, D, E, F]))
def test_any_burst_gives_a_state(samples: list[float], pwm: bool, previous: PilotState | None
                                 ) -> None:
    assert isinstance(classify(samples, T, pwm_active=pwm, previous=previous), PilotState)


@given(st.sampled_from(list(NOMINAL)), st.lists(st.floats(min_value=-1.4, max_value=1.4),
                                                min_size=1, max_size=30))
def test_noise_below_the_margin_never_changes_the_state(state: PilotState, noise: list[float]
                                                        ) -> None:
    samples = [NOMINAL[state] + n for n in noise]
    assert level_state(max(samples), T, state) is state


@given(st.lists(st.sampled_from([A, B, C, E]), min_size=1, max_size=30))
def test_debounced_state_was_seen_confirm_times_in_the_window(script: list[PilotState]) -> None:
    pilot = PilotClassifier(confirm=2, window=3)
    seen: list[PilotState] = []
    for raw in script:
        seen.append(raw)
        reported = pilot.feed(burst(NOMINAL[raw]), pwm_active=False)
        if reported is not None:
            assert reported is raw and seen[-3:].count(raw) >= 2
