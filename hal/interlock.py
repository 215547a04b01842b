"""The last software line of defence between the control pilot and the contactor.

The interlock runs on whatever thread reports a pilot change (a driver's polling thread, a
gpiozero callback thread) and opens the contactor there and then, before the event loop, the
CSMS or the disk hear about it (DESIGN.md, Safety). It also refuses any close command while the
EV is not in C or D, whatever the caller believes.
"""

from __future__ import annotations

import threading

from hal.roles import Contactor, PilotState


class SafetyInterlock:
    """Guards one connector's contactor with the latest pilot state."""

    def __init__(self, contactor: Contactor) -> None:
        self._contactor = contactor
        self._lock = threading.Lock()
        self._pilot = PilotState.A
        self._forced_open = False
        self._tripped = False
        contactor.set_closed(False)

    @property
    def pilot(self) -> PilotState:
        return self._pilot

    @property
    def contactor(self) -> Contactor:
        return self._contactor

    def on_pilot(self, state: PilotState) -> None:
        """Record a new pilot state; open the contactor at once unless the EV asks for power."""
        with self._lock:
            self._pilot = state
            if not state.wants_energy:
                self._contactor.set_closed(False)

    def force_open(self, forced: bool) -> None:
        """Hold the contactor open (a fault, shutdown) until released with ``False``."""
        with self._lock:
            self._forced_open = forced
            if forced:
                self._contactor.set_closed(False)

    def trip(self, tripped: bool) -> None:
        """A protective device (the RCD) tripped: hold the contactor open, on the caller's
        thread, until it is reset (``False``). Independent of :meth:`force_open`."""
        with self._lock:
            self._tripped = tripped
            if tripped:
                self._contactor.set_closed(False)

    def request(self, closed: bool) -> bool:
        """Ask for the contactor to close or open; returns what it now is commanded to be.

        A close is refused unless the EV is in C or D and nothing holds the contactor open.
        """
        with self._lock:
            allowed = (closed and self._pilot.wants_energy and not self._forced_open
                       and not self._tripped)
            self._contactor.set_closed(allowed)
            return allowed
