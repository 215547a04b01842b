"""A contactor on one GPIO output, with an optional auxiliary-contact input (role: Contactor).

The output starts inactive (contactor open) and :meth:`GpioContactor.close` switches it off
before releasing the pin; the hardware must also hold the coil off while the pin floats
(DESIGN.md, Safety). The driver reports what the auxiliary contact says; comparing it with the
command (weld / failure to close) is the caller's job, with a settling time it chooses.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from hal.errors import ContactorError
from hal.gpio import DigitalInput, DigitalOutput, Pin, PinFactory, digital_input, digital_output

logger = logging.getLogger(__name__)

FeedbackCallback = Callable[[bool], None]


class GpioContactor:
    """Contactor coil on ``pin``; auxiliary contact on ``feedback_pin`` if wired.

    ``active_high=False`` suits active-low relay boards. ``feedback_active_high`` says which
    input level means "contactor closed"; the input needs an external pull resistor.
    """

    def __init__(
        self,
        pin: Pin,
        active_high: bool = True,
        feedback_pin: Pin | None = None,
        feedback_active_high: bool = True,
        pin_factory: PinFactory | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._commanded = False
        self._closed_device = False
        self._output: DigitalOutput = digital_output(
            pin, active_high=active_high, pin_factory=pin_factory
        )
        self._feedback: DigitalInput | None = None
        if feedback_pin is not None:
            try:
                self._feedback = digital_input(
                    feedback_pin, active_high=feedback_active_high, pin_factory=pin_factory
                )
            except Exception:
                self._output.close()
                raise

    def set_closed(self, closed: bool) -> None:
        """Switch the coil. Opening always works; closing after :meth:`close` raises."""
        with self._lock:
            if self._closed_device:
                if closed:
                    raise ContactorError("contactor driver is released; cannot close")
                return
            if closed:
                self._output.on()
            else:
                self._output.off()
            self._commanded = closed

    @property
    def commanded_closed(self) -> bool:
        return self._commanded

    @property
    def feedback_closed(self) -> bool | None:
        """The auxiliary contact (True = closed), or None without a feedback input."""
        if self._feedback is None or self._closed_device:
            return None
        return bool(self._feedback.is_active)

    def watch_feedback(self, callback: FeedbackCallback | None) -> None:
        """Call ``callback(closed)`` on every feedback edge (on gpiozero's thread); None stops.

        Without a feedback input this is a no-op.
        """
        feedback = self._feedback
        if feedback is None:
            return
        if callback is None:
            feedback.when_activated = None
            feedback.when_deactivated = None
            return
        feedback.when_activated = lambda: callback(True)
        feedback.when_deactivated = lambda: callback(False)

    def close(self) -> None:
        """Open the contactor, then release the pins. Idempotent."""
        with self._lock:
            if self._closed_device:
                return
            self._closed_device = True
            self._commanded = False
            try:
                self._output.off()
            finally:
                self._output.close()
                if self._feedback is not None:
                    self._feedback.close()
        logger.debug("contactor released")
