"""The enclosure's tamper switch on one GPIO input.

Opening the enclosure (or cutting the switch's wire, where it is wired normally closed to
read "open" when broken) is what the OCPP 1.6 security extension calls tamper detection: the
agent sends the critical security event TamperDetectionActivated. Nothing else happens here:
a tamper switch is a report, not an interlock. :meth:`GpioTamperInput.watch` calls back on
gpiozero's thread on every debounced edge. The input needs an external pull resistor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from hal.gpio import DigitalInput, Pin, PinFactory, digital_input, watch_edges

logger = logging.getLogger(__name__)

BOUNCE_S = 0.05  # a lid switch chatters for a few milliseconds as it moves


class GpioTamperInput:
    """Tamper switch on ``pin``; ``active_high``: a high level means the enclosure is open."""

    def __init__(self, pin: Pin, *, active_high: bool = True,
                 pin_factory: PinFactory | None = None) -> None:
        self._input: DigitalInput = digital_input(pin, active_high=active_high,
                                                  bounce_time=BOUNCE_S, pin_factory=pin_factory)
        self._closed = False

    @property
    def opened(self) -> bool:
        """True while the switch reports the enclosure open (False after close())."""
        return not self._closed and bool(self._input.is_active)

    def watch(self, callback: Callable[[bool], None] | None) -> None:
        """Call ``callback(opened)`` on every change (gpiozero's thread); None stops."""
        watch_edges(self._input, callback, lambda opened: logger.warning(
            "tamper switch: enclosure %s", "opened" if opened else "closed"))

    def close(self) -> None:
        """Stop watching and release the pin. Idempotent."""
        if not self._closed:
            self._closed = True
            self._input.close()
