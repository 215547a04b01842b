"""The EV and the power path of one connector, as pure physics: no I/O, no clock.

The world tells a :class:`PowerPath` what the EVSE offers and whether the contactor's contacts
are closed, then calls :meth:`PowerPath.advance` with the time that passed. Energy only ever
accumulates while current flows, so the meter's register stays consistent with its power.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

NOMINAL_VOLTAGE_V = 230.0
NOMINAL_FREQUENCY_HZ = 50.0
# IEC 61851-1: below 6 A the PWM offer does not allow charging.
MIN_OFFER_A = 6.0


class EvState(enum.Enum):
    """What the EV shows on the control pilot, in IEC 61851-1 letters."""

    UNPLUGGED = "A"
    CONNECTED = "B"  # plugged in, not asking for power
    REQUESTING = "C"  # plugged in, asking for power


@dataclass
class Ev:
    """One EV: its pilot state, its own current limit and the load the bench asks of it.

    ``draw_a`` None means "as much as allowed"; a number caps the draw further (a full
    battery is ``draw_a=0``). ``phases`` is how many phases the EV charges on (1 or 3).
    """

    max_current_a: float = 32.0
    phases: int = 3
    state: EvState = EvState.UNPLUGGED
    draw_a: float | None = None

    @property
    def plugged(self) -> bool:
        return self.state is not EvState.UNPLUGGED

    def current_drawn(self, offered_a: float, contactor_closed: bool) -> float:
        """The per-phase current the EV takes, in A.

        Zero unless the EV is plugged, in C, the contacts are closed and the offer is at least
        6 A; otherwise the least of the offer, the EV's own limit and the bench's draw.
        """
        if self.state is not EvState.REQUESTING or not contactor_closed:
            return 0.0
        if offered_a < MIN_OFFER_A:
            return 0.0
        limit = min(offered_a, self.max_current_a)
        if self.draw_a is not None:
            limit = min(limit, self.draw_a)
        return max(0.0, limit)


@dataclass
class PowerPath:
    """One connector's power path: supply, contactor, EV, and the meter's import register.

    The caller sets ``offered_a`` and ``contactor_closed`` whenever they change and calls
    :meth:`advance` for each interval; the current over an interval is the one that held at its
    start, so update the inputs only after advancing to the moment they changed.
    """

    ev: Ev
    energy_wh: float = 0.0
    offered_a: float = 0.0
    contactor_closed: bool = False
    connected_phases: int = 3  # 1 while a phase relay disconnects L2 and L3

    @property
    def phases(self) -> int:
        """The phases the EV draws on: its own, on those the supply connects."""
        return min(self.ev.phases, self.connected_phases)

    @property
    def current_a(self) -> float:
        """Per-phase current flowing now."""
        return self.ev.current_drawn(self.offered_a, self.contactor_closed)

    @property
    def power_w(self) -> float:
        """Total active power flowing now (phases x 230 V x I, unity power factor)."""
        return self.phases * NOMINAL_VOLTAGE_V * self.current_a

    @property
    def phase_currents_a(self) -> tuple[float, float, float]:
        """(L1, L2, L3) currents; a single-phase EV, or any EV with L2 and L3 switched off,
        loads L1 only."""
        current = self.current_a
        if self.phases >= 3:
            return (current, current, current)
        return (current, 0.0, 0.0)

    def advance(self, dt_s: float) -> float:
        """Integrate ``dt_s`` seconds at the present power; returns the Wh added (0 if idle)."""
        if dt_s <= 0:
            return 0.0
        added = self.power_w * dt_s / 3600.0
        self.energy_wh += added
        return added
