"""OCPP 1.6J: a thin translation between the core's neutral messages and the ``ocpp`` library.

This module is the only place that knows 1.6 names. It turns :mod:`agent.core.messages`
requests into ``ocpp.v16.call`` payloads, the answers back into neutral confirmations, and
CSMS commands (``@on`` handlers) into :class:`agent.core.messages.CsmsRequest` values that the
runtime hands to the core. Schema validation, routing and CALLERRORs for unknown actions are
the library's.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ocpp.exceptions import NotSupportedError, OCPPError
from ocpp.v16 import ChargePoint as _OcppChargePoint
from ocpp.v16 import call, call_result
from ocpp.v16.enums import (
    Action,
    AuthorizationStatus,
    AvailabilityStatus,
    AvailabilityType,
    CancelReservationStatus,
    CertificateSignedStatus,
    CertificateStatus,
    ChargePointErrorCode,
    ChargePointStatus,
    ClearCacheStatus,
    ConfigurationStatus,
    DataTransferStatus,
    DeleteCertificateStatus,
    GetInstalledCertificateStatus,
    LogStatus,
    Reason,
    RemoteStartStopStatus,
    ReservationStatus,
    ResetStatus,
    ResetType,
    TriggerMessageStatus,
    UnlockStatus,
    UpdateFirmwareStatus,
    UpdateStatus,
    UpdateType,
)

from agent.core import messages as msg
from agent.core.types import AuthorizationInfo, AuthStatus
from agent.core.types import RegistrationStatus as CoreRegistration
from agent.csms.adapter import (
    CommandHandler,
    Refused,
    Session,
    on,
    parse_timestamp,
    timestamp,
)
from agent.csms.errors import CallRejected
from agent.csms.frames import StrictSession
from agent.csms.v16_frames import V16
from agent.csms.v16_profiles import BadProfile, SmartChargingCalls, profile_from_ocpp

SUBPROTOCOL = "ocpp1.6"
_V16_ACTIONS = frozenset(action.value for action in Action)
log = logging.getLogger(__name__)

# --- outbound requests ----------------------------------------------------------------------

_PHASE_NAMES = {"Voltage": {"L1": "L1-N", "L2": "L2-N", "L3": "L3-N"}}


def _sampled_value(value: msg.SampledValue, context: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "value": f"{value.value:.3f}".rstrip("0").rstrip("."),
        "context": context,
        "measurand": value.measurand,
        "location": "Outlet",
    }
    if value.unit in ("Wh", "W", "A", "V"):
        out["unit"] = value.unit
    if value.phase:
        out["phase"] = _PHASE_NAMES.get(value.measurand, {}).get(value.phase, value.phase)
    return out


def meter_value(sample: msg.MeterSample) -> dict[str, Any]:
    return {
        "timestamp": timestamp(sample.timestamp),
        "sampled_value": [_sampled_value(v, sample.context) for v in sample.values],
    }


def to_call(req: msg.OutboundReq, transaction_id: int | None = None) -> Any:
    """The ``ocpp.v16.call`` payload for ``req``; transaction messages need ``transaction_id``."""
    match req:
        case msg.RegistrationRequest():
            return call.BootNotification(
                charge_point_model=req.model,
                charge_point_vendor=req.vendor,
                charge_point_serial_number=req.serial_number,
                firmware_version=req.firmware_version,
            )
        case msg.HeartbeatRequest():
            return call.Heartbeat()
        case msg.StatusChanged():
            return call.StatusNotification(
                connector_id=req.connector_id,
                error_code=ChargePointErrorCode(req.error_code.value),
                status=ChargePointStatus(req.status.value),
                timestamp=timestamp(req.timestamp),
                info=req.info[:50] if req.info else None,
                vendor_error_code=req.vendor_error_code,
            )
        case msg.AuthorizationRequest():
            return call.Authorize(id_tag=req.id_tag)
        case msg.DiagnosticsStatusReport():
            return call.DiagnosticsStatusNotification(status=req.status)
        case msg.FirmwareStatusReport():
            return call.FirmwareStatusNotification(status=req.status)
        case msg.SignedFirmwareStatusReport():  # requestId is optional in the schema
            return call.SignedFirmwareStatusNotification(status=req.status,
                                                         request_id=req.request_id)
        case msg.LogStatusReport():
            return call.LogStatusNotification(status=req.status, request_id=req.request_id)
        case msg.SecurityEventRaised():
            return call.SecurityEventNotification(type=req.type, timestamp=timestamp(req.timestamp),
                                                  tech_info=req.tech_info)
        case msg.CertificateSigningRequest():
            return call.SignCertificate(csr=req.csr)
    return _transaction_call(req, transaction_id)


def _transaction_call(req: msg.OutboundReq, transaction_id: int | None) -> Any:
    match req:
        case msg.TransactionStarted():
            return call.StartTransaction(
                connector_id=req.connector_id,
                id_tag=req.id_tag,
                meter_start=req.meter_start_wh,
                timestamp=timestamp(req.timestamp),
                reservation_id=req.reservation_id,
            )
        case msg.TransactionUpdated() | msg.MeterValuesReported():
            return call.MeterValues(
                connector_id=req.connector_id,
                meter_value=[meter_value(s) for s in req.samples],
                transaction_id=transaction_id,
            )
        case msg.TransactionEnded():
            assert transaction_id is not None, "StopTransaction needs the CSMS transactionId"
            return call.StopTransaction(
                meter_stop=req.meter_stop_wh,
                timestamp=timestamp(req.timestamp),
                transaction_id=transaction_id,
                reason=Reason(req.reason.value),
                id_tag=req.id_tag,
                transaction_data=[meter_value(s) for s in req.samples] or None,
            )
    raise TypeError(f"no OCPP 1.6 message for {type(req).__name__}")


# --- answers -----------------------------------------------------------------------------


def id_tag_info(raw: dict[str, Any] | None) -> AuthorizationInfo:
    raw = raw or {}
    return AuthorizationInfo(
        status=AuthStatus(raw.get("status", AuthorizationStatus.invalid)),
        group_id=raw.get("parent_id_tag"),
        expiry=parse_timestamp(raw.get("expiry_date")),
    )


def from_result(result: Any) -> msg.InboundConf:
    """The neutral confirmation for an ``ocpp.v16.call_result`` payload."""
    match result:
        case call_result.BootNotification():
            return msg.RegistrationResult(
                status=CoreRegistration(result.status),
                interval=int(result.interval),
                current_time=parse_timestamp(result.current_time),
            )
        case call_result.Heartbeat():
            return msg.HeartbeatResult(parse_timestamp(result.current_time))
        case call_result.Authorize():
            return msg.AuthorizationResult(id_tag_info(result.id_tag_info))
        case call_result.StartTransaction():
            return msg.TransactionStartResult(
                id_tag_info(result.id_tag_info), int(result.transaction_id)
            )
        case call_result.StopTransaction():
            info = result.id_tag_info
            return msg.TransactionEndResult(id_tag_info(info) if info else None)
        case call_result.SignCertificate():
            return msg.CertificateSigningResult(result.status == "Accepted")
    return msg.Ack()


# --- the charge point session -------------------------------------------------------------


class ChargePoint16(StrictSession, SmartChargingCalls, _OcppChargePoint):  # type: ignore[misc]
    """One OCPP 1.6J session over an open WebSocket (see :class:`StrictSession`)."""

    frame_codes = V16
    actions = _V16_ACTIONS

    async def send(self, req: msg.OutboundReq, ref: str,
                   transaction_id: int | None = None) -> msg.InboundConf:
        """Send one call and return its confirmation.

        Raises :class:`CallRejected` for a CALLERROR and :class:`TimeoutError` when the CSMS
        stays silent for the response timeout.
        """
        try:
            result = await self.call(to_call(req, transaction_id), suppress=False, unique_id=ref)
        except OCPPError as error:
            raise CallRejected(type(error).__name__, str(error)) from error
        return from_result(result)

    @on(Action.remote_start_transaction)
    def _on_remote_start(self, id_tag: str, connector_id: int | None = None,
                         charging_profile: dict[str, Any] | None = None, **_: Any) -> Any:
        try:
            profile = (profile_from_ocpp(charging_profile, connector_id or 0)
                       if charging_profile else None)
        except BadProfile as error:
            log.info("remote start refused: %s", error)
            return call_result.RemoteStartTransaction(RemoteStartStopStatus.rejected)
        response = self._commands(msg.CsmsRemoteStart(id_tag, connector_id,
                                                      charging_profile=profile))
        assert isinstance(response, msg.CommandResult)
        return call_result.RemoteStartTransaction(RemoteStartStopStatus(response.status.value))

    @on(Action.remote_stop_transaction)
    def _on_remote_stop(self, transaction_id: int, **_: Any) -> Any:
        response = self._commands(msg.CsmsRemoteStop(transaction_id=transaction_id))
        assert isinstance(response, msg.CommandResult)
        return call_result.RemoteStopTransaction(RemoteStartStopStatus(response.status.value))

    @on(Action.get_configuration)
    def _on_get_configuration(self, key: list[str] | None = None, **_: Any) -> Any:
        response = self._commands(msg.CsmsGetConfiguration(tuple(key or ())))
        assert isinstance(response, msg.GetConfigurationResult)
        entries = [
            {"key": e.key, "readonly": e.readonly, "value": e.value}
            for e in response.entries
        ]
        return call_result.GetConfiguration(
            configuration_key=entries or None, unknown_key=list(response.unknown_keys) or None
        )

    @on(Action.change_configuration)
    def _on_change_configuration(self, key: str, value: str, **_: Any) -> Any:
        response = self._commands(msg.CsmsChangeConfiguration(key, value))
        assert isinstance(response, msg.ChangeConfigurationResult)
        return call_result.ChangeConfiguration(ConfigurationStatus(response.status))

    def _status(self, request: msg.AnyCsmsRequest) -> str:
        response = self._commands(request)
        assert isinstance(response, msg.StatusResult | msg.CommandResult)
        return str(response.status)

    @on(Action.change_availability)
    def _on_change_availability(self, connector_id: int, type: str, **_: Any) -> Any:
        operative = type == AvailabilityType.operative
        status = self._status(msg.CsmsChangeAvailability(connector_id, operative))
        return call_result.ChangeAvailability(AvailabilityStatus(status))

    @on(Action.reset)
    def _on_reset(self, type: str, **_: Any) -> Any:
        status = self._status(msg.CsmsReset(hard=type == ResetType.hard))
        return call_result.Reset(ResetStatus(status))

    @on(Action.unlock_connector)
    async def _on_unlock_connector(self, connector_id: int, **_: Any) -> Any:
        # Awaits the lock motor (a few seconds at most): the answer says whether the plug was
        # freed. Nothing here awaits a call to the CSMS, so the receive loop cannot deadlock.
        response = self._commands(msg.CsmsUnlockConnector(connector_id))
        if inspect.isawaitable(response):
            response = await response
        assert isinstance(response, msg.StatusResult)
        return call_result.UnlockConnector(UnlockStatus(response.status))

    @on(Action.trigger_message)
    def _on_trigger_message(self, requested_message: str, connector_id: int | None = None,
                            **_: Any) -> Any:
        status = self._status(msg.CsmsTriggerMessage(requested_message, connector_id))
        return call_result.TriggerMessage(TriggerMessageStatus(status))

    @on(Action.clear_cache)
    def _on_clear_cache(self, **_: Any) -> Any:
        return call_result.ClearCache(ClearCacheStatus(self._status(msg.CsmsClearCache())))

    @on(Action.send_local_list)
    def _on_send_local_list(self, list_version: int, update_type: str,
                            local_authorization_list: list[dict[str, Any]] | None = None,
                            **_: Any) -> Any:
        entries = tuple(
            (e["id_tag"], id_tag_info(e["id_tag_info"]) if e.get("id_tag_info") else None)
            for e in local_authorization_list or ()
        )
        request = msg.CsmsSendLocalList(list_version, update_type == UpdateType.full, entries)
        return call_result.SendLocalList(UpdateStatus(self._status(request)))

    @on(Action.get_local_list_version)
    def _on_get_local_list_version(self, **_: Any) -> Any:
        response = self._commands(msg.CsmsGetLocalListVersion())
        assert isinstance(response, msg.LocalListVersionResult)
        return call_result.GetLocalListVersion(response.version)

    @on(Action.reserve_now)
    def _on_reserve_now(self, connector_id: int, expiry_date: str, id_tag: str,
                        reservation_id: int, parent_id_tag: str | None = None,
                        **_: Any) -> Any:
        expiry = parse_timestamp(expiry_date)
        if expiry is None:  # the schema checked the format; a date that is no date is refused
            return call_result.ReserveNow(ReservationStatus.rejected)
        request = msg.CsmsReserveNow(connector_id, expiry, id_tag, reservation_id, parent_id_tag)
        return call_result.ReserveNow(ReservationStatus(self._status(request)))

    @on(Action.cancel_reservation)
    def _on_cancel_reservation(self, reservation_id: int, **_: Any) -> Any:
        status = self._status(msg.CsmsCancelReservation(reservation_id))
        return call_result.CancelReservation(CancelReservationStatus(status))

    @on(Action.data_transfer)
    def _on_data_transfer(self, vendor_id: str, message_id: str | None = None,
                          data: str | None = None, **_: Any) -> Any:
        status = self._status(msg.CsmsDataTransfer(vendor_id, message_id, data))
        return call_result.DataTransfer(DataTransferStatus(status))

    # --- the security extension (agent.security answers these) ---------------------------

    @on(Action.install_certificate)
    def _on_install_certificate(self, certificate_type: str, certificate: str, **_: Any) -> Any:
        status = self._status(msg.CsmsInstallCertificate(certificate_type, certificate))
        return call_result.InstallCertificate(CertificateStatus(status))

    @on(Action.delete_certificate)
    def _on_delete_certificate(self, certificate_hash_data: dict[str, str], **_: Any) -> Any:
        status = self._status(msg.CsmsDeleteCertificate(msg.CertificateHashData(
            certificate_hash_data["hash_algorithm"], certificate_hash_data["issuer_name_hash"],
            certificate_hash_data["issuer_key_hash"], certificate_hash_data["serial_number"])))
        return call_result.DeleteCertificate(DeleteCertificateStatus(status))

    @on(Action.get_installed_certificate_ids)
    def _on_get_installed_certificate_ids(self, certificate_type: str, **_: Any) -> Any:
        response = self._commands(msg.CsmsGetInstalledCertificateIds(certificate_type))
        assert isinstance(response, msg.InstalledCertificatesResult)
        hashes = [{"hash_algorithm": h.hash_algorithm, "issuer_name_hash": h.issuer_name_hash,
                   "issuer_key_hash": h.issuer_key_hash, "serial_number": h.serial_number}
                  for h in response.certificates]
        return call_result.GetInstalledCertificateIds(
            GetInstalledCertificateStatus(response.status), certificate_hash_data=hashes or None)

    @on(Action.certificate_signed)
    def _on_certificate_signed(self, certificate_chain: str, **_: Any) -> Any:
        status = self._status(msg.CsmsCertificateSigned(certificate_chain))
        return call_result.CertificateSigned(CertificateSignedStatus(status))

    @on(Action.extended_trigger_message)
    def _on_extended_trigger_message(self, requested_message: str,
                                     connector_id: int | None = None, **_: Any) -> Any:
        status = self._status(msg.CsmsExtendedTriggerMessage(requested_message, connector_id))
        return call_result.ExtendedTriggerMessage(TriggerMessageStatus(status))

    # --- Firmware Management: answered by agent.maintenance, outside the core -------------

    def _maintenance(self, request: msg.MaintenanceRequest) -> msg.AnyCsmsResponse:
        response = self._commands(request)
        assert not inspect.isawaitable(response)
        if isinstance(response, msg.StatusResult) and response.status == "NotSupported":
            raise NotSupportedError(description=f"{type(request).__name__} is not offered")
        return response

    @on(Action.update_firmware)
    def _on_update_firmware(self, location: str, retrieve_date: str, retries: int | None = None,
                            retry_interval: int | None = None, **_: Any) -> Any:
        moment = parse_timestamp(retrieve_date) or datetime.now(UTC)
        self._maintenance(msg.CsmsUpdateFirmware(
            location, moment, retries or 0, _interval(retry_interval)))
        return call_result.UpdateFirmware()

    @on(Action.get_diagnostics)
    def _on_get_diagnostics(self, location: str, retries: int | None = None,
                            retry_interval: int | None = None, start_time: str | None = None,
                            stop_time: str | None = None, **_: Any) -> Any:
        response = self._maintenance(msg.CsmsGetDiagnostics(
            location, retries or 0, _interval(retry_interval),
            parse_timestamp(start_time), parse_timestamp(stop_time)))
        assert isinstance(response, msg.DiagnosticsResult)
        return call_result.GetDiagnostics(file_name=response.file_name)

    @on(Action.signed_update_firmware)
    def _on_signed_update_firmware(self, request_id: int, firmware: dict[str, Any],
                                   retries: int | None = None,
                                   retry_interval: int | None = None, **_: Any) -> Any:
        moment = parse_timestamp(firmware["retrieve_date_time"]) or datetime.now(UTC)
        update = msg.CsmsUpdateFirmware(firmware["location"], moment, retries or 0,
                                        _interval(retry_interval))
        response = self._maintenance(msg.CsmsSignedUpdateFirmware(
            request_id, update, firmware["signing_certificate"], firmware["signature"]))
        assert isinstance(response, msg.StatusResult)
        return call_result.SignedUpdateFirmware(UpdateFirmwareStatus(response.status))

    @on(Action.get_log)
    def _on_get_log(self, log: dict[str, Any], log_type: str, request_id: int,
                    retries: int | None = None, retry_interval: int | None = None,
                    **_: Any) -> Any:
        response = self._maintenance(msg.CsmsGetLog(
            log_type, request_id, log["remote_location"], retries or 0,
            _interval(retry_interval), parse_timestamp(log.get("oldest_timestamp")),
            parse_timestamp(log.get("latest_timestamp"))))
        assert isinstance(response, msg.LogResult)
        return call_result.GetLog(LogStatus(response.status), filename=response.file_name)


def _interval(seconds: int | None) -> float:
    return msg.DEFAULT_RETRY_INTERVAL if seconds is None else float(seconds)


class Adapter16:
    """OCPP 1.6J: the CSMS makes the transaction ids (StartTransaction.conf)."""

    subprotocol = SUBPROTOCOL
    uses_csms_transaction_ids = True

    def open(self, charge_point_id: str, connection: Any, commands: CommandHandler,
             response_timeout: float, replied: Callable[[], None],
             refused: Refused | None = None) -> Session:
        return ChargePoint16(charge_point_id, connection, commands, response_timeout, replied,
                     refused)


ADAPTER = Adapter16()
