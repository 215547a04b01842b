"""Control pilot voltages -> IEC 61851-1 state (A-F): thresholds, hysteresis, debouncing and
the diode check. Pure: no I/O, no clock.

Userspace cannot sample in step with the 1 kHz PWM, so the driver hands over a burst of
voltages spread over a few periods (hardware.md §1.2, §4.2). The highest sample is the high
plateau, which the EV's resistors pull down (+12 A, +9 B, +6 C, +3 D, 0 E); the lowest is the
low plateau, which must reach -12 V while the PWM runs, or the EV's diode is missing or
shorted (checked before the contactor may close: IEC 61851-1 Table A.4). A steady -12 V with no
high plateau is F.

Boundaries lie halfway between the nominal levels; ``hysteresis`` moves a boundary away from
the state in force, so noise near it does not flip the state. A new state is reported only
when ``confirm`` of the last ``window`` bursts agree (N-of-M).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from hal.errors import ConfigurationError
from hal.roles import PilotState

_LEVEL_STATES = (PilotState.A, PilotState.B, PilotState.C, PilotState.D, PilotState.E)


@dataclass(frozen=True)
class PilotThresholds:
    """Boundaries in volts on the pilot wire (after undoing the front end's scaling).

    The high plateau above ``a_b`` is A, above ``b_c`` B, above ``c_d`` C, above ``d_e`` D,
    above ``e_f`` E (about 0 V: pilot shorted to PE) and F at or below it (steady -12 V).
    With the PWM running, a low plateau above ``diode_low`` is a failed diode check.
    """

    a_b: float = 10.5
    b_c: float = 7.5
    c_d: float = 4.5
    d_e: float = 1.5
    e_f: float = -10.0
    diode_low: float = -10.0
    hysteresis: float = 0.4

    def __post_init__(self) -> None:
        edges = self.edges
        if any(upper <= lower for upper, lower in pairwise(edges)):
            raise ConfigurationError(f"pilot thresholds must fall strictly: {edges}")
        gaps = [upper - lower for upper, lower in pairwise(edges)]
        if not 0 <= self.hysteresis < min(gaps) / 2:
            raise ConfigurationError(
                f"pilot hysteresis must be >= 0 and below half the smallest gap ({min(gaps)} V)"
            )

    @property
    def edges(self) -> tuple[float, float, float, float, float]:
        return (self.a_b, self.b_c, self.c_d, self.d_e, self.e_f)


def level_state(
    high: float, thresholds: PilotThresholds, previous: PilotState | None = None
) -> PilotState:
    """The state the high plateau ``high`` (V) says, with hysteresis around ``previous``."""
    h = thresholds.hysteresis
    lower_states = (*_LEVEL_STATES[1:], PilotState.F)
    for edge, upper, lower in zip(thresholds.edges, _LEVEL_STATES, lower_states, strict=True):
        shift = -h if previous is upper else h if previous is lower else 0.0
        if high > edge + shift:
            return upper
    return PilotState.F


def diode_ok(low: float, thresholds: PilotThresholds) -> bool:
    """True when the low plateau reaches -12 V: the EV's diode blocks the negative half."""
    return low <= thresholds.diode_low


def classify(
    samples: Sequence[float],
    thresholds: PilotThresholds,
    *,
    pwm_active: bool,
    previous: PilotState | None = None,
) -> PilotState:
    """The state one burst of pilot voltages shows.

    With ``pwm_active`` (0 % < duty < 100 %) an EV in B, C or D whose low plateau does not
    reach -12 V fails the diode check: F.
    """
    if not samples:
        raise ValueError("a pilot burst needs at least one sample")
    state = level_state(max(samples), thresholds, previous)
    if pwm_active and state.plugged and not diode_ok(min(samples), thresholds):
        return PilotState.F
    return state


class PilotClassifier:
    """Bursts in, debounced states out; remembers whether the diode was seen this session."""

    def __init__(
        self,
        thresholds: PilotThresholds | None = None,
        *,
        confirm: int = 2,
        window: int = 3,
    ) -> None:
        if not 1 <= confirm <= window:
            raise ConfigurationError(f"need 1 <= confirm <= window, not {confirm} of {window}")
        self.thresholds = thresholds or PilotThresholds()
        self._confirm = confirm
        self._recent: deque[PilotState] = deque(maxlen=window)
        self._state: PilotState | None = None
        self._diode_seen = False

    @property
    def state(self) -> PilotState | None:
        """The debounced state, or None before ``confirm`` bursts agreed on one."""
        return self._state

    @property
    def diode_seen(self) -> bool:
        """True once the low plateau reached -12 V with an EV plugged; False again after A.

        The contactor may close only after this (IEC 61851-1 Table A.4 footnote).
        """
        return self._diode_seen

    def feed(self, samples: Sequence[float], *, pwm_active: bool) -> PilotState | None:
        """Classify one burst; returns the new debounced state when it changed, else None."""
        raw = classify(samples, self.thresholds, pwm_active=pwm_active, previous=self._state)
        if pwm_active and raw.plugged:
            self._diode_seen = True  # classify() returned F had the diode been missing
        self._recent.append(raw)
        if raw is self._state or self._recent.count(raw) < self._confirm:
            return None
        self._state = raw
        if raw is PilotState.A:
            self._diode_seen = False
        return raw

    def reset(self) -> None:
        """Forget everything (after the ADC was lost): the next states need confirming."""
        self._recent.clear()
        self._state = None
        self._diode_seen = False
