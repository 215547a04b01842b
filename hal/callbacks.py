"""What the drivers' threads share: calling the agent back safely, telling a new
presentation of a card from the same one still held on the reader, and a pilot's reports."""

from __future__ import annotations

import logging
from collections.abc import Callable

from hal.roles import PilotState


def call_safely(callback: Callable[..., None] | None, arg: object, logger: logging.Logger,
                who: str) -> None:
    """Call ``callback(arg)`` from a driver thread; an exception in it is logged, never ends
    the thread (the driver must go on watching its device)."""
    if callback is None:
        return
    try:
        callback(arg)
    except Exception:
        logger.exception("%s: callback %r failed", who, callback)


class RepeatFilter:
    """A UID seen again within ``window`` seconds of its previous sighting is the same
    presentation (readers repeat a card held in the field)."""

    def __init__(self, window: float, clock: Callable[[], float]) -> None:
        self._window = window
        self._clock = clock
        self._last: tuple[str, float] | None = None

    def fresh(self, uid: str) -> bool:
        now = self._clock()
        last, self._last = self._last, (uid, now)
        return not (last is not None and last[0] == uid and now - last[1] < self._window)


class PilotReports:
    """What a pilot driver tells the agent, from its thread: each new state once, and a
    pilot lost after ``threshold`` failed reads in a row, then found again.

    A lost pilot is as good as state E: ``on_failure(error)`` fires first, then E goes to
    ``on_change`` (so the interlock opens the contactor on this thread); the failure goes
    first so a receiver knows the E that follows stands in for the lost device, not the EV.
    ``on_failure(None)`` fires once when a read succeeds again.
    """

    def __init__(self, name: str, logger: logging.Logger, threshold: int,
                 on_failure: Callable[[BaseException | None], None] | None) -> None:
        self._name = name
        self._logger = logger
        self._threshold = threshold
        self._on_failure = on_failure
        self.on_change: Callable[[PilotState], None] | None = None
        self._reported: PilotState | None = None
        self._failures = 0
        self._lost = False

    @property
    def state(self) -> PilotState:
        """The last state reported; E before the first one."""
        return self._reported or PilotState.E

    def report(self, state: PilotState) -> None:
        if state is self._reported:
            return
        self._reported = state
        call_safely(self.on_change, state, self._logger, self._name)

    def answered(self) -> None:
        """A read succeeded."""
        self._failures = 0
        if self._lost:
            self._lost = False
            self._logger.info("%s answers again", self._name)
            self.failure(None)

    def failed(self, error: BaseException) -> bool:
        """A read failed; True when this one declared the pilot lost."""
        self._failures += 1
        if self._lost or self._failures < self._threshold:
            return False
        self._lost = True
        self._logger.error("%s lost after %s failed reads: %s", self._name, self._failures,
                           error)
        self.failure(error)
        self.report(PilotState.E)
        return True

    def failure(self, error: BaseException | None) -> None:
        """Tell ``on_failure`` directly (e.g. the PWM refused a duty)."""
        call_safely(self._on_failure, error, self._logger, self._name)
