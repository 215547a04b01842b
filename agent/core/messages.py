"""Messages between the core and the CSMS, independent of the OCPP version.

Outbound: what the charger asks of the CSMS (``*Req``) and what the CSMS answers (``*Conf``).
Inbound: what the CSMS commands (``Csms*``); the core answers each with a response value.
Transaction messages carry ``tx_ref``, the charger's own number for a transaction; the delivery
layer substitutes the CSMS's transactionId once StartTransaction has been confirmed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from agent.core.types import (
    ConnectorStatus,
    ErrorCode,
    IdTagInfo,
    RegistrationStatus,
    RequestStatus,
    StopReason,
)

# --- what the charger sends -------------------------------------------------------------


@dataclass(frozen=True)
class BootNotificationReq:
    vendor: str
    model: str
    serial_number: str | None = None
    firmware_version: str | None = None


@dataclass(frozen=True)
class HeartbeatReq:
    pass


@dataclass(frozen=True)
class StatusNotificationReq:
    connector_id: int
    status: ConnectorStatus
    error_code: ErrorCode
    timestamp: datetime
    info: str | None = None
    vendor_error_code: str | None = None


@dataclass(frozen=True)
class AuthorizeReq:
    id_tag: str


@dataclass(frozen=True)
class SampledValue:
    """One measurand of a sample, already in OCPP units (Wh, W, A, V, Hz)."""

    measurand: str
    value: float
    unit: str
    phase: str | None = None


@dataclass(frozen=True)
class MeterSample:
    timestamp: datetime
    values: tuple[SampledValue, ...]
    context: str = "Sample.Periodic"


@dataclass(frozen=True)
class StartTransactionReq:
    tx_ref: int
    connector_id: int
    id_tag: str
    meter_start_wh: int
    timestamp: datetime
    reservation_id: int | None = None


@dataclass(frozen=True)
class MeterValuesReq:
    connector_id: int
    tx_ref: int | None
    samples: tuple[MeterSample, ...]


@dataclass(frozen=True)
class StopTransactionReq:
    tx_ref: int
    meter_stop_wh: int
    timestamp: datetime
    reason: StopReason
    id_tag: str | None = None
    transaction_data: tuple[MeterSample, ...] = ()


@dataclass(frozen=True)
class DiagnosticsStatusReq:
    status: str = "Idle"


@dataclass(frozen=True)
class FirmwareStatusReq:
    status: str = "Idle"


OutboundReq = (
    BootNotificationReq
    | HeartbeatReq
    | StatusNotificationReq
    | AuthorizeReq
    | StartTransactionReq
    | MeterValuesReq
    | StopTransactionReq
    | DiagnosticsStatusReq
    | FirmwareStatusReq
)

TRANSACTION_MESSAGES = (StartTransactionReq, MeterValuesReq, StopTransactionReq)


def is_transaction_message(req: OutboundReq) -> bool:
    """True for messages that must be journaled and delivered in order, at least once."""
    if isinstance(req, MeterValuesReq):
        return req.tx_ref is not None
    return isinstance(req, StartTransactionReq | StopTransactionReq)


# --- what the CSMS answers --------------------------------------------------------------


@dataclass(frozen=True)
class BootNotificationConf:
    status: RegistrationStatus
    interval: int
    current_time: datetime | None = None


@dataclass(frozen=True)
class HeartbeatConf:
    current_time: datetime | None = None


@dataclass(frozen=True)
class AuthorizeConf:
    id_tag_info: IdTagInfo


@dataclass(frozen=True)
class StartTransactionConf:
    transaction_id: int
    id_tag_info: IdTagInfo


@dataclass(frozen=True)
class StopTransactionConf:
    id_tag_info: IdTagInfo | None = None


@dataclass(frozen=True)
class EmptyConf:
    """StatusNotification.conf and MeterValues.conf carry nothing."""


InboundConf = (
    BootNotificationConf
    | HeartbeatConf
    | AuthorizeConf
    | StartTransactionConf
    | StopTransactionConf
    | EmptyConf
)

# --- what the CSMS commands, and our answers --------------------------------------------


@dataclass(frozen=True)
class CsmsRemoteStart:
    id_tag: str
    connector_id: int | None = None


@dataclass(frozen=True)
class CsmsRemoteStop:
    transaction_id: int


@dataclass(frozen=True)
class CsmsChangeAvailability:
    connector_id: int
    operative: bool


@dataclass(frozen=True)
class CsmsReset:
    hard: bool


@dataclass(frozen=True)
class CsmsUnlockConnector:
    connector_id: int


@dataclass(frozen=True)
class CsmsTriggerMessage:
    message: str  # the OCPP 1.6 MessageTrigger name, e.g. "StatusNotification"
    connector_id: int | None = None


@dataclass(frozen=True)
class CsmsClearCache:
    pass


@dataclass(frozen=True)
class CsmsDataTransfer:
    vendor_id: str
    message_id: str | None = None
    data: str | None = None


@dataclass(frozen=True)
class CsmsSendLocalList:
    version: int
    full: bool  # Full replaces the list; Differential adds, updates and (no info) removes
    entries: tuple[tuple[str, IdTagInfo | None], ...] = ()


@dataclass(frozen=True)
class CsmsGetLocalListVersion:
    pass


@dataclass(frozen=True)
class LocalListVersionResult:
    version: int


@dataclass(frozen=True)
class CsmsGetConfiguration:
    keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class CsmsChangeConfiguration:
    key: str
    value: str


@dataclass(frozen=True)
class ConfigurationEntry:
    key: str
    value: str | None
    readonly: bool


@dataclass(frozen=True)
class GetConfigurationResult:
    entries: tuple[ConfigurationEntry, ...]
    unknown_keys: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class ChangeConfigurationResult:
    status: str  # Accepted | Rejected | RebootRequired | NotSupported


@dataclass(frozen=True)
class CommandResult:
    status: RequestStatus


@dataclass(frozen=True)
class StatusResult:
    """An answer whose status is not just Accepted/Rejected (Scheduled, Unlocked,
    NotSupported, NotImplemented, UnknownVendorId, ...), in OCPP 1.6 spelling."""

    status: str


CsmsRequest = (
    CsmsRemoteStart
    | CsmsRemoteStop
    | CsmsGetConfiguration
    | CsmsChangeConfiguration
    | CsmsChangeAvailability
    | CsmsReset
    | CsmsUnlockConnector
    | CsmsTriggerMessage
    | CsmsClearCache
    | CsmsDataTransfer
    | CsmsSendLocalList
    | CsmsGetLocalListVersion
)
CsmsResponse = (
    CommandResult
    | StatusResult
    | GetConfigurationResult
    | ChangeConfigurationResult
    | LocalListVersionResult
)
