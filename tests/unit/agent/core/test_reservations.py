"""Reservations in the core: what is kept across restarts, expiry as a timer, and who may use
a reserved connector. The OCTT cases run end to end in
tests/integration/conformance/test_reservations.py."""

from __future__ import annotations

from datetime import timedelta

from agent.core import effects as fx
from agent.core import events as ev
from agent.core import messages as msg
from agent.core.types import ConnectorStatus, Reservation

from .harness import EPOCH, CoreHarness


def command(core: CoreHarness, request: msg.CsmsRequest) -> msg.CsmsResponse:
    out = core.feed(ev.CsmsCommand(request))
    (reply,) = [e for e in out if isinstance(e, fx.Reply)]
    return reply.response


def reserve(core: CoreHarness, reservation_id: int = 7, connector_id: int = 1,
            id_tag: str = "ALICE", seconds: float = 600) -> str:
    result = command(core, msg.CsmsReserveNow(
        connector_id, EPOCH + timedelta(seconds=core.mono + seconds), id_tag, reservation_id))
    assert isinstance(result, msg.StatusResult)
    return result.status


def saved(core: CoreHarness) -> list[tuple[Reservation, ...]]:
    return [e.reservations for e in core.effects if isinstance(e, fx.SaveReservations)]


def test_every_change_of_the_reservations_is_saved_whole() -> None:
    core = CoreHarness(connectors=2)
    core.boot()
    assert reserve(core, 7, 1) == "Accepted"
    assert reserve(core, 8, 2, "BOB") == "Accepted"
    assert [r.reservation_id for r in saved(core)[-1]] == [7, 8]
    assert command(core, msg.CsmsCancelReservation(7)) == msg.StatusResult("Accepted")
    assert [r.reservation_id for r in saved(core)[-1]] == [8]
    core.advance(601)  # 8 expires
    assert saved(core)[-1] == ()
    assert core.station.status(2) is ConnectorStatus.AVAILABLE


def test_a_refused_reservation_saves_nothing() -> None:
    core = CoreHarness()
    core.boot()
    core.pilot("B")  # occupied
    assert reserve(core) == "Occupied"
    assert saved(core) == []


def test_a_restored_reservation_holds_its_connector_again_until_its_expiry() -> None:
    core = CoreHarness()
    core.station.restore_reservations(
        [Reservation(7, 1, "ALICE", EPOCH + timedelta(seconds=300))])
    core.boot()
    assert core.station.status(1) is ConnectorStatus.RESERVED
    assert core.statuses(1)[-1] == "Reserved"
    assert core.timers["reservation:7"] == 300
    core.card("BOB")  # held for someone else
    assert not core.sent(msg.AuthorizationRequest)
    core.card("ALICE")
    core.accept_authorize()
    core.pilot("B")
    start = core.last(msg.TransactionStarted).req
    assert isinstance(start, msg.TransactionStarted) and start.reservation_id == 7
    assert saved(core)[-1] == ()  # used: over


def test_a_reservation_that_expired_while_the_agent_was_down_ends_at_start() -> None:
    core = CoreHarness()
    core.mono = 100.0
    core.station.restore_reservations([Reservation(7, 1, "ALICE", EPOCH)])
    core.boot()
    core.advance(0)
    assert core.station.status(1) is ConnectorStatus.AVAILABLE
    assert saved(core)[-1] == ()


def test_a_restored_reservation_of_a_connector_now_inoperative_is_dropped() -> None:
    core = CoreHarness()
    core.station.restore_availability({1: False})
    core.station.restore_reservations(
        [Reservation(7, 1, "ALICE", EPOCH + timedelta(seconds=300))])
    core.boot()
    assert core.station.status(1) is ConnectorStatus.UNAVAILABLE
    assert saved(core)[-1] == ()
    assert "reservation:7" not in core.timers


def test_the_same_reservation_id_replaces_the_reservation() -> None:
    core = CoreHarness(connectors=2)
    core.boot()
    assert reserve(core, 7, 1, "ALICE") == "Accepted"
    assert reserve(core, 7, 2, "BOB") == "Accepted"
    (kept,) = saved(core)[-1]
    assert (kept.connector_id, kept.id_tag) == (2, "BOB")
    assert core.station.status(1) is ConnectorStatus.AVAILABLE
    assert core.station.status(2) is ConnectorStatus.RESERVED
