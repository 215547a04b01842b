"""A contactor as the world sees it: a coil driven by a pin, contacts that follow, a fault knob.

Pure and clock-free: the caller passes ``now`` (monotonic seconds) to every method.
"""

from __future__ import annotations

from dataclasses import dataclass

from evsim.world_config import ContactorFault

# The contacts (and the auxiliary feedback contact with them) move this long after the coil.
CONTACT_DELAY_S = 0.02


@dataclass
class ContactorModel:
    """One contactor. ``coil`` is what the relay pin commands; ``contacts`` what is closed.

    Faults: ``"welded"`` keeps the contacts closed and ``"stuck_open"`` keeps them open,
    whatever the coil does; with no fault the contacts follow the coil after
    :data:`CONTACT_DELAY_S`.
    """

    active_high: bool = True
    fault: ContactorFault | None = None
    coil: bool = False
    contacts: bool = False
    _move_at: float | None = None

    def drive(self, level: float | None, now: float) -> None:
        """The relay pin went to ``level`` (0..1, or None when released/floating).

        A released pin de-energizes the coil whatever the polarity: relay boards pull their
        inputs to "off", and a dead Pi drives nothing.
        """
        self.coil = level is not None and (level >= 0.5) == self.active_high
        self._move_at = now + CONTACT_DELAY_S

    def set_fault(self, fault: ContactorFault | None, now: float) -> None:
        self.fault = fault
        self.settle(now)

    def settle(self, now: float) -> bool:
        """Move the contacts if they are due to; returns True when they changed."""
        target = self._target()
        if self.fault is None and self._move_at is not None and now < self._move_at:
            return False
        self._move_at = None
        changed = target != self.contacts
        self.contacts = target
        return changed

    @property
    def pending_until(self) -> float | None:
        """When the contacts are due to move, or None when they are at rest."""
        return self._move_at

    def _target(self) -> bool:
        if self.fault == "welded":
            return True
        if self.fault == "stuck_open":
            return False
        return self.coil
