"""Effects returned by the core, applied by the runtime strictly in order."""

from __future__ import annotations

from dataclasses import dataclass

from agent.core.messages import CsmsResponse, OutboundReq
from agent.core.schedule import ChargingProfile
from agent.core.types import AuthorizationInfo, LocalLimits, Reservation


@dataclass(frozen=True)
class SetContactor:
    connector_id: int
    closed: bool


@dataclass(frozen=True)
class SetOfferedCurrent:
    connector_id: int
    amps: float


@dataclass(frozen=True)
class SetPhases:
    """Switch the connector's phase relay to ``phases`` (1: L1 only, 3: L1-L3). The core emits
    it only with the contactor open and the offer at "no charging" (agent/core/phases.py)."""

    connector_id: int
    phases: int


@dataclass(frozen=True)
class SetLock:
    """Drive the connector lock (``locked`` or open); the outcome comes back as LockMoved.

    ``answer``: an UnlockConnector.req waits for the outcome (Unlocked / UnlockFailed).
    """

    connector_id: int
    locked: bool
    answer: bool = False


@dataclass(frozen=True)
class ReadMeter:
    """Read the connector's meter now; the answer comes back as MeterSampled or MeterReadFailed."""

    connector_id: int


@dataclass(frozen=True)
class SaveSetting:
    """A configuration key changed: persist it so it survives a restart."""

    name: str
    value: str


@dataclass(frozen=True)
class SaveAvailability:
    """A connector's availability changed (0 = the whole charger): persist it."""

    connector_id: int
    operative: bool


@dataclass(frozen=True)
class CacheIdTag:
    """Remember the CSMS's latest word on an idTag (``info`` None: forget everything)."""

    id_tag: str | None
    info: AuthorizationInfo | None


@dataclass(frozen=True)
class SaveLocalList:
    """The local authorization list changed: persist all of it (``entries``) at ``version``."""

    version: int
    entries: tuple[tuple[str, AuthorizationInfo], ...]


@dataclass(frozen=True)
class SaveReservations:
    """The reservations changed: persist all of them, so a restart keeps what the CSMS
    believes is reserved."""

    reservations: tuple[Reservation, ...]


@dataclass(frozen=True)
class SaveChargingProfiles:
    """The installed charging profiles changed: persist all of them (they survive restarts,
    OCPP 1.6 3.13)."""

    profiles: tuple[ChargingProfile, ...]


@dataclass(frozen=True)
class SaveLocalLimits:
    """A local client set or cleared a connector's limit or phase request: persist both, so
    a restart keeps a home energy manager's cap or a user's pause. Emitted for a repeat of
    the same value too: the store skips a write that would change nothing (SD cards wear
    out), and so writes a value again that it failed to write before."""

    connector_id: int
    limits: LocalLimits


@dataclass(frozen=True)
class Reboot:
    """Restart the agent once the queue has drained (Reset.req): ``hard`` is a Hard reset."""

    hard: bool


@dataclass(frozen=True)
class StartTimer:
    """Arm (or re-arm) the timer ``name``; it fires once, ``delay`` seconds from now."""

    name: str
    delay: float


@dataclass(frozen=True)
class CancelTimer:
    name: str


@dataclass(frozen=True)
class Send:
    """Send ``req`` to the CSMS; its answer comes back as CallAnswered/CallFailed with ``ref``.

    Transaction messages (see :func:`agent.core.messages.is_transaction_message`) are journaled
    and delivered in order, at least once; the others are sent only while the link is up.
    """

    ref: str
    req: OutboundReq


@dataclass(frozen=True)
class OpenTransactionQueue:
    """Registration accepted: queued transaction messages may flow (``open=False`` holds them)."""

    open: bool


@dataclass(frozen=True)
class Reply:
    """The answer to the CsmsCommand being handled."""

    response: CsmsResponse


@dataclass(frozen=True)
class Notice:
    """Something a person watching the charger should see (indicator, log): ``kind`` is one of
    ``accepted``, ``rejected``, ``charging``, ``finished``, ``fault``."""

    connector_id: int
    kind: str
    detail: str = ""


@dataclass(frozen=True)
class AuthorizationDecided:
    """A token was decided on (a record for people and the sessions API, changes nothing).

    ``purpose``: connector | parent_stop | remote | api. ``source``: csms | cache |
    offline_rule | free_vend | charger. ``status`` is the OCPP status (Accepted, Invalid,
    Blocked, Expired, ConcurrentTx) or None when nobody answered; ``reason`` one of
    :data:`agent.core.authorization.REASONS`."""

    connector_id: int
    id_tag: str
    purpose: str
    accepted: bool
    source: str
    status: str | None
    reason: str


Effect = (
    SetContactor
    | SetOfferedCurrent
    | SetPhases
    | SetLock
    | ReadMeter
    | SaveSetting
    | SaveAvailability
    | CacheIdTag
    | SaveLocalList
    | SaveReservations
    | SaveChargingProfiles
    | SaveLocalLimits
    | Reboot
    | StartTimer
    | CancelTimer
    | Send
    | OpenTransactionQueue
    | Reply
    | Notice
    | AuthorizationDecided
)
