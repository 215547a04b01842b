"""What the drivers' threads share: calling the agent back safely, and telling a new
presentation of a card from the same one still held on the reader."""

from __future__ import annotations

import logging
from collections.abc import Callable


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
