"""The trip contact of a residual-current device (RCD, RDC-DD) on one GPIO input.

The RCD itself cuts the supply; this input tells the agent it did, so the contactor is held
open and the fault is reported (OCPP GroundFailure, hardware.md §1.4). :meth:`GpioRcdInput.watch`
calls back on gpiozero's thread on every edge, so the receiver can open the contactor there,
without waiting for the event loop. The input needs an external pull resistor; wire it so a
broken wire reads "tripped" where the RCD's auxiliary contact allows it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from hal.gpio import DigitalInput, Pin, PinFactory, digital_input, watch_edges

logger = logging.getLogger(__name__)


class GpioRcdInput:
    """RCD trip contact on ``pin``; ``active_high``: a high level means tripped."""

    def __init__(self, pin: Pin, *, active_high: bool = True,
                 pin_factory: PinFactory | None = None) -> None:
        self._input: DigitalInput = digital_input(pin, active_high=active_high,
                                                  pin_factory=pin_factory)
        self._closed = False

    @property
    def tripped(self) -> bool:
        """True while the RCD reports a trip (False after close())."""
        return not self._closed and bool(self._input.is_active)

    def watch(self, callback: Callable[[bool], None] | None) -> None:
        """Call ``callback(tripped)`` on every change (gpiozero's thread); None stops."""
        watch_edges(self._input, callback, lambda tripped: logger.log(
            logging.ERROR if tripped else logging.WARNING, "RCD %s",
            "tripped" if tripped else "reset"))

    def close(self) -> None:
        """Stop watching and release the pin. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._input.close()  # gpiozero drops the callbacks with the pin
