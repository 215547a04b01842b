"""The hardware roles the agent drives, as protocols, and the values they exchange.

Value types here are plain, immutable and free of I/O, so that ``agent.core`` may import them.
Every driver in ``hal`` satisfies exactly one role; the composition root picks drivers by name.

Threading contract: callbacks registered with ``on_change``/``on_token`` may run on a driver's
own thread. Safety actions (opening the contactor) happen there; everything else must be
handed to the event loop by the receiver (``loop.call_soon_threadsafe``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


class PilotState(enum.Enum):
    """IEC 61851-1 control pilot state as seen by the EVSE."""

    A = "A"  # no EV
    B = "B"  # EV connected, not ready
    C = "C"  # EV ready, charging allowed
    D = "D"  # EV ready, ventilation required
    E = "E"  # CP shorted to PE / EVSE off: error
    F = "F"  # EVSE not available, or diode check failed

    @property
    def plugged(self) -> bool:
        """True when an EV is connected (B, C or D)."""
        return self in (PilotState.B, PilotState.C, PilotState.D)

    @property
    def wants_energy(self) -> bool:
        """True when the EV asks for power (C or D): the only states the contactor may close in."""
        return self in (PilotState.C, PilotState.D)

    @property
    def is_error(self) -> bool:
        return self in (PilotState.E, PilotState.F)


@dataclass(frozen=True)
class MeterReading:
    """One consistent sample of an energy meter.

    ``energy_wh`` is the import energy register, the only field every meter has; the others
    are None when the meter or its register map lacks them. Per-phase tuples are (L1, L2, L3).
    """

    energy_wh: float
    power_w: float | None = None
    voltage_v: tuple[float, float, float] | None = None
    current_a: tuple[float, float, float] | None = None
    frequency_hz: float | None = None


TokenCallback = Callable[[str], None]
PilotCallback = Callable[[PilotState], None]


@runtime_checkable
class Contactor(Protocol):
    """The power switch of one connector. Starts open; ``close()`` of the driver opens it."""

    def set_closed(self, closed: bool) -> None:
        """Command the contactor. Opening never fails and never blocks on I/O."""

    @property
    def commanded_closed(self) -> bool:
        """What the contactor was last told to be."""

    @property
    def feedback_closed(self) -> bool | None:
        """What the auxiliary contact says, or None when no feedback input is wired."""

    def close(self) -> None:
        """Open the contactor and release the pins. Idempotent."""


@runtime_checkable
class PhaseSwitch(Protocol):
    """A relay that connects L2 and L3 of a connector (1<->3 phase switching). The caller
    switches it only with the contactor open and the EV paused."""

    def set_phases(self, phases: int) -> None:
        """Connect 1 or 3 phases."""

    @property
    def phases(self) -> int:
        """What the relay was last told."""

    @property
    def feedback_phases(self) -> int | None:
        """What the auxiliary contact says, or None when no feedback input is wired."""

    def close(self) -> None:
        """Release the pins. Idempotent."""


@runtime_checkable
class ControlPilot(Protocol):
    """The control pilot of one connector: EV state in, offered current out."""

    async def start(self, on_change: PilotCallback) -> None:
        """Begin watching; ``on_change`` runs on the driver's thread for every new state."""

    @property
    def state(self) -> PilotState:
        """The last state read."""

    async def set_offered_current(self, amps: float) -> None:
        """Offer ``amps`` to the EV (0 means no charging: PWM off / state x1)."""

    async def aclose(self) -> None:
        """Stop watching and withdraw the offer. Idempotent."""


@runtime_checkable
class EnergyMeter(Protocol):
    """An energy meter read on demand."""

    async def read(self) -> MeterReading:
        """Read one sample; raises :class:`hal.errors.MeterError` when the meter fails."""

    async def aclose(self) -> None:
        """Release the bus. Idempotent."""


@runtime_checkable
class TokenReader(Protocol):
    """An identification reader that reports each presentation of a token once."""

    async def start(self, on_token: TokenCallback) -> None:
        """Begin reading; ``on_token`` gets the UID as uppercase hex (at most 20 chars)."""

    async def aclose(self) -> None:
        """Stop reading and release the port. Idempotent."""


@runtime_checkable
class ConnectorLock(Protocol):
    """The motor lock of a socket outlet: holds the plug while a session may draw power.

    Fixed-cable chargers have none (UnlockConnector answers NotSupported there).
    """

    async def lock(self) -> None:
        """Drive the lock closed; raises :class:`hal.errors.LockError` if it does not lock."""

    async def unlock(self) -> None:
        """Drive the lock open; raises :class:`hal.errors.LockError` if it does not open."""

    @property
    def locked(self) -> bool | None:
        """What the lock's feedback contact says, or None when no feedback is wired."""

    def close(self) -> None:
        """Stop the motor and release the pins (the lock stays where it is). Idempotent."""


class Indication(enum.StrEnum):
    """What an indicator shows. ``accepted`` and ``rejected`` are short signals, after which
    the indicator returns to the last lasting one (``idle``, ``charging``, ``fault``,
    ``offline``)."""

    IDLE = "idle"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    CHARGING = "charging"
    FAULT = "fault"
    OFFLINE = "offline"

    @property
    def transient(self) -> bool:
        return self in (Indication.ACCEPTED, Indication.REJECTED)


@runtime_checkable
class Indicator(Protocol):
    """LEDs and/or a buzzer telling the driver what the charger is doing."""

    def show(self, kind: Indication) -> None:
        """Show ``kind`` at once; never blocks and never raises for a hardware problem."""

    def close(self) -> None:
        """Switch everything off and release the pins. Idempotent."""
