"""Device faults in the core: which errorCode, which status, what latches, the lock, the 6 s
rule after the offer stops, and UnlockConnector."""

from __future__ import annotations

from agent.core import effects as fx
from agent.core import events as ev
from agent.core import messages as msg
from agent.core.outputs import LOCK_RETRY, OFFER_STOP_GRACE
from agent.core.types import AuthorizationInfo, AuthStatus, ErrorCode, RequestStatus

from .harness import CoreHarness

TAG = "AAAA0001"


def charging(lock: bool = False, **seed: object) -> CoreHarness:
    h = CoreHarness(**seed)
    h.station.connectors[1].has_lock = lock
    h.boot()
    h.pilot("B")
    h.card(TAG)
    h.accept_authorize()
    h.accept_start()
    if lock:
        h.feed(ev.LockMoved(1, True, True))
    h.pilot("C")
    assert h.contactor(1)
    return h


def last_status(h: CoreHarness, connector_id: int = 1) -> tuple[str, str]:
    reqs = [s.req for s in h.sent(msg.StatusChanged)
            if isinstance(s.req, msg.StatusChanged)]
    req = [r for r in reqs if r.connector_id == connector_id][-1]
    return req.status.value, req.error_code.value


def fault(code: ErrorCode, active: bool = True, cid: int = 1) -> ev.DeviceFault:
    return ev.DeviceFault(cid, code.value, active, "test" if active else None)


def locks(h: CoreHarness) -> list[fx.SetLock]:
    return [e for e in h.effects if isinstance(e, fx.SetLock)]


# --- latched faults ----------------------------------------------------------------------------


def test_ground_failure_holds_after_the_rcd_resets_until_the_ev_is_unplugged() -> None:
    h = charging()
    h.feed(fault(ErrorCode.GROUND_FAILURE))
    assert not h.contactor(1)
    assert last_status(h) == ("Faulted", "GroundFailure")

    h.feed(fault(ErrorCode.GROUND_FAILURE, active=False))
    assert last_status(h) == ("Faulted", "GroundFailure")
    assert not h.contactor(1)

    h.pilot("A")
    assert last_status(h)[1] == "NoError"


def test_a_contactor_fault_while_no_ev_is_plugged_clears_with_the_device() -> None:
    h = CoreHarness()
    h.boot()
    h.feed(fault(ErrorCode.POWER_SWITCH_FAILURE))
    assert last_status(h) == ("Faulted", "PowerSwitchFailure")
    h.feed(fault(ErrorCode.POWER_SWITCH_FAILURE, active=False))
    assert last_status(h) == ("Available", "NoError")


def test_a_welded_contactor_refuses_every_new_session() -> None:
    h = CoreHarness()
    h.boot()
    h.feed(fault(ErrorCode.POWER_SWITCH_FAILURE))
    reply = h.feed(ev.CsmsCommand(msg.CsmsRemoteStart(TAG, 1)))
    assert fx.Reply(msg.CommandResult(RequestStatus.REJECTED)) in reply
    h.pilot("B")
    h.card(TAG)
    h.pilot("C")
    assert not h.sent(msg.AuthorizationRequest) and not h.sent(msg.TransactionStarted)
    assert not h.contactor(1)


# --- the pilot ---------------------------------------------------------------------------------


def test_a_lost_pilot_device_is_internal_error_not_the_evs_fault() -> None:
    h = charging()
    h.feed(fault(ErrorCode.INTERNAL_ERROR))  # the driver reports the loss first ...
    h.pilot("E")  # ... then E as its stand-in
    assert not h.contactor(1)
    assert last_status(h) == ("Faulted", "InternalError")
    codes = {s.req.error_code for s in h.sent(msg.StatusChanged)
             if isinstance(s.req, msg.StatusChanged)}
    assert ErrorCode.EV_COMMUNICATION_ERROR not in codes

    h.feed(fault(ErrorCode.INTERNAL_ERROR, active=False))
    h.pilot("C")
    assert last_status(h) == ("Charging", "NoError")
    assert h.contactor(1)


def test_pilot_e_from_the_ev_is_ev_communication_error() -> None:
    h = charging()
    h.pilot("F")
    assert last_status(h) == ("Faulted", "EVCommunicationError")
    assert not h.contactor(1)
    h.pilot("C")
    assert last_status(h) == ("Charging", "NoError")


# --- the 6 s rule ------------------------------------------------------------------------------


def deauthorized(**seed: object) -> CoreHarness:
    """Charging, then StartTransaction.conf says Invalid and the transaction goes on."""
    h = CoreHarness(StopTransactionOnInvalidId=False, **seed)
    h.boot()
    h.pilot("B")
    h.card(TAG)
    h.accept_authorize()
    h.pilot("C")
    assert h.contactor(1)
    h.answer(h.last(msg.TransactionStarted),
             msg.TransactionStartResult(AuthorizationInfo(AuthStatus.INVALID), 1))
    return h


def offers(h: CoreHarness) -> list[float]:
    return [e.amps for e in h.effects if isinstance(e, fx.SetOfferedCurrent)]


def test_the_contactor_opens_6_s_after_the_offer_stopped_if_the_ev_stays_in_c() -> None:
    h = deauthorized()
    assert offers(h)[-1] == 0.0
    assert h.contactor(1)  # the EV gets its time to stop drawing
    assert last_status(h) == ("SuspendedEVSE", "NoError")
    h.advance(OFFER_STOP_GRACE - 0.1)
    assert h.contactor(1)
    h.advance(0.1)
    assert not h.contactor(1)


def test_an_ev_that_goes_to_b_opens_the_contactor_at_once() -> None:
    h = deauthorized()
    h.pilot("B")
    assert not h.contactor(1)
    assert "offer_stop:1" not in h.timers
    h.pilot("C")
    h.advance(OFFER_STOP_GRACE * 2)
    assert not h.contactor(1)  # no offer, no close


def test_a_fault_during_the_grace_opens_at_once() -> None:
    h = deauthorized()
    h.feed(fault(ErrorCode.POWER_METER_FAILURE))
    assert not h.contactor(1)


# --- the connector lock ------------------------------------------------------------------------


def test_the_contactor_waits_for_the_lock() -> None:
    h = CoreHarness()
    h.station.connectors[1].has_lock = True
    h.boot()
    assert locks(h) == [fx.SetLock(1, False)]  # a plug left locked is freed at start
    h.pilot("B")
    h.card(TAG)
    h.accept_authorize()
    h.accept_start()
    h.pilot("C")
    assert locks(h)[-1] == fx.SetLock(1, True)
    assert not h.contactor(1)
    h.feed(ev.LockMoved(1, True, True))
    assert h.contactor(1)


def test_a_lock_that_does_not_move_is_retried_and_clears_when_it_does() -> None:
    h = CoreHarness()
    h.station.connectors[1].has_lock = True
    h.boot()
    h.pilot("B")
    h.card(TAG)
    h.accept_authorize()
    h.accept_start()
    h.pilot("C")
    h.feed(ev.LockMoved(1, True, False, "did not lock"))
    assert last_status(h) == ("Faulted", "ConnectorLockFailure")
    assert not h.contactor(1)
    h.advance(LOCK_RETRY)
    assert locks(h)[-1] == fx.SetLock(1, True)
    h.feed(ev.LockMoved(1, True, True))
    assert last_status(h) == ("Charging", "NoError")
    assert h.contactor(1)


def test_the_lock_opens_when_the_transaction_ends() -> None:
    h = charging(lock=True)
    h.feed(ev.CsmsCommand(msg.CsmsRemoteStop(transaction_id=1)))
    assert not h.contactor(1)
    assert locks(h)[-1] == fx.SetLock(1, False)


# --- UnlockConnector ---------------------------------------------------------------------------


def test_unlock_without_a_lock_is_not_supported() -> None:
    h = charging()
    out = h.feed(ev.CsmsCommand(msg.CsmsUnlockConnector(1)))
    assert fx.Reply(msg.StatusResult("NotSupported")) in out
    assert h.contactor(1)
    out = h.feed(ev.CsmsCommand(msg.CsmsUnlockConnector(7)))
    assert fx.Reply(msg.StatusResult("NotSupported")) in out


def test_unlock_with_a_lock_ends_the_transaction_then_drives_the_lock() -> None:
    h = charging(lock=True)
    out = h.feed(ev.CsmsCommand(msg.CsmsUnlockConnector(1)))
    assert fx.Reply(msg.StatusResult("Unlocked")) in out
    opened = out.index(fx.SetContactor(1, False))
    assert out.index(fx.SetLock(1, False, answer=True)) > opened  # power off first
    stop = h.last(msg.TransactionEnded).req
    assert isinstance(stop, msg.TransactionEnded) and stop.reason.value == "UnlockCommand"


def test_unlock_with_a_lock_and_no_transaction_still_drives_the_lock() -> None:
    h = CoreHarness()
    h.station.connectors[1].has_lock = True
    h.boot()
    out = h.feed(ev.CsmsCommand(msg.CsmsUnlockConnector(1)))
    assert fx.SetLock(1, False, answer=True) in out


# --- the reader --------------------------------------------------------------------------------


def test_a_lost_reader_shows_on_connector_0_only_and_nothing_stops() -> None:
    h = charging()
    h.feed(fault(ErrorCode.READER_FAILURE, cid=0))
    assert last_status(h, 0) == ("Available", "ReaderFailure")
    assert last_status(h) == ("Charging", "NoError")
    assert h.contactor(1)
    h.feed(fault(ErrorCode.READER_FAILURE, active=False, cid=0))
    assert last_status(h, 0) == ("Available", "NoError")
