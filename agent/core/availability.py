"""Availability: operative or inoperative connectors, kept across restarts.

A connector made inoperative during a transaction becomes so when the transaction ends
(ChangeAvailability answers Scheduled; OCPP 1.6 TC_013..016, TC_034).

Apart from it, the maintenance hold: while an update waits for the running transactions to
end, every connector not in use is Unavailable (OCPP 1.6 security white paper L01.FR.07 and
L01.FR.19). It is a separate fact (:attr:`Connector.maintenance_hold`), never saved, so
clearing it gives back exactly the availability the CSMS chose.
"""

from __future__ import annotations

from agent.core import effects as fx
from agent.core import messages as msg
from agent.core.connector import Connector
from agent.core.context import Context


class Availability:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def restore(self, operative: dict[int, bool]) -> None:
        """What was kept across restarts; before the Started event."""
        for cid, value in operative.items():
            if cid in self._ctx.connectors:
                self._ctx.connectors[cid].operative = value

    def change(self, request: msg.CsmsChangeAvailability) -> msg.StatusResult:
        cid = request.connector_id
        if cid != 0 and cid not in self._ctx.connectors:
            return msg.StatusResult("Rejected")
        scheduled = False
        for connector in self._ctx.targets(cid):
            scheduled |= self._set(connector, request.operative)
            self._ctx.emit(fx.SaveAvailability(connector.connector_id, request.operative))
        return msg.StatusResult("Scheduled" if scheduled else "Accepted")

    def _set(self, connector: Connector, operative: bool) -> bool:
        """Apply now, or schedule for the end of the running transaction (returns True)."""
        if operative:
            connector.operative, connector.pending_inoperative = True, False
            return False
        if connector.transaction is not None:
            connector.pending_inoperative = True
            return True
        connector.operative = False
        if connector.lifecycle.fire("expire"):
            connector.authorization = None
        return False

    def hold(self, on: bool) -> None:
        """Set or clear the maintenance hold on every connector. A running transaction goes
        on (its connector is Unavailable once it ends); a token waiting for the plug on an
        idle connector is dropped, as for an inoperative one."""
        for connector in self._ctx.connectors.values():
            connector.maintenance_hold = on
            if on and connector.transaction is None and connector.lifecycle.fire("expire"):
                connector.authorization = None
                self._ctx.emit(fx.CancelTimer(f"connection:{connector.connector_id}"))

    def apply_pending(self, connector: Connector) -> None:
        """The transaction is over (or none started): a scheduled change applies now."""
        if connector.pending_inoperative and connector.transaction is None:
            connector.operative = False
            connector.pending_inoperative = False
