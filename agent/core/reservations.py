"""Reservations (OCPP 1.6 Reservation profile): ReserveNow, CancelReservation, expiry.

A reservation holds one connector for a token or its group (``Connector.reservation``): the
connector is Reserved while idle (or plugged in, before a token is accepted), other tokens
cannot start on it, and the first transaction of the reserved token ends the reservation and
carries its id (StartTransaction.reservationId, TC_046). A reservation of connector 0
(ReserveConnectorZeroSupported) lets the token use any connector and holds the lowest free one
meanwhile, so that one stays available for it (TC_049). An expired or cancelled reservation
frees its connector (TC_047, TC_051).

The reservations are kept across restarts (``SaveReservations`` after every change): the CSMS
still believes in them. At start each is held again, or dropped if its connector cannot be
held any more; one that expired meanwhile ends at once.
"""

from __future__ import annotations

from agent.core import effects as fx
from agent.core import messages as msg
from agent.core.connector import Connector
from agent.core.context import Context
from agent.core.lifecycle import Phase
from agent.core.types import Reservation


class Reservations:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._by_id: dict[int, Reservation] = {}
        self._restored: list[Reservation] = []

    def restore(self, reservations: list[Reservation]) -> None:
        """The reservations kept across restarts; before the Started event."""
        self._restored = list(reservations)

    def on_started(self) -> None:
        restored, self._restored = self._restored, []
        for reservation in restored:
            refusal, held = self._refusal(reservation.connector_id)
            if refusal is None and held is not None:
                self._hold(reservation, held)
        if restored:
            self._save()

    # --- what the CSMS asks --------------------------------------------------------------

    def reserve(self, request: msg.CsmsReserveNow) -> msg.StatusResult:
        """Accepted, or why not: Faulted, Occupied, Unavailable, Rejected."""
        old = self._by_id.pop(request.reservation_id, None)  # the same id replaces it
        old_connector = self._holder(old)
        if old is not None:
            self._release(old)
        refusal, held = self._refusal(request.connector_id)
        if refusal is not None or held is None:
            if old is not None:
                self._hold(old, old_connector)  # a refused replacement keeps the old one
            return msg.StatusResult(refusal or "Rejected")
        reservation = Reservation(request.reservation_id, request.connector_id, request.id_tag,
                                  request.expiry, request.group_id)
        self._hold(reservation, held)
        self._save()
        return msg.StatusResult("Accepted")

    def _refusal(self, connector_id: int) -> tuple[str | None, Connector | None]:
        """Why the connector (0: the charger) cannot be reserved, else the one to hold."""
        connectors = self._ctx.connectors
        if connector_id == 0:
            if not self._ctx.settings.bool("ReserveConnectorZeroSupported"):
                return "Rejected", None
            candidates = list(connectors.values())
        elif connector_id in connectors:
            candidates = [connectors[connector_id]]
        else:
            return "Rejected", None
        free = [c for c in candidates if self._reservable(c)]
        if free:
            return None, free[0]
        if all(c.faulted for c in candidates):
            return "Faulted", None
        if all(not c.in_service for c in candidates):
            return "Unavailable", None
        return "Occupied", None

    def _reservable(self, connector: Connector) -> bool:
        return (connector.in_service and not connector.faulted and connector.phase is Phase.IDLE
                and connector.reservation is None and not self._ctx.shutting_down)

    def cancel(self, request: msg.CsmsCancelReservation) -> msg.StatusResult:
        reservation = self._by_id.pop(request.reservation_id, None)
        if reservation is None:
            return msg.StatusResult("Rejected")  # TC_052: unknown, nothing changes
        self._release(reservation)
        self._save()
        return msg.StatusResult("Accepted")

    def on_expiry_timer(self, arg: str) -> None:
        reservation = self._by_id.pop(int(arg), None)
        if reservation is not None:
            self._release(reservation, cancel_timer=False)
            self._save()

    # --- what the other features ask -------------------------------------------------------

    def blocks(self, connector: Connector, id_tag: str, group_id: str | None) -> bool:
        """The connector is held for someone else."""
        held = connector.reservation
        return held is not None and not held.admits(id_tag, group_id)

    def may_block(self, connector: Connector, id_tag: str) -> bool:
        """Held for someone else, whatever the token's group turns out to be."""
        held = connector.reservation
        return held is not None and not held.group_id and not held.admits(id_tag, None)

    def matching(self, connector: Connector, id_tag: str,
                 group_id: str | None) -> int | None:
        """The reservation a token uses when it starts on ``connector``: the connector's own,
        or a reservation of connector 0."""
        held = connector.reservation
        if held is not None:
            return held.reservation_id if held.admits(id_tag, group_id) else None
        for reservation in self._by_id.values():
            if reservation.connector_id == 0 and reservation.admits(id_tag, group_id):
                return reservation.reservation_id
        return None

    def used(self, reservation_id: int) -> None:
        """A transaction of the reservation began: the reservation is over."""
        reservation = self._by_id.pop(reservation_id, None)
        if reservation is not None:
            self._release(reservation)
            self._save()

    # --- holding and releasing -------------------------------------------------------------

    def _holder(self, reservation: Reservation | None) -> Connector | None:
        for connector in self._ctx.connectors.values():
            if reservation is not None and connector.reservation is reservation:
                return connector
        return None

    def _hold(self, reservation: Reservation, connector: Connector | None) -> None:
        if connector is None:
            return
        self._by_id[reservation.reservation_id] = reservation
        connector.reservation = reservation
        delay = (reservation.expiry - self._ctx.now.utc).total_seconds()
        self._ctx.emit(fx.StartTimer(f"reservation:{reservation.reservation_id}",
                                     max(0.0, delay)))

    def _save(self) -> None:
        kept = sorted(self._by_id.values(), key=lambda r: r.reservation_id)
        self._ctx.emit(fx.SaveReservations(tuple(kept)))

    def _release(self, reservation: Reservation, cancel_timer: bool = True) -> None:
        for connector in self._ctx.connectors.values():
            if connector.reservation is reservation:
                connector.reservation = None
        if cancel_timer:
            self._ctx.emit(fx.CancelTimer(f"reservation:{reservation.reservation_id}"))
