"""Messages between the core and the CSMS, independent of the OCPP version.

Outbound: what happened on the charger, as it tells the CSMS (:data:`OutboundReq`), and what
the CSMS answers (:data:`InboundConf`). Inbound: what the CSMS commands (``Csms*``); the core
answers each with a response value. Names say what happened, not which OCPP message carries
it: each adapter (agent/csms/v16.py, agent/csms/v201.py) maps them onto its version's
messages (docs/architecture.md has the table).

Transaction messages carry ``tx_ref``, the charger's own number for a transaction; where the
CSMS makes the transaction id (1.6), the delivery layer substitutes it once the start has been
confirmed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from agent.core.schedule import ChargingProfile, CompositePeriod
from agent.core.types import (
    AuthorizationInfo,
    ConnectorStatus,
    ErrorCode,
    RegistrationStatus,
    RequestStatus,
    StopReason,
    TxTrigger,
)

# --- what the charger sends -------------------------------------------------------------


@dataclass(frozen=True)
class RegistrationRequest:
    """The charger introduces itself (1.6 and 2.0.1 BootNotification)."""

    vendor: str
    model: str
    serial_number: str | None = None
    firmware_version: str | None = None


@dataclass(frozen=True)
class HeartbeatRequest:
    pass


@dataclass(frozen=True)
class StatusChanged:
    """A connector's status (``connector_id`` 0: the charger as a whole). In 2.0.1 terms
    ``connector_id`` is the evseId; each of our EVSEs has one connector."""

    connector_id: int
    status: ConnectorStatus
    error_code: ErrorCode
    timestamp: datetime
    info: str | None = None
    vendor_error_code: str | None = None


@dataclass(frozen=True)
class AuthorizationRequest:
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
class TransactionStarted:
    """Energy transfer may begin: the start meter value is read. ``seq_no`` counts the
    transaction's messages from 0 (this one) without gaps; ``trigger`` says what started it."""

    tx_ref: int
    connector_id: int
    id_tag: str
    meter_start_wh: int
    timestamp: datetime
    seq_no: int = 0
    trigger: TxTrigger = TxTrigger.AUTHORIZED
    reservation_id: int | None = None
    remote_start_id: int | None = None


@dataclass(frozen=True)
class TransactionUpdated:
    """Meter samples taken during a transaction (periodic or clock-aligned)."""

    tx_ref: int
    connector_id: int
    samples: tuple[MeterSample, ...]
    seq_no: int = 0


@dataclass(frozen=True)
class TransactionEnded:
    """The transaction is over: the stop meter value, why, and (``samples``) the data the
    CSMS asked to get with the stop (1.6 StopTxn*Data)."""

    tx_ref: int
    connector_id: int
    meter_stop_wh: int
    timestamp: datetime
    reason: StopReason
    seq_no: int = 0
    id_tag: str | None = None
    samples: tuple[MeterSample, ...] = ()


@dataclass(frozen=True)
class MeterValuesReported:
    """Meter samples outside any transaction (clock-aligned while idle, or triggered)."""

    connector_id: int
    samples: tuple[MeterSample, ...]


@dataclass(frozen=True)
class DiagnosticsStatusReport:
    status: str = "Idle"


@dataclass(frozen=True)
class FirmwareStatusReport:
    status: str = "Idle"


@dataclass(frozen=True)
class SignedFirmwareStatusReport:
    """The security extension's SignedFirmwareStatusNotification; ``request_id`` is the
    SignedUpdateFirmware's (None when no signed update is known: Idle)."""

    status: str = "Idle"
    request_id: int | None = None


@dataclass(frozen=True)
class LogStatusReport:
    """LogStatusNotification of a GetLog upload (security extension)."""

    status: str = "Idle"
    request_id: int | None = None


@dataclass(frozen=True)
class SecurityEventRaised:
    """A security event (agent.security.events); journaled and delivered like transaction
    messages, after registration."""

    type: str
    timestamp: datetime
    tech_info: str | None = None


@dataclass(frozen=True)
class CertificateSigningRequest:
    csr: str  # PEM PKCS#10


OutboundReq = (
    RegistrationRequest
    | HeartbeatRequest
    | StatusChanged
    | AuthorizationRequest
    | TransactionStarted
    | TransactionUpdated
    | TransactionEnded
    | MeterValuesReported
    | DiagnosticsStatusReport
    | FirmwareStatusReport
    | SignedFirmwareStatusReport
    | LogStatusReport
    | SecurityEventRaised
    | CertificateSigningRequest
)

TransactionMessage = TransactionStarted | TransactionUpdated | TransactionEnded
TRANSACTION_MESSAGES = (TransactionStarted, TransactionUpdated, TransactionEnded)


def is_transaction_message(req: OutboundReq) -> bool:
    """True for messages that must be journaled and delivered in order, at least once
    (security events too: the security extension has them queued like transactions)."""
    return isinstance(req, (*TRANSACTION_MESSAGES, SecurityEventRaised))


# --- what the CSMS answers --------------------------------------------------------------


@dataclass(frozen=True)
class RegistrationResult:
    status: RegistrationStatus
    interval: int
    current_time: datetime | None = None


@dataclass(frozen=True)
class HeartbeatResult:
    current_time: datetime | None = None


@dataclass(frozen=True)
class AuthorizationResult:
    info: AuthorizationInfo


@dataclass(frozen=True)
class TransactionStartResult:
    """``transaction_id``: the CSMS's id for the transaction where the CSMS makes it (1.6);
    None where the charger does (2.0.1). ``info`` None: the CSMS said nothing of the token."""

    info: AuthorizationInfo | None
    transaction_id: int | None = None


@dataclass(frozen=True)
class TransactionEndResult:
    info: AuthorizationInfo | None = None


@dataclass(frozen=True)
class Ack:
    """An answer that carries nothing (StatusNotification, MeterValues, ...)."""


@dataclass(frozen=True)
class CertificateSigningResult:
    accepted: bool


InboundConf = (
    RegistrationResult
    | HeartbeatResult
    | AuthorizationResult
    | TransactionStartResult
    | TransactionEndResult
    | Ack
    | CertificateSigningResult
)

# --- what the CSMS commands, and our answers --------------------------------------------


@dataclass(frozen=True)
class CsmsRemoteStart:
    id_tag: str
    connector_id: int | None = None
    remote_start_id: int | None = None  # 2.0.1 remoteStartId, echoed in TransactionStarted
    charging_profile: ChargingProfile | None = None  # a TxProfile for the transaction (TC_059)


@dataclass(frozen=True)
class CsmsRemoteStop:
    """Stop by the CSMS's ``transaction_id`` (1.6) or by our ``tx_ref`` (2.0.1, where the
    charger made the transaction's id)."""

    transaction_id: int | None = None
    tx_ref: int | None = None


@dataclass(frozen=True)
class CsmsReserveNow:
    """Hold ``connector_id`` (0: any connector of the charger) for ``id_tag`` or its group
    until ``expiry``; the same ``reservation_id`` again replaces the reservation."""

    connector_id: int
    expiry: datetime
    id_tag: str
    reservation_id: int
    group_id: str | None = None


@dataclass(frozen=True)
class CsmsCancelReservation:
    reservation_id: int


@dataclass(frozen=True)
class CsmsSetChargingProfile:
    """Install ``profile`` (its ``connector_id`` says where; 0: the charger)."""

    profile: ChargingProfile


@dataclass(frozen=True)
class CsmsClearChargingProfile:
    """Remove the profile ``profile_id``, or else every profile matching all given fields."""

    profile_id: int | None = None
    connector_id: int | None = None
    purpose: str | None = None
    stack_level: int | None = None


@dataclass(frozen=True)
class CsmsGetCompositeSchedule:
    connector_id: int
    duration: int  # seconds
    unit: str | None = None  # "A" or "W"; None: the charger's choice (A)


@dataclass(frozen=True)
class CompositeScheduleResult:
    """Accepted with the schedule from ``start`` in ``unit``, or Rejected (nothing else)."""

    status: str
    connector_id: int = 0
    start: datetime | None = None
    duration: int = 0
    unit: str = "A"
    periods: tuple[CompositePeriod, ...] = ()
    min_charging_rate: float | None = None  # of the profile in force at the start


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
    entries: tuple[tuple[str, AuthorizationInfo | None], ...] = ()


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
    | CsmsReserveNow
    | CsmsCancelReservation
    | CsmsSetChargingProfile
    | CsmsClearChargingProfile
    | CsmsGetCompositeSchedule
)
CsmsResponse = (
    CommandResult
    | CompositeScheduleResult
    | StatusResult
    | GetConfigurationResult
    | ChangeConfigurationResult
    | LocalListVersionResult
)


# --- the OCPP security extension: certificates and security events ------------------------


@dataclass(frozen=True)
class CertificateHashData:
    """Names an installed certificate (hex strings)."""

    hash_algorithm: str
    issuer_name_hash: str
    issuer_key_hash: str
    serial_number: str


@dataclass(frozen=True)
class CsmsCertificateSigned:
    chain: str  # PEM, leaf first


@dataclass(frozen=True)
class CsmsInstallCertificate:
    use: str  # CentralSystemRootCertificate | ManufacturerRootCertificate
    certificate: str  # PEM


@dataclass(frozen=True)
class CsmsDeleteCertificate:
    hash_data: CertificateHashData


@dataclass(frozen=True)
class CsmsGetInstalledCertificateIds:
    use: str


@dataclass(frozen=True)
class CsmsExtendedTriggerMessage:
    message: str  # e.g. "SignChargePointCertificate", "BootNotification"
    connector_id: int | None = None


@dataclass(frozen=True)
class InstalledCertificatesResult:
    status: str  # Accepted | NotFound
    certificates: tuple[CertificateHashData, ...] = ()


SecurityRequest = (
    CsmsCertificateSigned
    | CsmsInstallCertificate
    | CsmsDeleteCertificate
    | CsmsGetInstalledCertificateIds
    | CsmsExtendedTriggerMessage
)
"""Handled outside the core (agent.security): they need files and keys."""
SecurityResponse = StatusResult | InstalledCertificatesResult


# --- remote maintenance (Firmware Management profile): answered outside the station -----

DEFAULT_RETRY_INTERVAL = 60.0  # seconds, when the CSMS gives no retryInterval


@dataclass(frozen=True)
class CsmsUpdateFirmware:
    """Download the release at ``location`` from ``retrieve_date`` on and install it."""

    location: str
    retrieve_date: datetime
    retries: int = 0  # further attempts after the first
    retry_interval: float = DEFAULT_RETRY_INTERVAL  # seconds between attempts


@dataclass(frozen=True)
class CsmsGetDiagnostics:
    """Upload a diagnostics bundle to ``location``; the message log of the window goes in."""

    location: str
    retries: int = 0
    retry_interval: float = DEFAULT_RETRY_INTERVAL
    start_time: datetime | None = None
    stop_time: datetime | None = None


@dataclass(frozen=True)
class DiagnosticsResult:
    file_name: str | None  # None: there is nothing to upload


@dataclass(frozen=True)
class CsmsSignedUpdateFirmware:
    """The security extension's SignedUpdateFirmware: ``update`` as UpdateFirmware, plus the
    signing certificate (PEM) and the package's signature (base64)."""

    request_id: int
    update: CsmsUpdateFirmware
    signing_certificate: str
    signature: str


@dataclass(frozen=True)
class CsmsGetLog:
    """GetLog (security extension): ``log_type`` DiagnosticsLog or SecurityLog."""

    log_type: str
    request_id: int
    location: str
    retries: int = 0
    retry_interval: float = DEFAULT_RETRY_INTERVAL
    oldest: datetime | None = None
    latest: datetime | None = None


@dataclass(frozen=True)
class LogResult:
    status: str  # Accepted | AcceptedCanceled | Rejected
    file_name: str | None = None


MaintenanceRequest = (CsmsUpdateFirmware | CsmsGetDiagnostics | CsmsSignedUpdateFirmware
                      | CsmsGetLog)
AnyCsmsRequest = CsmsRequest | SecurityRequest | MaintenanceRequest
"""Every command from the CSMS: the core's, and those the services beside it answer."""
AnyCsmsResponse = CsmsResponse | SecurityResponse | DiagnosticsResult | LogResult
