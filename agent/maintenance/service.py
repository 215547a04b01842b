"""Remote maintenance wired to the runtime: the CSMS's UpdateFirmware and GetDiagnostics (and
the security extension's SignedUpdateFirmware and GetLog), the notifications they cause, and
TriggerMessage / ExtendedTriggerMessage for those notifications.

SignedUpdateFirmware: the signing certificate is checked on receipt against the installed
ManufacturerRootCertificates (an unfit one is answered InvalidCertificate and raises the
security event InvalidFirmwareSigningCertificate); the package's signature after the
download, before anything is unpacked (a mismatch reports InvalidSignature and raises
InvalidFirmwareSignature). Every committed update, signed or not, raises FirmwareUpdated.

The core never sees these commands (:attr:`Runtime.command_handlers` answers them first); it is
only asked whether a transaction is running, and told (ev.MaintenanceHold) while an update
waits for the transactions to end, so that it holds the idle connectors Unavailable. The
notifications go out through the runtime's outbound path (:meth:`Runtime.send`), so a
triggered one follows the TriggerMessage reply. A final firmware status (Installed,
InstallationFailed, DownloadFailed) stays in the releases' ``report`` file until the CSMS
confirms it, and is sent again after every registration.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from agent import clock
from agent.config import Config
from agent.core import effects as fx
from agent.core import events as ev
from agent.core import messages as msg
from agent.frame_log import FrameLog
from agent.maintenance.diagnostics import Diagnostics
from agent.maintenance.firmware import FINAL, FirmwareUpdater, SignatureError
from agent.maintenance.releases import Releases
from agent.runtime import Runtime
from agent.security import events
from agent.security.keystore import MANUFACTURER_ROOT
from agent.security.service import SecurityService
from agent.security.tls import file_server_context
from agent.store import Store
from hal.errors import DeviceError

log = logging.getLogger(__name__)

HARDWARE_RETRY = 1.0  # seconds between meter reads of the health check

# The core's vocabulary for the two notifications, in one place.
FIRMWARE_STATUS = msg.FirmwareStatusReport
DIAGNOSTICS_STATUS = msg.DiagnosticsStatusReport
# ExtendedTriggerMessage's two (agent.security passes them on as these TriggerMessage names,
# which a 1.6 TriggerMessage cannot carry).
SIGNED_FIRMWARE_TRIGGER = "SignedFirmwareStatusNotification"
LOG_TRIGGER = "LogStatusNotification"
TRIGGERS = ("FirmwareStatusNotification", "DiagnosticsStatusNotification",
            SIGNED_FIRMWARE_TRIGGER, LOG_TRIGGER)


class Maintenance:
    def __init__(self, runtime: Runtime, config: Config, store: Store | None,
                 frames: Callable[[], FrameLog | None], secrets: tuple[str, ...],
                 restart: Callable[[], None], security: SecurityService | None = None
                 ) -> None:
        self.runtime = runtime
        self.security = security
        self.releases = Releases(config.update.releases)
        self._now: Callable[[], datetime] = lambda: clock.now().utc
        now = self._now
        self.firmware = FirmwareUpdater(
            self.releases, config.update, self._firmware_status,
            lambda: runtime.transaction_running, restart, self._hardware_ok, now,
            tls=self._file_server_tls,
            hold=lambda on: runtime.post(ev.MaintenanceHold(on)))
        self.diagnostics = Diagnostics(
            config, secrets, store, frames, self.releases.current, self._diagnostics_status,
            now, report_log=self._log_status,
            security_log=security.log if security is not None else None,
            tls=self._file_server_tls)
        self._registered = False
        self._report_refs: dict[str, str] = {}  # ref of a final status sent -> the status
        self._last_signed: str | None = None  # the last SignedFirmwareStatusNotification sent

    def _file_server_tls(self) -> ssl.SSLContext:
        """https transfers trust the system's store plus the installed CSMS and manufacturer
        roots, read at each transfer (a root installed just before counts)."""
        return file_server_context(self.security.store.roots_pem()
                                   if self.security is not None else "")

    def start(self) -> None:
        """After the runtime started: settle what the last run left, check a trial release."""
        self.firmware.resume()

    async def close(self) -> None:
        await self.firmware.close()
        await self.diagnostics.close()

    # --- commands ------------------------------------------------------------------------

    def command(self, request: msg.AnyCsmsRequest) -> msg.AnyCsmsResponse | None:
        match request:
            case msg.CsmsUpdateFirmware():
                self.firmware.request(request)
                return msg.StatusResult("Accepted")
            case msg.CsmsGetDiagnostics():
                return msg.DiagnosticsResult(self.diagnostics.request(request))
            case msg.CsmsSignedUpdateFirmware() if self.security is not None:
                return msg.StatusResult(self._signed_update(request, self.security))
            case msg.CsmsGetLog() if self.security is not None:
                return self.diagnostics.get_log(request)
            case msg.CsmsTriggerMessage(message=message) if message in TRIGGERS:
                # TC_054: the current status (Idle when nothing runs), after the reply.
                self._send(self._triggered(message))
                return msg.StatusResult("Accepted")
        return None

    def _triggered(self, message: str) -> msg.OutboundReq:
        if message == "FirmwareStatusNotification":
            return FIRMWARE_STATUS(self.firmware.status)
        if message == SIGNED_FIRMWARE_TRIGGER:
            status, request_id = self.firmware.status, self.firmware.request_id
            # Whitepaper L01.FR.28/29: after Installed, Idle; after any other end (an
            # InvalidSignature, a DownloadFailed) that last status, until a restart.
            if status == "Idle" and request_id is not None and self._last_signed not in (
                    None, "Installed"):
                status = self._last_signed
            return msg.SignedFirmwareStatusReport(
                status, request_id if status != "Idle" else None)
        if message == LOG_TRIGGER:
            status = self.diagnostics.log_status
            return msg.LogStatusReport(
                status, self.diagnostics.log_request_id if status != "Idle" else None)
        return DIAGNOSTICS_STATUS(self.diagnostics.status)

    def _signed_update(self, request: msg.CsmsSignedUpdateFirmware,
                       security: SecurityService) -> str:
        """Check the signing certificate now; the signature once the file is here."""
        if self.firmware.busy:
            log.warning("update: already busy (%s); SignedUpdateFirmware %d Rejected",
                        self.firmware.status, request.request_id)
            return "Rejected"
        from agent.security import certificates as certs  # cryptography: only for this

        roots = [root.certificate for root in security.store.roots(MANUFACTURER_ROOT)]
        try:
            signer = certs.check_signing_certificate(request.signing_certificate, roots,
                                                     self._now())
        except certs.CertificateError as error:
            log.error("update: SignedUpdateFirmware %d: the signing certificate is not "
                      "trusted: %s", request.request_id, error)
            security.raise_event(events.INVALID_FIRMWARE_SIGNING_CERTIFICATE, str(error))
            return "InvalidCertificate"

        loop = asyncio.get_running_loop()

        def check(archive: Path) -> None:  # in the updater's worker thread
            try:
                certs.verify_file_signature(signer, archive, request.signature)
            except certs.CertificateError as error:
                loop.call_soon_threadsafe(
                    security.raise_event, events.INVALID_FIRMWARE_SIGNATURE, str(error))
                raise SignatureError(str(error)) from None

        self.firmware.request(request.update, request.request_id, check)
        return "Accepted"

    # --- reports -------------------------------------------------------------------------

    def _send(self, req: msg.OutboundReq) -> str:
        ref = str(uuid.uuid4())
        self.runtime.send(ref, req)
        return ref

    def _firmware_report(self, status: str) -> msg.OutboundReq:
        """FirmwareStatusNotification, or the signed form for a SignedUpdateFirmware."""
        request_id = self.firmware.request_id
        if request_id is None:
            return FIRMWARE_STATUS(status)
        return msg.SignedFirmwareStatusReport(status, request_id)

    def _firmware_status(self, status: str) -> None:
        if status == "Installed" and self.security is not None:
            signed = "signed " if self.firmware.request_id is not None else ""
            self.security.raise_event(events.FIRMWARE_UPDATED, f"{signed}release "
                                      f"{self.releases.current()} committed")
        if status in FINAL and not self._registered:
            return  # kept in the report file; sent at registration
        ref = self._send(self._firmware_report(status))
        if self.firmware.request_id is not None:
            self._last_signed = status
        if status in FINAL:
            self._report_refs[ref] = status

    def _diagnostics_status(self, status: str) -> None:
        self._send(DIAGNOSTICS_STATUS(status))

    def _log_status(self, status: str, request_id: int | None) -> None:
        self._send(msg.LogStatusReport(status, request_id))

    def on_event(self, event: ev.Event, effects: list[fx.Effect]) -> None:
        """A runtime listener: registration, and the CSMS's answers to our final reports."""
        registration = self.runtime.station.registration
        online = registration.accepted and registration.link_up
        if online and not self._registered:
            self._registered = True
            self.firmware.registered()
            pending = self.releases.report()
            if pending is not None and pending not in self._report_refs.values():
                self._report_refs[self._send(self._firmware_report(pending))] = pending
        elif not online:
            self._registered = False
        match event:
            case ev.CallAnswered(ref=ref) if ref in self._report_refs:
                self.releases.clear_report(self._report_refs.pop(ref))
            case ev.CallFailed(ref=ref) if ref in self._report_refs:
                del self._report_refs[ref]  # sent again when the link is back

    async def _hardware_ok(self) -> None:
        """The health check's "hardware answering": every connector's meter reads."""
        for cid, hw in self.runtime.hardware.items():
            while True:
                try:
                    await hw.meter.read()
                    break
                except DeviceError as error:
                    log.warning("update: connector %s meter does not answer: %s", cid, error)
                    await asyncio.sleep(HARDWARE_RETRY)
