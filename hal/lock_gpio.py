"""A socket's connector lock: a motor actuator on two GPIO outputs (an H-bridge's "lock" and
"unlock" inputs) and an optional feedback contact (role: ConnectorLock).

:meth:`GpioConnectorLock.lock` energizes the lock output for ``pulse_s`` (the actuator runs
into its end stop), then waits up to ``timeout_s`` from the start for the feedback to say
"locked"; :meth:`unlock` likewise. A lock that does not get there raises
:class:`hal.errors.LockError` (OCPP ConnectorLockFailure). Without a feedback input a pulse
is all there is and nothing can be checked.

Both outputs start off; the two are never on together (the other one is switched off first)
and every pulse ends, whatever happens, in ``finally``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from hal.errors import ConfigurationError, LockError
from hal.gpio import DigitalInput, DigitalOutput, Pin, PinFactory, digital_input, digital_output

logger = logging.getLogger(__name__)

FEEDBACK_POLL_S = 0.01


class GpioConnectorLock:
    """Lock motor on ``lock_pin`` / ``unlock_pin``; feedback on ``feedback_pin`` if wired.

    ``feedback_active_high`` says which input level means "locked"; the input needs an
    external pull resistor. ``active_high=False`` suits active-low driver boards.
    """

    def __init__(
        self,
        lock_pin: Pin,
        unlock_pin: Pin,
        feedback_pin: Pin | None = None,
        *,
        active_high: bool = True,
        feedback_active_high: bool = True,
        pulse_s: float = 0.6,
        timeout_s: float = 2.0,
        pin_factory: PinFactory | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < pulse_s <= timeout_s:
            raise ConfigurationError(f"need 0 < pulse_s <= timeout_s, not {pulse_s}, {timeout_s}")
        self._pulse_s = pulse_s
        self._timeout_s = timeout_s
        self._clock = clock
        self._busy = asyncio.Lock()
        self._released = False
        self._outputs: list[DigitalOutput] = []
        self._feedback: DigitalInput | None = None
        try:
            self._lock_out = self._output(lock_pin, active_high, pin_factory)
            self._unlock_out = self._output(unlock_pin, active_high, pin_factory)
            if feedback_pin is not None:
                self._feedback = digital_input(
                    feedback_pin, active_high=feedback_active_high, pin_factory=pin_factory
                )
        except Exception:
            self.close()
            raise

    @property
    def locked(self) -> bool | None:
        """The feedback contact (True = locked), or None without one or after close()."""
        if self._feedback is None or self._released:
            return None
        return bool(self._feedback.is_active)

    async def lock(self) -> None:
        """Lock the plug; raises LockError if the feedback does not say locked in time."""
        await self._move(self._lock_out, self._unlock_out, locked=True)

    async def unlock(self) -> None:
        """Release the plug; raises LockError if the feedback does not say unlocked in time."""
        await self._move(self._unlock_out, self._lock_out, locked=False)

    def watch_feedback(self, callback: Callable[[bool], None] | None) -> None:
        """Call ``callback(locked)`` on every feedback edge (gpiozero's thread); None stops.

        A change nobody commanded (a plug forced out) is the caller's lock failure.
        """
        feedback = self._feedback
        if feedback is None:
            return
        feedback.when_activated = None if callback is None else (lambda: callback(True))
        feedback.when_deactivated = None if callback is None else (lambda: callback(False))

    def close(self) -> None:
        """Stop the motor and release the pins; the lock stays where it is. Idempotent."""
        if self._released:
            return
        self._released = True
        for output in self._outputs:
            try:
                output.off()
            finally:
                output.close()
        if self._feedback is not None:
            self._feedback.close()

    def _output(self, pin: Pin, active_high: bool, factory: PinFactory | None) -> DigitalOutput:
        output = digital_output(pin, active_high=active_high, pin_factory=factory)
        self._outputs.append(output)
        return output

    async def _move(self, drive: DigitalOutput, other: DigitalOutput, *, locked: bool) -> None:
        word = "lock" if locked else "unlock"
        async with self._busy:
            if self._released:
                raise LockError(f"cannot {word}: the lock driver is released")
            if self.locked is locked:
                return  # already there: no pulse
            started = self._clock()
            other.off()
            drive.on()
            try:
                await asyncio.sleep(self._pulse_s)
            finally:
                drive.off()
            if self._feedback is None:
                logger.debug("lock: %s pulse sent (no feedback wired)", word)
                return
            while self.locked is not locked:
                if self._clock() - started >= self._timeout_s:
                    raise LockError(f"connector did not {word} within {self._timeout_s} s")
                await asyncio.sleep(FEEDBACK_POLL_S)
            logger.info("connector %sed", word)
