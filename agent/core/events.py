"""Events the runtime feeds into :meth:`agent.core.station.Station.handle`."""

from __future__ import annotations

from dataclasses import dataclass

from agent.core.messages import CsmsRequest, InboundConf
from agent.core.types import StopReason
from hal.roles import MeterReading, PilotState


@dataclass(frozen=True)
class Started:
    """The agent is up; every contactor is open. The core begins registration."""


@dataclass(frozen=True)
class LinkUp:
    """The WebSocket to the CSMS is open."""


@dataclass(frozen=True)
class LinkDown:
    """The WebSocket to the CSMS closed; calls in flight have been or will be failed."""


@dataclass(frozen=True)
class PilotChanged:
    connector_id: int
    state: PilotState


@dataclass(frozen=True)
class TokenPresented:
    """A card was read. The core decides which connector it is for."""

    id_tag: str


@dataclass(frozen=True)
class MeterSampled:
    connector_id: int
    reading: MeterReading


@dataclass(frozen=True)
class MeterReadFailed:
    """A ReadMeter effect could not be served."""

    connector_id: int
    detail: str = ""


@dataclass(frozen=True)
class DeviceFault:
    """A device failed (``active=True``) or recovered (``active=False``).

    ``connector_id`` 0 means the whole charger (a shared reader, a shared bus).
    """

    connector_id: int
    error_code: str
    active: bool
    info: str | None = None


@dataclass(frozen=True)
class LockMoved:
    """The runtime drove a connector lock as a SetLock effect asked: ``ok`` False when it did
    not reach ``locked`` in time (``info`` says why)."""

    connector_id: int
    locked: bool
    ok: bool
    info: str | None = None


@dataclass(frozen=True)
class TimerFired:
    name: str


@dataclass(frozen=True)
class CallAnswered:
    """The CSMS answered the call the core sent with ``ref``."""

    ref: str
    conf: InboundConf


@dataclass(frozen=True)
class CallFailed:
    """The call with ``ref`` failed: ``reason`` is "timeout", "offline", "callerror", or
    "dropped" (a MeterValues the full journal gave up, see agent.outbox)."""

    ref: str
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class CsmsCommand:
    """The CSMS sent a command; the core answers with a :class:`agent.core.effects.Reply`."""

    request: CsmsRequest


@dataclass(frozen=True)
class LocalListNotSaved:
    """The local list the core just accepted could not be stored (TC_043_3): take it back."""


@dataclass(frozen=True)
class ChargingProfilesNotSaved:
    """The profiles after the SetChargingProfile just handled could not be stored: the
    charger takes the profile back (it would not survive a restart) and answers Rejected."""


@dataclass(frozen=True)
class StartRequested:
    """A local client (the sessions API) asks to charge ``id_tag`` on ``connector_id``: the
    token is authorized as a card would be (the CSMS, the cache, the offline rules)."""

    id_tag: str
    connector_id: int


@dataclass(frozen=True)
class StartWithdrawn:
    """A local client gives up the start it asked for ``id_tag`` on ``connector_id`` (the
    sessions API: that start FAILED and a new one takes its place). The token the charger
    still holds there, waiting for the plug, is released; a transaction that has begun is
    not touched."""

    id_tag: str
    connector_id: int


@dataclass(frozen=True)
class LocalLimitSet:
    """A local client (API, CLI, MQTT, dashboard) limits ``connector_id`` to ``amps``: None
    clears its limit, 0 pauses charging (the transaction goes on). ``source`` names who."""

    connector_id: int
    amps: float | None
    source: str


@dataclass(frozen=True)
class LocalPhasesSet:
    """A local client asks ``connector_id`` to charge on ``phases`` (1 or 3) through its
    phase relay; None gives the choice back to the charger (docs/smart-charging.md)."""

    connector_id: int
    phases: int | None
    source: str


@dataclass(frozen=True)
class ShutdownRequested:
    """SIGTERM or an ordered stop: open every contactor and end transactions by policy.

    ``reason`` is the StopTransaction reason: Reboot, or PowerLoss when the supply failed and
    a backup keeps the agent up long enough to stop (TC_032_1)."""

    reason: StopReason = StopReason.REBOOT


@dataclass(frozen=True)
class MaintenanceHold:
    """An update waits for the running transactions to end before it installs (``on``), or
    was abandoned (``off``): while held, every connector not in use is Unavailable and takes
    no new session (OCPP 1.6 security white paper L01.FR.07/L01.FR.19). Kept apart from the
    CSMS's ChangeAvailability and never saved."""

    on: bool

Event = (
    Started
    | LinkUp
    | LinkDown
    | PilotChanged
    | TokenPresented
    | MeterSampled
    | MeterReadFailed
    | DeviceFault
    | LockMoved
    | TimerFired
    | CallAnswered
    | CallFailed
    | CsmsCommand
    | LocalListNotSaved
    | ChargingProfilesNotSaved
    | StartRequested
    | StartWithdrawn
    | LocalLimitSet
    | LocalPhasesSet
    | ShutdownRequested
    | MaintenanceHold
)

