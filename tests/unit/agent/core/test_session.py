"""A charging session through the core alone: plug first, card first, and the ways it ends."""

from __future__ import annotations

from agent.core import events as ev
from agent.core import messages as msg
from agent.core.types import AuthorizationInfo, AuthStatus, RegistrationStatus, StopReason

from .harness import CoreHarness


def charging(h: CoreHarness, tag: str = "CAFE0001") -> None:
    h.pilot("B")
    h.card(tag)
    h.accept_authorize()
    h.accept_start(transaction_id=7)
    h.pilot("C")


def test_boot_reports_connector_zero_and_each_connector_available() -> None:
    h = CoreHarness(connectors=2)
    h.boot()
    sent = [(s.req.connector_id, s.req.status.value) for s in h.sent(msg.StatusChanged)
            if isinstance(s.req, msg.StatusChanged)]
    assert sent == [(0, "Available"), (1, "Available"), (2, "Available")]
    assert h.timers["heartbeat"] == 300


def test_nothing_but_boot_is_sent_while_rejected_and_boot_repeats_after_interval() -> None:
    h = CoreHarness()
    h.feed(ev.Started())
    h.feed(ev.LinkUp())
    h.answer(h.last(msg.RegistrationRequest),
             msg.RegistrationResult(RegistrationStatus.REJECTED, 20))
    h.pilot("B")
    h.advance(19)
    assert [type(s.req) for s in h.sent()] == [msg.RegistrationRequest]
    h.advance(1)
    assert len(h.sent(msg.RegistrationRequest)) == 2


def test_plug_first_session_starts_with_meter_start_and_closes_only_in_c() -> None:
    h = CoreHarness()
    h.boot()
    h.pilot("B")
    assert h.statuses(1)[-1] == "Preparing"
    h.card("cafe0001")
    assert h.last(msg.AuthorizationRequest).req == msg.AuthorizationRequest("cafe0001")
    assert not h.contactor()
    h.accept_authorize()
    start = h.last(msg.TransactionStarted).req
    assert isinstance(start, msg.TransactionStarted)
    assert (start.connector_id, start.id_tag, start.meter_start_wh) == (1, "cafe0001", 1000)
    assert not h.contactor(), "EV still in B"
    h.accept_start()
    h.pilot("C")
    assert h.contactor()
    assert h.statuses(1)[-1] == "Charging"


def test_card_first_then_plug_starts_the_transaction() -> None:
    h = CoreHarness()
    h.boot()
    h.card("CAFE0001")
    h.accept_authorize()
    assert h.statuses(1)[-1] == "Preparing"
    h.pilot("B")
    assert h.sent(msg.TransactionStarted)


def test_card_first_without_plug_times_out_to_available_without_a_transaction() -> None:
    h = CoreHarness(ConnectionTimeOut=30)
    h.boot()
    h.card("CAFE0001")
    h.accept_authorize()
    h.advance(30)
    assert h.statuses(1)[-2:] == ["Preparing", "Available"]
    h.pilot("B")
    assert not h.sent(msg.TransactionStarted)


def test_ev_pause_opens_contactor_and_reports_suspended_ev() -> None:
    h = CoreHarness()
    h.boot()
    charging(h)
    h.pilot("B")
    assert not h.contactor()
    assert h.statuses(1)[-1] == "SuspendedEV"


def test_same_card_stops_with_reason_local_and_meter_stop() -> None:
    h = CoreHarness()
    h.boot()
    charging(h)
    h.energy_wh[1] = 1500.0
    h.card("CAFE0001")
    stop = h.last(msg.TransactionEnded).req
    assert isinstance(stop, msg.TransactionEnded)
    assert (stop.reason, stop.meter_stop_wh, stop.id_tag) == (StopReason.LOCAL, 1500, "CAFE0001")
    assert not h.contactor()
    assert h.statuses(1)[-1] == "Finishing"
    h.pilot("A")
    assert h.statuses(1)[-1] == "Available"


def test_other_card_does_not_stop_the_transaction() -> None:
    h = CoreHarness()
    h.boot()
    charging(h)
    h.card("OTHER")
    assert not h.sent(msg.TransactionEnded)
    assert not h.sent(msg.AuthorizationRequest)[1:], "TC_068: no Authorize for another card"


def test_unplug_stops_with_ev_disconnected() -> None:
    h = CoreHarness()
    h.boot()
    charging(h)
    h.pilot("A")
    stop = h.last(msg.TransactionEnded).req
    assert isinstance(stop, msg.TransactionEnded)
    assert stop.reason is StopReason.EV_DISCONNECTED
    assert h.statuses(1)[-2:] == ["Finishing", "Available"]


def test_rejected_card_starts_nothing() -> None:
    h = CoreHarness()
    h.boot()
    h.pilot("B")
    h.card("BAD")
    h.answer(h.last(msg.AuthorizationRequest),
             msg.AuthorizationResult(AuthorizationInfo(AuthStatus.INVALID)))
    assert not h.sent(msg.TransactionStarted)
    assert h.statuses(1)[-1] == "Preparing"


def test_sampled_meter_values_follow_the_interval() -> None:
    h = CoreHarness(MeterValueSampleInterval=10)
    h.boot()
    charging(h)
    h.energy_wh[1] = 1100.0
    h.advance(25)
    values = h.sent(msg.TransactionUpdated)
    assert len(values) == 2
    first = values[0].req
    assert isinstance(first, msg.TransactionUpdated)
    assert first.samples[0].values[0].value == 1100.0


def test_a_started_transaction_stays_preparing_while_the_ev_answers_the_offer() -> None:
    h = CoreHarness()
    h.boot()
    h.pilot("B")
    h.card("CAFE0001")
    h.accept_authorize()
    assert h.statuses(1)[-1] == "Preparing"
    h.advance(4.9)
    assert h.statuses(1)[-1] == "Preparing"
    h.advance(0.2)
    assert h.statuses(1)[-1] == "SuspendedEV", "an EV that never answers is SuspendedEV"
    h.pilot("C")
    assert h.statuses(1)[-1] == "Charging"


# --- a start the sessions API gives up (ev.StartWithdrawn) --------------------------------


def api_start_waiting(h: CoreHarness, tag: str = "API00001") -> None:
    """An API start accepted before the plug: the charger holds the token for connector 1."""
    h.feed(ev.StartRequested(tag, 1))
    h.accept_authorize()
    assert h.statuses(1)[-1] == "Preparing"
    assert "connection:1" in h.timers


def test_a_withdrawn_start_frees_the_connector_for_the_next_one() -> None:
    h = CoreHarness(ConnectionTimeOut=600)
    h.boot()
    api_start_waiting(h, "API00001")
    h.feed(ev.StartWithdrawn("api00001", 1))  # idTag compared without case
    assert "connection:1" not in h.timers
    assert h.statuses(1)[-1] == "Available"
    h.feed(ev.StartRequested("API00002", 1))
    h.accept_authorize()
    h.pilot("B")
    (started,) = h.sent(msg.TransactionStarted)
    assert isinstance(started.req, msg.TransactionStarted)
    assert (started.req.connector_id, started.req.id_tag) == (1, "API00002")


def test_withdrawing_another_token_keeps_the_one_held() -> None:
    h = CoreHarness(ConnectionTimeOut=600)
    h.boot()
    api_start_waiting(h, "API00001")
    h.feed(ev.StartWithdrawn("API00002", 1))
    assert "connection:1" in h.timers
    h.pilot("B")
    started = h.last(msg.TransactionStarted).req
    assert isinstance(started, msg.TransactionStarted) and started.id_tag == "API00001"


def test_withdrawing_a_start_whose_transaction_began_leaves_it_charging() -> None:
    h = CoreHarness(ConnectionTimeOut=600)
    h.boot()
    api_start_waiting(h, "API00001")
    h.pilot("B")
    h.accept_start(transaction_id=9)
    h.pilot("C")
    assert h.contactor()
    h.feed(ev.StartWithdrawn("API00001", 1))
    assert h.contactor()
    assert not h.sent(msg.TransactionEnded)
    assert h.statuses(1)[-1] == "Charging"
    assert h.station.connectors[1].transaction is not None


def test_a_connector_reports_no_status_before_its_first_pilot_reading() -> None:
    """After a restart with the EV still plugged in (TC_032_1), the connector's first status is
    Preparing, not an Available assumed before the pilot was read."""
    h = CoreHarness(connectors=2)
    h.feed(ev.Started())
    h.feed(ev.LinkUp())
    h.answer(h.last(msg.RegistrationRequest),
             msg.RegistrationResult(RegistrationStatus.ACCEPTED, 300))
    h.pilot("B", 1)

    def statuses() -> list[tuple[int, str]]:
        return [(s.req.connector_id, s.req.status.value) for s in h.sent(msg.StatusChanged)
                if isinstance(s.req, msg.StatusChanged)]

    assert statuses() == [(0, "Available"), (1, "Preparing")]
    h.feed(ev.DeviceFault(2, "EVCommunicationError", True, "EVSE board 3 does not answer"))
    assert statuses()[-1] == (2, "Faulted")  # a pilot that never answers is still reported
