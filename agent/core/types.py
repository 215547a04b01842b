"""Version-neutral vocabulary of the core: time, statuses, authorization, stop reasons.

The string values are OCPP 1.6 spellings because 1.6 has the richest status set; the 2.0.1
adapter maps them onto its own enumerations.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Now:
    """When an event is handled: ``mono`` (monotonic seconds) for timers, ``utc`` for stamps."""

    mono: float
    utc: datetime


class ConnectorStatus(enum.StrEnum):
    AVAILABLE = "Available"
    PREPARING = "Preparing"
    CHARGING = "Charging"
    SUSPENDED_EV = "SuspendedEV"
    SUSPENDED_EVSE = "SuspendedEVSE"
    FINISHING = "Finishing"
    RESERVED = "Reserved"
    UNAVAILABLE = "Unavailable"
    FAULTED = "Faulted"


class ErrorCode(enum.StrEnum):
    NO_ERROR = "NoError"
    CONNECTOR_LOCK_FAILURE = "ConnectorLockFailure"
    EV_COMMUNICATION_ERROR = "EVCommunicationError"
    GROUND_FAILURE = "GroundFailure"
    HIGH_TEMPERATURE = "HighTemperature"
    INTERNAL_ERROR = "InternalError"
    OTHER_ERROR = "OtherError"
    POWER_METER_FAILURE = "PowerMeterFailure"
    POWER_SWITCH_FAILURE = "PowerSwitchFailure"
    READER_FAILURE = "ReaderFailure"


class AuthStatus(enum.StrEnum):
    ACCEPTED = "Accepted"
    BLOCKED = "Blocked"
    EXPIRED = "Expired"
    INVALID = "Invalid"
    CONCURRENT_TX = "ConcurrentTx"


class RegistrationStatus(enum.StrEnum):
    ACCEPTED = "Accepted"
    PENDING = "Pending"
    REJECTED = "Rejected"


class StopReason(enum.StrEnum):
    LOCAL = "Local"
    REMOTE = "Remote"
    EV_DISCONNECTED = "EVDisconnected"
    POWER_LOSS = "PowerLoss"
    HARD_RESET = "HardReset"
    SOFT_RESET = "SoftReset"
    DE_AUTHORIZED = "DeAuthorized"
    EMERGENCY_STOP = "EmergencyStop"
    REBOOT = "Reboot"
    UNLOCK_COMMAND = "UnlockCommand"
    OTHER = "Other"


class RequestStatus(enum.StrEnum):
    """Answer to a CSMS command (RemoteStart, RemoteStop, ...)."""

    ACCEPTED = "Accepted"
    REJECTED = "Rejected"


class TxTrigger(enum.StrEnum):
    """What made a transaction start (2.0.1 triggerReason of TransactionEvent Started)."""

    AUTHORIZED = "Authorized"  # plugged in first, then a token
    CABLE_PLUGGED_IN = "CablePluggedIn"  # a token first, the plug-in started it
    REMOTE_START = "RemoteStart"


@dataclass(frozen=True)
class AuthorizationInfo:
    """What the CSMS (or the cache, or the local list) says of a token. ``group_id`` is the
    1.6 parentIdTag and the 2.0.1 groupIdToken; ``expiry`` the 1.6 expiryDate and the 2.0.1
    cacheExpiryDateTime."""

    status: AuthStatus
    group_id: str | None = None
    expiry: datetime | None = None


@dataclass(frozen=True)
class Reservation:
    """A connector (``connector_id`` 0: any connector) held for a token or its group."""

    reservation_id: int
    connector_id: int
    id_tag: str
    expiry: datetime
    group_id: str | None = None

    def admits(self, id_tag: str, group_id: str | None) -> bool:
        """The reserved token itself, or one of the reserved group (TC_053)."""
        if id_tag.lower() == self.id_tag.lower():
            return True
        return bool(self.group_id and group_id and group_id.lower() == self.group_id.lower())


@dataclass(frozen=True)
class LocalLimits:
    """What local clients (agent/local_limit.py) asked of one connector, kept across
    restarts: the current limit ``(amps, source)``, 0 A pausing, and the 1/3-phase request
    ``(phases, source)``; None where nothing is asked."""

    limit: tuple[float, str] | None = None
    phase_request: tuple[int, str] | None = None
