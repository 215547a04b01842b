"""Property: whatever happens, the core never commands a contactor closed unless the connector
has an open, energy-allowed transaction, no fault, and the EV asks for power (C or D)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.core import effects as fx
from agent.core import events as ev
from agent.core import messages as msg
from agent.core.lifecycle import Phase
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
    st.tuples(st.just("time"), st.floats(0.1, 120)),
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


def check_invariant(h: CoreHarness) -> None:
    for cid, connector in h.station.connectors.items():
        if not h.contactor(cid):
            continue
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
