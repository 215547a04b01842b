"""Property: whatever happens, the core never commands a contactor closed unless the connector
has an open, energy-allowed transaction, no fault, and the EV asks for power (C or D)."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.core import effects as fx
from agent.core import events as ev
from agent.core import messages as msg
from agent.core.connector import MIN_OFFER
from agent.core.lifecycle import Phase
from agent.core.outputs import OFFER_STOP_GRACE
from agent.core.schedule import ChargingProfile, ChargingSchedule, SchedulePeriod
from agent.core.types import AuthorizationInfo, AuthStatus, RegistrationStatus

from .harness import CoreHarness

CONNECTORS = 2
TAGS = ["AAAA0001", "BBBB0002"]

connector_ids = st.integers(1, CONNECTORS)
actions = st.one_of(
    st.tuples(st.just("pilot"), connector_ids, st.sampled_from("ABCDEF")),
    st.tuples(st.just("card"), st.sampled_from(TAGS)),
    st.tuples(st.just("answer"), st.sampled_from(list(AuthStatus)), st.booleans()),
    st.tuples(st.just("remote_start"), st.one_of(st.none(), st.integers(0, 3)),
              st.sampled_from(TAGS)),
    st.tuples(st.just("remote_stop"), st.integers(1, 3)),
    st.tuples(st.just("availability"), st.integers(0, CONNECTORS), st.booleans()),
    st.tuples(st.just("reset"), st.booleans()),
    st.tuples(st.just("fault"), connector_ids, st.booleans()),
    st.tuples(st.just("link"), st.booleans()),
    st.tuples(st.just("time"), st.floats(0.1, 8) | st.floats(0.1, 120)),
    st.tuples(st.just("limit"), connector_ids, st.sampled_from([None, 0.0, 3.0, 6.0, 10.0])),
    st.tuples(st.just("profile"), st.integers(0, CONNECTORS), st.sampled_from([0, 5, 8, 16])),
)


def apply(h: CoreHarness, action: tuple[object, ...]) -> None:
    kind = action[0]
    if kind == "pilot":
        h.pilot(str(action[2]), int(action[1]))  # type: ignore[call-overload]
    elif kind == "card":
        h.card(str(action[1]))
    elif kind == "answer":
        answer_oldest(h, action[1], bool(action[2]))  # type: ignore[arg-type]
    elif kind == "remote_start":
        cid = action[1]
        h.feed(ev.CsmsCommand(msg.CsmsRemoteStart(str(action[2]), cid)))  # type: ignore[arg-type]
    elif kind == "remote_stop":
        h.feed(ev.CsmsCommand(msg.CsmsRemoteStop(transaction_id=int(action[1]))))  # type: ignore[call-overload]
    elif kind == "availability":
        h.feed(ev.CsmsCommand(msg.CsmsChangeAvailability(int(action[1]),  # type: ignore[call-overload]
                                                         bool(action[2]))))
    elif kind == "reset":
        h.feed(ev.CsmsCommand(msg.CsmsReset(bool(action[1]))))
    elif kind == "fault":
        h.feed(ev.DeviceFault(int(action[1]), "PowerMeterFailure", bool(action[2])))  # type: ignore[call-overload]
    elif kind == "link":
        h.feed(ev.LinkUp() if action[1] else ev.LinkDown())
    elif kind == "limit":
        h.feed(ev.LocalLimitSet(int(action[1]), action[2], "test"))  # type: ignore[call-overload, arg-type]
    elif kind == "profile":
        cid, amps = action[1], action[2]
        assert isinstance(cid, int) and isinstance(amps, int)
        h.feed(ev.CsmsCommand(msg.CsmsSetChargingProfile(tx_default(cid, float(amps)))))
    else:
        h.advance(float(action[1]))  # type: ignore[arg-type]


def answer_oldest(h: CoreHarness, status: AuthStatus, fail: bool) -> None:
    """Answer the oldest unanswered Authorize or StartTransaction (or fail it); the core does
    not wait for the answers to anything else."""
    answered = {e.ref for e in h.answered}
    decisive = (msg.AuthorizationRequest, msg.TransactionStarted, msg.RegistrationRequest)
    pending = [s for s in h.sent() if s.ref not in answered and isinstance(s.req, decisive)]
    if not pending:
        return
    send = pending[0]
    h.answered.append(send)
    if fail:
        h.feed(ev.CallFailed(send.ref, "timeout"))
        return
    info = AuthorizationInfo(status)
    conf: msg.InboundConf
    if isinstance(send.req, msg.AuthorizationRequest):
        conf = msg.AuthorizationResult(info)
    elif isinstance(send.req, msg.TransactionStarted):
        conf = msg.TransactionStartResult(info, len(h.answered))
    elif isinstance(send.req, msg.RegistrationRequest):
        conf = msg.RegistrationResult(RegistrationStatus.ACCEPTED, 60)
    else:
        conf = msg.Ack()
    h.feed(ev.CallAnswered(send.ref, conf))


def tx_default(connector_id: int, amps: float) -> ChargingProfile:
    schedule = ChargingSchedule("A", (SchedulePeriod(0, amps),))
    return ChargingProfile(1, connector_id, 0, "TxDefaultProfile", "Relative", schedule)


def offer_stopped_at(h: CoreHarness, cid: int) -> float:
    offers = [(at, e) for at, e in h.timed if isinstance(e, fx.SetOfferedCurrent)
              and e.connector_id == cid]
    assert offers and offers[-1][1].amps == 0
    return offers[-1][0]


def check_invariant(h: CoreHarness) -> None:
    for cid, connector in h.station.connectors.items():
        assert connector.offered == 0 or MIN_OFFER <= connector.offered <= connector.max_current
        if not h.contactor(cid):
            continue
        # closed under an offer, or at most OFFER_STOP_GRACE s after the offer stopped (the
        # IEC 61851-1 grace; a resume held by the 5 s offer spacing stays within it)
        assert connector.offered > 0 or h.mono - offer_stopped_at(h, cid) <= OFFER_STOP_GRACE
        h.closed_seen += 1
        tx = connector.transaction
        assert tx is not None and connector.phase is Phase.TRANSACTION
        assert tx.energy_allowed and tx.stopping is None
        assert not connector.faulted
        assert connector.pilot.wants_energy
        assert connector.operative or connector.pending_inoperative


def charging_session() -> list[tuple[object, ...]]:
    return [("pilot", 1, "B"), ("card", TAGS[0]), ("answer", AuthStatus.ACCEPTED, False),
            ("answer", AuthStatus.ACCEPTED, False), ("pilot", 1, "C")]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(actions, max_size=40), st.lists(actions, max_size=40))
def test_the_contactor_closes_only_when_everything_allows_it(
    before: list[tuple[object, ...]], after: list[tuple[object, ...]]
) -> None:
    """Random events, a real charging session, then more random events."""
    steps = [*before, *charging_session(), *after]
    h = CoreHarness(connectors=CONNECTORS, LocalAuthorizeOffline=True)
    h.boot()
    h.answered.extend(h.sent(msg.RegistrationRequest))
    for step in steps:
        apply(h, step)
        check_invariant(h)
    closes = [e for e in h.effects if isinstance(e, fx.SetContactor) and e.closed]
    for close in closes:
        assert 1 <= close.connector_id <= CONNECTORS


def test_the_scripted_session_does_close_the_contactor() -> None:
    """Guards the property test against vacuity: its session really charges."""
    h = CoreHarness(connectors=CONNECTORS)
    h.boot()
    h.answered.extend(h.sent(msg.RegistrationRequest))
    for step in charging_session():
        apply(h, step)
    assert h.contactor(1)


limit_actions = st.one_of(
    st.tuples(st.just("limit"), st.just(1), st.sampled_from([None, 0.0, 3.0, 6.0, 10.0])),
    st.tuples(st.just("profile"), st.integers(0, 1), st.sampled_from([0, 5, 8, 16])),
    st.tuples(st.just("time"), st.floats(0.1, 8)),
    st.tuples(st.just("pilot"), st.just(1), st.sampled_from("BC")),
)


def check_offer_spacing(h: CoreHarness) -> None:
    """Two offers toward the EV (neither "no charging") at least 5 s apart, unless a pause
    came between them and the later one is no resume of it (IEC 61851-1, agent/core/outputs)."""
    offers = [(at, e.amps) for at, e in h.timed
              if isinstance(e, fx.SetOfferedCurrent) and e.connector_id == 1]
    for (t0, a0), (t1, a1) in itertools.pairwise(offers):
        if a0 > 0 and a1 > 0:
            assert t1 - t0 >= 5.0 - 1e-9, offers


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(limit_actions, max_size=40))
def test_limits_never_keep_the_contactor_without_an_offer(steps: list[tuple[object, ...]]
                                                          ) -> None:
    """A charging EV under random limits, profiles and pauses: the contactor closes only
    under an offer and stays closed without one at most OFFER_STOP_GRACE s; the offer is a
    valid one (0, or 6 A up to the maximum) and changes at most once per 5 s while it flows;
    the transaction is never ended by a limit."""
    h = CoreHarness(connectors=CONNECTORS, LocalAuthorizeOffline=True)
    h.boot()
    h.answered.extend(h.sent(msg.RegistrationRequest))
    for step in [*charging_session(), *steps]:
        apply(h, step)
        check_invariant(h)
    check_offer_spacing(h)
    assert h.station.connectors[1].transaction is not None
    assert not h.sent(msg.TransactionEnded)
