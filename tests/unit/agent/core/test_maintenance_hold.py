"""The maintenance hold: while an update waits for the running transactions to end, every
connector not in use is Unavailable (OCPP 1.6 security white paper L01.FR.07/L01.FR.19); the
CSMS's own availability is kept apart and comes back exactly."""

from __future__ import annotations

from agent.core import effects as fx
from agent.core import events as ev
from agent.core import messages as msg
from agent.core.types import RequestStatus

from .harness import CoreHarness


def charging_on_1(h: CoreHarness) -> None:
    h.pilot("B", 1)
    h.card("CAFE0001")
    h.accept_authorize()
    h.accept_start(transaction_id=7)
    h.pilot("C", 1)


def test_the_hold_makes_idle_connectors_unavailable_and_spares_the_transaction() -> None:
    h = CoreHarness(connectors=3)
    h.boot()
    charging_on_1(h)
    h.feed(ev.CsmsCommand(msg.CsmsChangeAvailability(3, False)))  # the CSMS's choice
    assert h.statuses(3)[-1] == "Unavailable"
    saved = len([e for e in h.effects if isinstance(e, fx.SaveAvailability)])

    h.feed(ev.MaintenanceHold(True))
    assert h.statuses(1)[-1] == "Charging" and h.contactor(1), "the transaction goes on"
    assert h.statuses(2)[-1] == "Unavailable"
    assert h.statuses(3) == ["Available", "Unavailable"]  # no second report
    assert not h.sent(msg.TransactionEnded)

    # New sessions are refused as on an inoperative connector.
    h.feed(ev.CsmsCommand(msg.CsmsRemoteStart("CAFE0002", connector_id=2)))
    replies = [e.response for e in h.effects if isinstance(e, fx.Reply)]
    assert replies[-1] == msg.CommandResult(RequestStatus.REJECTED)
    h.pilot("B", 2)
    h.card("CAFE0002")
    assert len(h.sent(msg.TransactionStarted)) == 1
    assert h.statuses(2)[-1] == "Unavailable"

    # The transaction ends: its connector is Unavailable too.
    h.feed(ev.CsmsCommand(msg.CsmsRemoteStop(7)))
    h.pilot("A", 1)
    assert h.sent(msg.TransactionEnded)
    assert h.statuses(1)[-1] == "Unavailable"
    assert not h.contactor(1)

    # Abandoned: the availability the CSMS chose comes back exactly, nothing was saved.
    h.feed(ev.MaintenanceHold(False))
    assert h.statuses(1)[-1] == "Available"
    assert h.statuses(2)[-1] == "Preparing"  # the EV plugged in meanwhile
    assert h.statuses(3)[-1] == "Unavailable"
    assert len([e for e in h.effects if isinstance(e, fx.SaveAvailability)]) == saved
    assert h.station.connectors[3].operative is False
    assert all(c.operative for cid, c in h.station.connectors.items() if cid != 3)


def test_the_hold_drops_a_token_waiting_for_the_plug() -> None:
    without = CoreHarness(connectors=1)  # the same script without the hold starts
    without.boot()
    without.card("CAFE0001")
    without.accept_authorize()
    without.pilot("B", 1)
    assert without.sent(msg.TransactionStarted)
    h2 = CoreHarness(connectors=1)
    h2.boot()
    h2.card("CAFE0001")
    h2.accept_authorize()
    h2.feed(ev.MaintenanceHold(True))
    h2.pilot("B", 1)
    assert not h2.sent(msg.TransactionStarted)
    assert h2.statuses(1)[-1] == "Unavailable"
    assert h2.statuses(0)[-1] == "Unavailable"  # every connector is out of service
