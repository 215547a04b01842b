"""Remote control by the CSMS: remote start, reset, unlock, triggered messages, data transfer.

Remote stop is the transactions' (:meth:`Transactions.remote_stop`); each command here is
answered at once, and what it causes happens in the same event's effects (a triggered message
goes after the answer: the runtime sends the reply first, TC_054/055).
"""

from __future__ import annotations

from agent.core import effects as fx
from agent.core import messages as msg
from agent.core.authorization import Authorizer
from agent.core.connector import Authorization, Connector
from agent.core.context import Context, Pending
from agent.core.lifecycle import Phase
from agent.core.outputs import Outputs
from agent.core.registration import Registration
from agent.core.reservations import Reservations
from agent.core.smart_charging import SmartCharging
from agent.core.status import StatusReport
from agent.core.transactions import Transactions
from agent.core.types import RequestStatus, StopReason

TRIGGERABLE = ("BootNotification", "DiagnosticsStatusNotification", "FirmwareStatusNotification",
               "Heartbeat", "MeterValues", "StatusNotification")


class RemoteControl:
    def __init__(self, ctx: Context, authorizer: Authorizer, transactions: Transactions,
                 outputs: Outputs, registration: Registration, status: StatusReport,
                 reservations: Reservations, smart_charging: SmartCharging) -> None:
        self._ctx = ctx
        self._smart_charging = smart_charging
        self._reservations = reservations
        self._authorizer = authorizer
        self._transactions = transactions
        self._outputs = outputs
        self._registration = registration
        self._status = status

    def remote_start(self, request: msg.CsmsRemoteStart) -> msg.CommandResult:
        connector = self._target(request.connector_id, request.id_tag)
        profile = request.charging_profile
        if (connector is None or self._ctx.shutting_down
                or not self._smart_charging.accepts_remote(profile)):
            return msg.CommandResult(RequestStatus.REJECTED)  # TC_060: only a TxProfile
        if profile is not None:
            self._smart_charging.install_for_remote_start(
                connector.connector_id, profile, request.id_tag, request.remote_start_id)
        if self._ctx.settings.bool("AuthorizeRemoteTxRequests"):
            self._authorizer.request(request.id_tag, "remote", connector.connector_id,
                                     request.remote_start_id)
        else:
            reservation_id = self._reservations.matching(connector, request.id_tag, None)
            self._authorizer.admit(connector, Authorization(
                request.id_tag, remote=True, remote_start_id=request.remote_start_id,
                reservation_id=reservation_id))
        return msg.CommandResult(RequestStatus.ACCEPTED)

    def _target(self, connector_id: int | None, id_tag: str) -> Connector | None:
        """The connector named, if free; without one, a free connector, plugged-in first;
        never one reserved for someone else."""
        connectors = self._ctx.connectors
        usable = [c for c in connectors.values()
                  if c.free and not self._reservations.may_block(c, id_tag)]
        if connector_id is None:
            usable.sort(key=lambda c: (c.phase is not Phase.PLUGGED, c.connector_id))
            return usable[0] if usable else None
        connector = connectors.get(connector_id)  # TC_027: connectorId 0 is not one
        return connector if connector in usable else None

    def reset(self, request: msg.CsmsReset) -> msg.CommandResult:
        """TC_013..016: end every transaction (HardReset/SoftReset), then reboot."""
        self._ctx.shutting_down = True
        self._transactions.stop_all(StopReason.HARD_RESET if request.hard
                                    else StopReason.SOFT_RESET)
        self._ctx.emit(fx.Reboot(request.hard))
        return msg.CommandResult(RequestStatus.ACCEPTED)

    def unlock(self, request: msg.CsmsUnlockConnector) -> msg.StatusResult:
        """TC_017/018/031: without a connector lock (fixed cable) there is nothing to unlock.
        With one, a running transaction ends first (UnlockCommand), then the lock opens; the
        runtime answers Unlocked or UnlockFailed from what the lock does (SetLock.answer)."""
        connector = self._ctx.connectors.get(request.connector_id)
        if connector is None or not connector.has_lock:
            return msg.StatusResult("NotSupported")
        self._transactions.stop(connector, StopReason.UNLOCK_COMMAND)
        self._outputs.unlock(request.connector_id)
        return msg.StatusResult("Unlocked")

    def data_transfer(self, request: msg.CsmsDataTransfer) -> msg.StatusResult:
        return msg.StatusResult("UnknownVendorId")  # TC_062: no vendor extensions

    def trigger(self, request: msg.CsmsTriggerMessage) -> msg.StatusResult:
        message, cid = request.message, request.connector_id
        if message not in TRIGGERABLE:
            return msg.StatusResult("NotImplemented")
        if cid is not None and cid != 0 and cid not in self._ctx.connectors:
            return msg.StatusResult("Rejected")
        if cid == 0 and message == "MeterValues":
            return msg.StatusResult("Rejected")
        self._send_triggered(message, cid)
        return msg.StatusResult("Accepted")

    def _send_triggered(self, message: str, connector_id: int | None) -> None:
        targets = [connector_id] if connector_id is not None else [0, *self._ctx.connectors]
        if message == "BootNotification":
            self._registration.reboot()
        elif message == "Heartbeat":
            self._registration.heartbeat()
        elif message == "DiagnosticsStatusNotification":
            self._ctx.send(msg.DiagnosticsStatusReport(), Pending("diagnostics"))
        elif message == "FirmwareStatusNotification":
            self._ctx.send(msg.FirmwareStatusReport(), Pending("firmware"))
        elif message == "StatusNotification":
            for cid in targets:
                self._status.force(cid)
        else:
            for cid in targets:
                if cid in self._ctx.connectors:
                    self._ctx.read_meter(self._ctx.connectors[cid], "trigger")
