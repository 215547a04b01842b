"""A 1<->3 phase relay on one GPIO output, with an optional feedback input (role: PhaseSwitch).

The relay connects L2 and L3 to the contactor while its coil is energized: energized is three
phases, released is one (L1). The output starts in the configured default (three phases
energizes the coil at once; one phase leaves it off, as :mod:`hal.contactor_gpio` starts
open) and :meth:`GpioPhaseSwitch.close` releases the pin. The driver switches when told:
that the contactor is open and the EV paused is the caller's job (agent/core/phases.py). A
feedback input, if wired, reports what the relay's auxiliary contact says.
"""

from __future__ import annotations

import logging
import threading

from hal.errors import ConfigurationError
from hal.gpio import DigitalInput, DigitalOutput, Pin, PinFactory, digital_input, digital_output

logger = logging.getLogger(__name__)

PHASES = (1, 3)


class GpioPhaseSwitch:
    """Phase relay coil on ``pin`` (``active_high=False`` for active-low relay boards);
    auxiliary contact on ``feedback_pin`` (``feedback_active_high``: the level that means
    L2/L3 connected) if wired."""

    def __init__(
        self,
        pin: Pin,
        *,
        active_high: bool = True,
        default_phases: int = 3,
        feedback_pin: Pin | None = None,
        feedback_active_high: bool = True,
        pin_factory: PinFactory | None = None,
    ) -> None:
        if default_phases not in PHASES:
            raise ConfigurationError(f"default_phases must be 1 or 3, not {default_phases}")
        self._lock = threading.Lock()
        self._released = False
        self._output: DigitalOutput = digital_output(
            pin, active_high=active_high, pin_factory=pin_factory)
        self._feedback: DigitalInput | None = None
        if feedback_pin is not None:
            try:
                self._feedback = digital_input(
                    feedback_pin, active_high=feedback_active_high, pin_factory=pin_factory)
            except Exception:
                self._output.close()
                raise
        self._phases = 1
        self.set_phases(default_phases)

    def set_phases(self, phases: int) -> None:
        """Connect three phases (coil on) or one (coil off)."""
        if phases not in PHASES:
            raise ValueError(f"phases must be 1 or 3, not {phases}")
        with self._lock:
            if self._released:
                raise ConfigurationError("phase switch driver is released")
            if phases == 3:
                self._output.on()
            else:
                self._output.off()
            self._phases = phases
        logger.info("phase relay: %s phase(s)", phases)

    @property
    def phases(self) -> int:
        """What the relay was last told."""
        return self._phases

    @property
    def feedback_phases(self) -> int | None:
        """The phases the auxiliary contact says are connected, or None without one."""
        if self._feedback is None or self._released:
            return None
        return 3 if self._feedback.is_active else 1

    def close(self) -> None:
        """Release the pins (the coil drops: one phase). Idempotent."""
        with self._lock:
            if self._released:
                return
            self._released = True
            try:
                self._output.off()
            finally:
                self._output.close()
                if self._feedback is not None:
                    self._feedback.close()
