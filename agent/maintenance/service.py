"""Remote maintenance wired to the runtime: the CSMS's UpdateFirmware and GetDiagnostics, the
notifications they cause, and TriggerMessage for those notifications.

The core never sees these commands (:attr:`Runtime.command_handlers` answers them first); it is
only asked whether a transaction is running. The notifications go out through the runtime's
outbound path (:meth:`Runtime.send`), so a triggered one follows the TriggerMessage reply. A
final firmware status (Installed, InstallationFailed, DownloadFailed) stays in the releases'
``report`` file until the CSMS confirms it, and is sent again after every registration.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable

from agent import clock
from agent.config import Config
from agent.core import effects as fx
from agent.core import events as ev
from agent.core import messages as msg
from agent.frame_log import FrameLog
from agent.maintenance.diagnostics import Diagnostics
from agent.maintenance.firmware import FINAL, FirmwareUpdater
from agent.maintenance.releases import Releases
from agent.runtime import Runtime
from agent.store import Store
from hal.errors import DeviceError

log = logging.getLogger(__name__)

HARDWARE_RETRY = 1.0  # seconds between meter reads of the health check

# The core's vocabulary for the two notifications, in one place.
FIRMWARE_STATUS = msg.FirmwareStatusReport
DIAGNOSTICS_STATUS = msg.DiagnosticsStatusReport
TRIGGERS = ("FirmwareStatusNotification", "DiagnosticsStatusNotification")


class Maintenance:
    def __init__(self, runtime: Runtime, config: Config, store: Store | None,
                 frames: Callable[[], FrameLog | None], secrets: tuple[str, ...],
                 restart: Callable[[], None]) -> None:
        self.runtime = runtime
        self.releases = Releases(config.update.releases)
        now = lambda: clock.now().utc  # noqa: E731
        self.firmware = FirmwareUpdater(
            self.releases, config.update, self._firmware_status,
            lambda: runtime.transaction_running, restart, self._hardware_ok, now)
        self.diagnostics = Diagnostics(config, secrets, store, frames, self.releases.current,
                                       self._diagnostics_status, now)
        self._registered = False
        self._report_refs: dict[str, str] = {}  # ref of a final status sent -> the status

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
            case msg.CsmsTriggerMessage(message=message) if message in TRIGGERS:
                # TC_054: the current status (Idle when nothing runs), after the reply.
                if message == "FirmwareStatusNotification":
                    self._send(FIRMWARE_STATUS(self.firmware.status))
                else:
                    self._send(DIAGNOSTICS_STATUS(self.diagnostics.status))
                return msg.StatusResult("Accepted")
        return None

    # --- reports -------------------------------------------------------------------------

    def _send(self, req: msg.OutboundReq) -> str:
        ref = str(uuid.uuid4())
        self.runtime.send(ref, req)
        return ref

    def _firmware_status(self, status: str) -> None:
        if status in FINAL and not self._registered:
            return  # kept in the report file; sent at registration
        ref = self._send(FIRMWARE_STATUS(status))
        if status in FINAL:
            self._report_refs[ref] = status

    def _diagnostics_status(self, status: str) -> None:
        self._send(DIAGNOSTICS_STATUS(status))

    def on_event(self, event: ev.Event, effects: list[fx.Effect]) -> None:
        """A runtime listener: registration, and the CSMS's answers to our final reports."""
        registration = self.runtime.station.registration
        online = registration.accepted and registration.link_up
        if online and not self._registered:
            self._registered = True
            self.firmware.registered()
            pending = self.releases.report()
            if pending is not None and pending not in self._report_refs.values():
                self._report_refs[self._send(FIRMWARE_STATUS(pending))] = pending
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
