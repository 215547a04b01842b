"""The status each connector (and the charger, connector 0) reports to the CSMS.

The one place the status is decided: :meth:`StatusReport.of` takes it from the connector's
phase and facts (:func:`agent.core.connector.status_of`) and what the outputs do; after every
event :meth:`StatusReport.reconcile` reports what changed, held back for
MinimumStatusDuration. No feature reports a status itself.
"""

from __future__ import annotations

from agent.core import effects as fx
from agent.core import messages as msg
from agent.core.connector import Connector, status_of
from agent.core.context import Context, Pending
from agent.core.faults import Faults
from agent.core.outputs import Outputs
from agent.core.types import ConnectorStatus, ErrorCode

Reported = tuple[ConnectorStatus, ErrorCode]


class StatusReport:
    def __init__(self, ctx: Context, outputs: Outputs, faults: Faults) -> None:
        self._ctx = ctx
        self._outputs = outputs
        self._faults = faults
        self._settling: dict[int, Reported] = {}
        self._station_reported: Reported | None = None

    def of(self, connector_id: int) -> ConnectorStatus:
        """The connector's status right now."""
        connector = self._ctx.connectors[connector_id]
        tx = connector.transaction
        if tx is not None and not connector.faulted:
            if tx.stopping is not None:
                return ConnectorStatus.FINISHING
            if tx.meter_start_wh is None:
                return ConnectorStatus.PREPARING  # the transaction is still being started
            if tx.awaiting_ev and not connector.pilot.wants_energy:
                return ConnectorStatus.PREPARING  # the EV has a moment to answer the offer
        closed = self._outputs.contactor_closed(connector_id)
        offering = self._outputs.offering(connector_id)  # else SuspendedEVSE
        return status_of(connector, closed and offering)

    def station(self) -> ConnectorStatus:
        # Held for an update, a connector still charging keeps the charger in service.
        if all(not c.operative or (c.maintenance_hold and c.transaction is None)
               for c in self._ctx.connectors.values()):
            return ConnectorStatus.UNAVAILABLE
        return ConnectorStatus.AVAILABLE

    def report_all(self) -> None:
        """Report every status again at the next reconcile (a new registration, a new link)."""
        self._station_reported = None
        for connector in self._ctx.connectors.values():
            connector.reported = None

    def reconcile(self) -> None:
        if not self._ctx.online:
            return
        station = (self.station(), self._faults.station_error())
        if station != self._station_reported:
            self._station_reported = station
            self._notify(0, station, self._faults.station_info())
        for cid, connector in self._ctx.connectors.items():
            self._reconcile(cid, connector)

    def _reconcile(self, cid: int, connector: Connector) -> None:
        if not connector.pilot_read and not connector.faults:
            return  # after a restart an EV may still be plugged in: not Available before we know
        current = (self.of(cid), connector.error_code)
        if connector.reported == current:
            self._settling.pop(cid, None)
            return
        hold = self._ctx.settings.int("MinimumStatusDuration")
        if hold > 0 and connector.reported is not None:
            if self._settling.get(cid) != current:  # MinimumStatusDuration: wait until stable
                self._settling[cid] = current
                self._ctx.emit(fx.StartTimer(f"status:{cid}", float(hold)))
            return
        self._report(cid, connector, current)

    def _report(self, cid: int, connector: Connector, current: Reported) -> None:
        self._settling.pop(cid, None)
        connector.reported = current
        info = next(iter(connector.faults.values()), None) if connector.faults else None
        self._notify(cid, current, info)

    def on_settled_timer(self, arg: str) -> None:
        cid = int(arg)
        connector = self._ctx.connectors[cid]
        current = (self.of(cid), connector.error_code)
        if self._settling.get(cid) == current and self._ctx.online:
            self._report(cid, connector, current)

    def force(self, connector_id: int) -> None:
        """TriggerMessage StatusNotification: connector 0 at once, a connector at the next
        reconcile."""
        if connector_id == 0:
            self._notify(0, (self.station(), self._faults.station_error()),
                         self._faults.station_info())
            return
        self._ctx.connectors[connector_id].reported = None

    def _notify(self, connector_id: int, current: Reported, info: str | None) -> None:
        req = msg.StatusChanged(
            connector_id=connector_id,
            status=current[0],
            error_code=current[1],
            timestamp=self._ctx.now.utc,
            info=info,
        )
        self._ctx.send(req, Pending("status", connector_id))
