"""The outbox over a real store: persist before send, order, retries, restarts, the size cap.

The CSMS side is a recording ``deliver`` function (the link is the foreign boundary); time is
a fake clock the tests advance.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.core import events as ev
from agent.core import messages as msg
from agent.core.settings import Settings, core_keys
from agent.core.types import AuthorizationInfo, AuthStatus, ConnectorStatus, ErrorCode, StopReason
from agent.csms.errors import CallRejected, LinkLost
from agent.outbox import Outbox
from agent.store import Store, StoreError

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
ACCEPTED = AuthorizationInfo(AuthStatus.ACCEPTED)


@dataclass
class Call:
    ref: str
    req: msg.OutboundReq
    transaction_id: int | None
    journaled: bool  # the journal held the message when it was handed to the link


@dataclass
class RecordingCsms:
    """Answers every call at once, unless told to fail it; records each call."""

    store: Store
    calls: list[Call] = field(default_factory=list)
    failures: dict[str, list[Exception]] = field(default_factory=dict)  # ref -> raise these
    held: dict[str, asyncio.Event] = field(default_factory=dict)  # ref -> answer once set
    transaction_ids: list[int] = field(default_factory=lambda: [42, 43, 44])
    sent: Callable[[], None] | None = None  # the link's hook, once the call's frame is out
    journal_at_call: list[list[str]] = field(default_factory=list)  # before ``sent``

    async def __call__(self, ref: str, req: msg.OutboundReq,
                       transaction_id: int | None) -> msg.InboundConf:
        self.calls.append(Call(ref, req, transaction_id, self._journaled(ref)))
        self.journal_at_call.append(self._journal())
        if self.sent is not None:
            self.sent()
        if ref in self.held:
            await self.held[ref].wait()
        errors = self.failures.get(ref)
        if errors:
            raise errors.pop(0)
        if isinstance(req, msg.TransactionStarted):
            return msg.TransactionStartResult(ACCEPTED, self.transaction_ids.pop(0))
        if isinstance(req, msg.TransactionEnded):
            return msg.TransactionEndResult()
        return msg.Ack()

    def _journal(self) -> list[str]:
        try:
            return [row.ref for row in self.store.journal_rows()]
        except StoreError:
            return []

    def _journaled(self, ref: str) -> bool:
        try:
            return any(row.ref == ref for row in self.store.journal_rows())
        except StoreError:
            return False

    def refs(self) -> list[str]:
        return [call.ref for call in self.calls]


class Rig:
    """An outbox over the store in ``state_dir``, on a fake clock."""

    def __init__(self, state_dir: Path, limit: int = 1000, **seed: Any) -> None:
        self.store = Store.open(state_dir)
        self.csms = RecordingCsms(self.store)
        self.events: list[ev.Event] = []
        self.mono = 100.0
        self.wall = T0.timestamp()
        settings = Settings(core_keys(1), seed)
        self.outbox = Outbox(self.csms, self.events.append, settings, lambda: self.mono,
                             self.store, wall=lambda: self.wall, limit=limit)
        self._task = asyncio.ensure_future(self.outbox.run())

    def online(self, up: bool = True) -> None:
        self.outbox.set_link(up)
        self.outbox.set_gate(up)

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds
        self.outbox.set_gate(True)  # wakes the delivery loop to look at the clock again

    async def crash(self) -> None:
        """The process dies: nothing more is delivered or written."""
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self.store.close()

    def failed(self) -> list[tuple[str, str]]:
        return [(e.ref, e.reason) for e in self.events if isinstance(e, ev.CallFailed)]

    def answered(self) -> list[str]:
        return [e.ref for e in self.events if isinstance(e, ev.CallAnswered)]


async def until(predicate: Callable[[], object], within: float = 2.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.001)


async def idle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def start(tx_ref: int = 1) -> msg.TransactionStarted:
    return msg.TransactionStarted(tx_ref, 1, "CAFE0001", 1000, T0)


def meter(tx_ref: int, n: int) -> msg.TransactionUpdated:
    at = T0 + timedelta(seconds=10 * n)
    value = msg.SampledValue("Energy.Active.Import.Register", 1000.0 + n, "Wh")
    return msg.TransactionUpdated(tx_ref, 1, (msg.MeterSample(at, (value,)),))


def stop(tx_ref: int = 1) -> msg.TransactionEnded:
    return msg.TransactionEnded(tx_ref, 1, 1100, T0 + timedelta(minutes=5), StopReason.LOCAL)


@pytest.fixture
async def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


async def test_a_transaction_message_is_journaled_before_put_returns(rig: Rig) -> None:
    rig.outbox.put("s", start())  # link down: nothing can be sent
    assert [(r.ref, r.kind, r.tx_ref) for r in rig.store.journal_rows()] == [
        ("s", "TransactionStarted", 1)]
    assert rig.store.open_transactions()[0].tx_ref == 1


async def test_the_journal_holds_a_message_when_it_is_delivered_and_forgets_it_when_confirmed(
    rig: Rig,
) -> None:
    rig.online()
    for ref, req in (("s", start()), ("m1", meter(1, 1)), ("t", stop())):
        rig.outbox.put(ref, req)
    await until(lambda: len(rig.answered()) == 3)
    assert [(c.ref, c.journaled, c.transaction_id) for c in rig.csms.calls] == [
        ("s", True, None), ("m1", True, 42), ("t", True, 42)]
    assert rig.store.journal_rows() == []
    tx = rig.store.transaction(1)
    assert tx is not None and (tx.transaction_id, tx.stop_confirmed) == (42, True)


async def test_a_confirmation_is_committed_once_the_next_call_is_out(rig: Rig) -> None:
    """The fsync of a confirmation overlaps the next round trip: the row of the message just
    confirmed is still journaled when the next call is handed to the link, and gone once the
    link says the frame is written; never more than one confirmed row is left behind."""
    rig.csms.sent = rig.outbox.flush_confirmed
    for ref, req in (("s", start()), ("m1", meter(1, 1)), ("m2", meter(1, 2)), ("t", stop())):
        rig.outbox.put(ref, req)
    rig.online()
    await until(lambda: len(rig.answered()) == 4)
    assert rig.csms.journal_at_call == [
        ["s", "m1", "m2", "t"], ["s", "m1", "m2", "t"], ["m1", "m2", "t"], ["m2", "t"]]
    assert rig.store.journal_rows() == []  # nothing more to send: committed at once
    tx = rig.store.transaction(1)
    assert tx is not None and (tx.transaction_id, tx.stop_confirmed) == (42, True)


async def test_a_confirmation_is_committed_before_the_next_one_without_the_link_hook(
    rig: Rig,
) -> None:
    for ref, req in (("s", start()), ("m1", meter(1, 1)), ("m2", meter(1, 2))):
        rig.outbox.put(ref, req)
    rig.online()
    await until(lambda: len(rig.answered()) == 3)
    assert rig.csms.journal_at_call == [["s", "m1", "m2"], ["s", "m1", "m2"], ["m1", "m2"]]
    assert rig.store.journal_rows() == []


async def test_a_confirmation_is_committed_before_a_new_message_is_journaled(rig: Rig) -> None:
    rig.csms.held["m1"] = asyncio.Event()
    rig.outbox.put("s", start())
    rig.outbox.put("m1", meter(1, 1))
    rig.online()
    await until(lambda: rig.csms.refs() == ["s", "m1"])  # s confirmed, m1 held, no hook
    rig.outbox.put("m2", meter(1, 2))
    assert [row.ref for row in rig.store.journal_rows()] == ["m1", "m2"]
    rig.csms.held["m1"].set()
    await until(lambda: len(rig.answered()) == 3)
    assert rig.store.journal_rows() == []


async def test_a_confirmation_is_committed_when_the_outbox_stops(tmp_path: Path) -> None:
    first = Rig(tmp_path)
    first.csms.held["m1"] = asyncio.Event()
    first.outbox.put("s", start())
    first.outbox.put("m1", meter(1, 1))
    first.online()
    await until(lambda: first.csms.refs() == ["s", "m1"])
    await first.crash()  # the task is cancelled with m1 in flight

    second = Rig(tmp_path)
    assert [row.ref for row in second.store.journal_rows()] == ["m1"]
    assert second.outbox.transaction_id(1) == 42


async def test_status_notifications_and_other_calls_are_not_journaled(rig: Rig) -> None:
    rig.online()
    rig.outbox.put("st", msg.StatusChanged(1, ConnectorStatus.AVAILABLE,
                                                   ErrorCode.NO_ERROR, T0))
    rig.outbox.put("hb", msg.HeartbeatRequest())
    await until(lambda: len(rig.answered()) == 2)
    assert not any(call.journaled for call in rig.csms.calls)


async def test_after_a_crash_the_unconfirmed_messages_go_out_in_order_with_the_transaction_id(
    tmp_path: Path,
) -> None:
    first = Rig(tmp_path)
    first.online()
    first.outbox.put("s", start())
    await until(lambda: first.answered() == ["s"])
    first.online(False)  # the CSMS is unreachable while charging goes on
    for ref, req in (("m1", meter(1, 1)), ("m2", meter(1, 2)), ("t", stop())):
        first.outbox.put(ref, req)
    await first.crash()

    second = Rig(tmp_path)
    assert second.outbox.backlog == 3 and second.outbox.transaction_id(1) == 42
    second.online()
    await until(lambda: len(second.answered()) == 3)
    assert [(c.ref, c.transaction_id) for c in second.csms.calls] == [
        ("m1", 42), ("m2", 42), ("t", 42)]  # and no StartTransaction again
    assert second.store.journal_rows() == []


async def test_a_start_unconfirmed_at_the_crash_is_sent_again_then_its_id_substituted(
    tmp_path: Path,
) -> None:
    first = Rig(tmp_path)
    for ref, req in (("s", start()), ("m1", meter(1, 1)), ("t", stop())):
        first.outbox.put(ref, req)
    await first.crash()

    second = Rig(tmp_path)
    second.csms.transaction_ids = [77]
    second.online()
    await until(lambda: len(second.answered()) == 3)
    assert [(c.ref, c.transaction_id) for c in second.csms.calls] == [
        ("s", None), ("m1", 77), ("t", 77)]


async def test_messages_put_after_a_restart_queue_behind_the_old_ones(tmp_path: Path) -> None:
    first = Rig(tmp_path)
    first.outbox.put("s", start())
    await first.crash()
    second = Rig(tmp_path)
    second.outbox.put("m1", meter(1, 1))
    second.online()
    await until(lambda: len(second.answered()) == 2)
    assert second.csms.refs() == ["s", "m1"]


async def test_a_callerror_is_retried_after_attempt_times_the_retry_interval(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path, TransactionMessageRetryInterval=10)
    rig.csms.failures["s"] = [CallRejected("InternalError"), TimeoutError()]
    rig.online()
    rig.outbox.put("s", start())
    rig.outbox.put("m1", meter(1, 1))
    await until(lambda: len(rig.csms.calls) == 1)
    assert rig.store.journal_rows()[0].attempts == 1
    rig.advance(9)
    await idle()
    assert len(rig.csms.calls) == 1  # not before 1 x 10 s
    rig.advance(1)
    await until(lambda: len(rig.csms.calls) == 2)
    rig.advance(19)
    await idle()
    assert len(rig.csms.calls) == 2  # not before 2 x 10 s
    rig.advance(1)
    await until(lambda: len(rig.answered()) == 2)
    assert rig.csms.refs() == ["s", "s", "s", "m1"]  # in order: m1 waited behind the retries


async def test_after_the_attempts_a_message_is_given_up_with_the_rest_of_its_transaction(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path, TransactionMessageAttempts=2, TransactionMessageRetryInterval=1)
    rig.csms.failures["s"] = [CallRejected("InternalError")] * 2
    rig.online()
    for ref, req in (("s", start()), ("m1", meter(1, 1)), ("t", stop()), ("s2", start(2))):
        rig.outbox.put(ref, req)
    await until(lambda: len(rig.csms.calls) == 1)
    rig.advance(1)
    await until(lambda: rig.answered() == ["s2"])
    assert rig.failed() == [("s", "callerror"), ("m1", "callerror"), ("t", "callerror")]
    assert rig.csms.refs() == ["s", "s", "s2"]  # m1 and t cannot name a transactionId
    assert rig.store.journal_rows() == []


async def test_attempts_are_remembered_across_a_restart(tmp_path: Path) -> None:
    first = Rig(tmp_path, TransactionMessageAttempts=2)
    first.csms.failures["s"] = [CallRejected("InternalError")]
    first.online()
    first.outbox.put("s", start())
    await until(lambda: len(first.csms.calls) == 1)
    await first.crash()

    second = Rig(tmp_path, TransactionMessageAttempts=2, TransactionMessageRetryInterval=30)
    second.csms.failures["s"] = [CallRejected("InternalError")]
    second.online()
    await idle()
    assert second.csms.calls == []  # still waiting out the retry interval of the first run
    second.advance(30)
    await until(lambda: second.failed() == [("s", "callerror")])
    assert len(second.csms.calls) == 1


async def test_a_lost_link_is_not_an_attempt(tmp_path: Path) -> None:
    rig = Rig(tmp_path, TransactionMessageAttempts=1)
    rig.csms.failures["s"] = [LinkLost("gone")]
    rig.online()
    rig.outbox.put("s", start())
    await until(lambda: len(rig.csms.calls) == 1)
    rig.online(False)
    rig.online()
    await until(lambda: rig.answered() == ["s"])
    assert rig.failed() == []


async def test_the_size_cap_drops_the_oldest_meter_values_and_never_start_or_stop(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path, limit=4)
    rig.outbox.put("s", start())
    for n in range(1, 6):
        rig.outbox.put(f"m{n}", meter(1, n))
    rig.outbox.put("t", stop())
    rig.outbox.put("s2", start(2))
    assert [r.ref for r in rig.store.journal_rows()] == ["s", "m5", "t", "s2"]
    assert rig.failed() == [(f"m{n}", "dropped") for n in range(1, 5)]
    rig.outbox.put("t2", stop(2))  # only Start and Stop left: the journal grows past the cap
    rig.outbox.put("s3", start(3))
    assert [r.ref for r in rig.store.journal_rows()] == ["s", "t", "s2", "t2", "s3"]
    rig.online()
    await until(lambda: len(rig.answered()) == 5)
    assert rig.csms.refs() == ["s", "t", "s2", "t2", "s3"]


async def test_the_size_cap_spares_the_message_in_flight(tmp_path: Path) -> None:
    rig = Rig(tmp_path, limit=2)
    rig.csms.held["m1"] = gate = asyncio.Event()  # the CSMS is slow to answer m1
    rig.outbox.put("s", start())
    rig.outbox.put("m1", meter(1, 1))
    rig.online()
    await until(lambda: rig.answered() == ["s"])
    rig.outbox.put("m2", meter(1, 2))
    rig.outbox.put("m3", meter(1, 3))  # full: m2 goes, m1 is on the wire
    gate.set()
    await until(lambda: len(rig.answered()) == 3)
    assert rig.answered() == ["s", "m1", "m3"] and rig.failed() == [("m2", "dropped")]


async def test_a_store_that_fails_is_a_fault_not_a_crash_and_the_message_still_goes_out(
    rig: Rig,
) -> None:
    rig.store.close()  # every write from now on fails
    rig.online()
    rig.outbox.put("s", start())
    rig.outbox.put("m1", meter(1, 1))
    await until(lambda: len(rig.answered()) == 2)
    faults = [e for e in rig.events if isinstance(e, ev.DeviceFault)]
    assert faults == [ev.DeviceFault(0, "InternalError", True, "state store cannot be written")]
    assert [(c.ref, c.journaled, c.transaction_id) for c in rig.csms.calls] == [
        ("s", False, None), ("m1", False, 42)]
