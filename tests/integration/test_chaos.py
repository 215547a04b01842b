"""Chaos: many charging sessions, the agent killed with SIGKILL at random moments and restarted
on the same state directory; then the CSMS's books are audited.

Each round is one session (plug, card, charge, stop by unplugging or by the card). Most rounds
kill the agent once, at a moment drawn from the phases where a crash hurts most: before
StartTransaction is confirmed (after the card; as the call reaches the CSMS; as its answer
leaves), mid-charging, during the stop (after the trigger; as the StopTransaction reaches the
CSMS; as its answer leaves) and right after it. The world and the CSMS outlive the agent.

The CSMS here is idempotent for a StartTransaction it has seen (same connector, idTag,
meterStart and timestamp): the agent delivers at least once, and one that dies after the CSMS
answered but before it journaled the answer must send the same message again. The audit:

* every transaction started is stopped exactly once (one StopTransaction message, maybe
  delivered again after a crash), meterStop >= meterStart, meterStop never beyond the meter's
  register when the stop arrived, and equal to it for a PowerLoss stop (read live at restart);
* transactionIds are never reused: messages carrying one fit that transaction;
* no message is sent twice once confirmed: a unique id comes again after its answer only when
  the agent was killed with it still in its journal; no transaction message is re-created
  (same content under a new unique id);
* the MeterValues of a transaction are in time order, within its start and stop.

The seed is printed; ``CHAOS_SEED=n`` replays a run, ``CHAOS_ROUNDS=n`` runs more rounds
(the slow variant, marked ``slow``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime

import pytest

from agent.journal import Journal
from agent.store import Store
from evsim.csms import Csms, Frame, TransactionRecord
from evsim.site import SimSite

from .agent_process import AgentProcess
from .conftest import Bench

CARD = "00A1B2C3"
CARD_GAP = 1.3  # s; the reader takes the same card within 1 s for the same presentation
ROUNDS = 10
TRANSACTION_ACTIONS = ("StartTransaction", "MeterValues", "StopTransaction")
WITHIN = 20.0  # a generous deadline for each step, against hangs only

# Where a round kills the agent (None: a clean session).
BEFORE_START_CONFIRMED = "before StartTransaction is confirmed"
MID_CHARGING = "mid-charging"
DURING_STOP = "during the stop"
AFTER_STOP = "right after the stop"
PHASES = (BEFORE_START_CONFIRMED, MID_CHARGING, DURING_STOP, AFTER_STOP)


@dataclass
class Kill:
    at: float  # loop time of the SIGKILL
    pending: set[str]  # unique ids the journal still held: these may (must) be sent again
    register_wh: float  # the meter's register once the contactor had dropped
    where: str


@dataclass
class Chaos:
    """The run: the agent, the world, the CSMS, and what the audit needs to know."""

    site: SimSite
    bench: Bench
    agent: AgentProcess
    rng: random.Random
    kills: list[Kill] = field(default_factory=list)
    stop_registers: dict[int, float] = field(default_factory=dict)  # txid -> register
    killed: asyncio.Event = field(default_factory=asyncio.Event)
    kill_at: float = 0.0
    kill_where: str = ""
    restart_mark: int = 0  # csms.frames before the agent's last start
    card_at: float = -CARD_GAP

    @property
    def csms(self) -> Csms:
        return self.site.csms

    # --- killing -----------------------------------------------------------------------

    def kill_on(self, action: str, message_type: int, where: str) -> None:
        """SIGKILL the agent the moment the CSMS records this frame (a CALL from the charger,
        or the CSMS's answer to one), before anything else happens on the loop."""
        loop = asyncio.get_running_loop()
        calls: set[str] = set()

        def on_frame(frame: Frame) -> None:
            self._watch(frame)
            if frame.direction == "in" and frame.action == action:
                calls.add(_uid(frame))
            hit = (frame.message_type == message_type and
                   (frame.action == action if message_type == 2 else _uid(frame) in calls))
            if hit and not self.killed.is_set():
                self.agent.kill_now()
                self.kill_at, self.kill_where = loop.time(), where
                self.killed.set()

        self.csms.on_frame = on_frame

    async def kill_after(self, delay: float, where: str) -> None:
        await asyncio.sleep(delay)
        self.agent.kill_now()
        self.kill_at, self.kill_where = asyncio.get_running_loop().time(), where
        self.killed.set()

    async def restart_after_kill(self) -> None:
        await asyncio.wait_for(self.killed.wait(), WITHIN)
        self.csms.on_frame = self._watch
        await self.agent.kill()  # reap it
        await self.bench.until_relay(False)  # a dead Pi drives nothing: the contactor drops
        await asyncio.sleep(0.3)  # and the meter stops counting
        register = (await self.bench.connector())["meter"]["energy_wh"]
        with Store.open(self.site.workdir / "state") as store:
            pending = {entry.ref for entry in Journal(store).pending()}
        self.kills.append(Kill(self.kill_at, pending, register, self.kill_where))
        self.killed.clear()
        self.restart_mark = len(self.csms.frames)
        await self.agent.start()

    def _watch(self, frame: Frame) -> None:
        """Keep the register as each stop arrives (the meter, read on the loop, now)."""
        if frame.direction == "in" and frame.action == "StopTransaction":
            txid = frame.payload.get("transactionId")
            if isinstance(txid, int) and txid not in self.stop_registers:
                world = self.site.world_server.world
                world.tick(world.now())
                self.stop_registers[txid] = world.connector_state(1)["meter"]["energy_wh"]

    # --- a session ---------------------------------------------------------------------

    async def until(self, predicate: Callable[[], object]) -> None:
        await self.csms.wait_for(predicate, within=WITHIN)

    async def until_status(self, *statuses: str) -> None:
        await self.until(lambda: self.csms.last_status(1) in statuses)

    def all_stopped(self) -> bool:
        return all(tx.stop_count for tx in self.csms.transactions.values())

    def reported_since_start(self) -> bool:
        """The running agent reported a status: what its journal held went out before."""
        return any(f.action == "StatusNotification" and f.direction == "in"
                   for f in self.csms.frames[self.restart_mark:])

    async def idle(self) -> None:
        """Back to an empty connector with every transaction settled at the CSMS."""
        await self.until(self.reported_since_start)
        await self.until(self.all_stopped)
        await self.bench("unplug", 1)
        await self.until_status("Available")

    async def session(self, number: int, phase: str | None) -> None:
        rng = self.rng
        stop_by = rng.choice(("unplug", "card"))
        starts = len(self.csms.calls("StartTransaction"))
        print(f"round {number}: kill {phase or 'never'}, stop by {stop_by}")
        await self.bench("plug", 1)
        await self.until_status("Preparing")
        if phase == BEFORE_START_CONFIRMED:
            how = rng.choice(("delay", "call", "answer"))
            if how == "call":
                self.kill_on("StartTransaction", 2, f"{phase}: as the call arrived")
            elif how == "answer":
                self.kill_on("StartTransaction", 3, f"{phase}: as the answer left")
            await self.present_card()
            if how == "delay":
                delay = rng.uniform(0.0, 0.6)
                await self.kill_after(delay, f"{phase}: {delay:.2f} s after the card")
            await self.restart_after_kill()
            return
        await self.present_card()
        await self.until(lambda: len(self.csms.calls("StartTransaction")) > starts)
        await self.bench("ev_state", 1, "C")
        await self.until_status("Charging")
        if phase == MID_CHARGING:
            delay = rng.uniform(0.2, 2.5)
            await self.kill_after(delay, f"{phase}: {delay:.2f} s after Charging")
            await self.restart_after_kill()
            return
        await asyncio.sleep(rng.uniform(0.5, 1.5))  # a MeterValues or two
        stops = len(self.csms.calls("StopTransaction"))
        if phase == DURING_STOP:
            how = rng.choice(("delay", "call", "answer"))
            if how == "call":
                self.kill_on("StopTransaction", 2, f"{phase}: as the call arrived")
            elif how == "answer":
                self.kill_on("StopTransaction", 3, f"{phase}: as the answer left")
        await self._stop(stop_by)
        if phase == DURING_STOP:
            if how == "delay":
                delay = rng.uniform(0.0, 0.3)
                await self.kill_after(delay, f"{phase}: {delay:.2f} s after the trigger")
            await self.restart_after_kill()
            return
        await self.until(lambda: len(self.csms.calls("StopTransaction")) > stops)
        if phase == AFTER_STOP:
            await self.until(self.all_stopped)
            delay = rng.uniform(0.0, 0.5)
            await self.kill_after(delay, f"{phase}: {delay:.2f} s after its answer")
            await self.restart_after_kill()

    async def _stop(self, stop_by: str) -> None:
        if stop_by == "unplug":
            await self.bench("unplug", 1)
        else:
            await self.present_card()

    async def present_card(self) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, self.card_at + CARD_GAP - loop.time()))
        await self.bench("present_card", CARD)
        self.card_at = loop.time()


def _uid(frame: Frame) -> str:
    return str(json.loads(frame.raw)[1])


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _idempotent_starts(csms: Csms) -> None:
    """A StartTransaction the CSMS has seen gets the same transaction again (see above)."""
    seen: dict[tuple[int, str, int, str], TransactionRecord] = {}
    open_transaction = csms.open_transaction

    def open_once(connector_id: int, id_tag: str, meter_start: int,
                  timestamp: str) -> TransactionRecord:
        key = (connector_id, id_tag, meter_start, timestamp)
        if key not in seen:
            seen[key] = open_transaction(connector_id, id_tag, meter_start, timestamp)
        return seen[key]

    csms.open_transaction = open_once  # type: ignore[method-assign]


@pytest.fixture
async def chaos(site: SimSite, bench: Bench) -> AsyncIterator[Chaos]:
    seed = int(os.environ.get("CHAOS_SEED", random.SystemRandom().randrange(1 << 32)))
    print(f"chaos seed: {seed} (CHAOS_SEED={seed} replays it)")
    _idempotent_starts(site.csms)
    run = Chaos(site, bench, AgentProcess(site), random.Random(seed))
    site.csms.on_frame = run._watch
    try:
        yield run
    finally:
        await run.agent.stop()
        print(run.agent.tail(15))  # shown when the test failed
        print("\n".join(f"kill at {k.at:.2f}: {k.where}" for k in run.kills))


def _plan(rng: random.Random, rounds: int) -> list[str | None]:
    """Every phase at least once, then random ones; a clean session now and then."""
    extra = [rng.choice((*PHASES, None)) for _ in range(max(0, rounds - len(PHASES)))]
    plan: list[str | None] = [*PHASES, *extra][:rounds]
    rng.shuffle(plan)
    return plan


@pytest.mark.parametrize("rounds", [
    pytest.param(ROUNDS, id="default"),
    pytest.param(int(os.environ.get("CHAOS_ROUNDS", 0)), id="CHAOS_ROUNDS", marks=[
        pytest.mark.slow, pytest.mark.timeout(0),
        pytest.mark.skipif("CHAOS_ROUNDS" not in os.environ, reason="set CHAOS_ROUNDS=n"),
    ]),
])
async def test_sessions_killed_at_random_moments_keep_the_books_straight(
    chaos: Chaos, rounds: int
) -> None:
    await chaos.agent.start()
    for number, phase in enumerate(_plan(chaos.rng, rounds), 1):
        await chaos.idle()
        await chaos.session(number, phase)
    await chaos.idle()
    assert await chaos.agent.terminate(WITHIN) == 0
    with Store.open(chaos.site.workdir / "state") as store:
        assert Journal(store).pending() == []  # everything delivered
    audit(chaos)


def audit(chaos: Chaos) -> None:
    csms = chaos.csms
    assert csms.violations == []
    assert chaos.kills, "the chaos test killed nothing"
    _audit_resends(csms, chaos.kills)
    _audit_recreated(csms)
    starts = sorted(csms.transactions.values(), key=lambda tx: _time(tx.started))
    assert len(starts) >= 2
    for tx in starts:
        _audit_transaction(csms, chaos, tx)
        print(f"transaction {tx.transaction_id}: {tx.meter_start}..{tx.meter_stop} Wh, "
              f"{tx.reason}, StopTransaction received {tx.stop_count}x")
    for before, after in itertools.pairwise(starts):
        assert before.meter_stop is not None and after.meter_start >= before.meter_stop
        assert before.stopped is not None and _time(before.stopped) <= _time(after.started)


def _audit_resends(csms: Csms, kills: list[Kill]) -> None:
    """A call the CSMS answered arrives again only after a kill that left it in the journal
    (the answer was lost with the agent); never otherwise."""
    sent: dict[str, float] = {}  # unique id -> when its call last arrived
    answered: set[str] = set()
    for frame in csms.frames:
        uid = _uid(frame) if frame.message_type in (2, 3) else None
        if uid is None:
            continue
        if frame.direction == "out" and frame.message_type == 3:
            answered.add(uid)
        elif frame.direction == "in" and frame.message_type == 2:
            if uid in answered:
                answered.discard(uid)
                assert any(sent[uid] < k.at < frame.at and uid in k.pending for k in kills), (
                    f"{frame.action} {uid} sent again after the CSMS confirmed it: {frame.raw}")
            sent[uid] = frame.at


def _audit_recreated(csms: Csms) -> None:
    """The same transaction message is never made twice (new unique id, same content)."""
    ids_by_content: dict[tuple[str, str], set[str]] = defaultdict(set)
    for frame in csms.calls():
        if frame.action in TRANSACTION_ACTIONS:
            content = json.dumps(frame.payload, sort_keys=True)
            ids_by_content[(frame.action, content)].add(_uid(frame))
    twice = {key: ids for key, ids in ids_by_content.items() if len(ids) > 1}
    assert twice == {}, "a transaction message was sent again as a new message"


def _unique_calls(csms: Csms, action: str, txid: int) -> list[Frame]:
    """The calls ``action`` for transaction ``txid``, a resend counted once, in order."""
    seen: set[str] = set()
    calls = []
    for frame in csms.calls(action):
        if frame.payload.get("transactionId") == txid and _uid(frame) not in seen:
            seen.add(_uid(frame))
            calls.append(frame)
    return calls


def _audit_transaction(csms: Csms, chaos: Chaos, tx: TransactionRecord) -> None:
    name = f"transaction {tx.transaction_id}"
    (stop,) = _unique_calls(csms, "StopTransaction", tx.transaction_id)  # stopped exactly once
    assert tx.stop_count >= 1 and tx.meter_stop == stop.payload["meterStop"], name
    assert tx.meter_stop is not None and tx.stopped is not None
    assert tx.meter_stop >= tx.meter_start, name
    assert tx.meter_stop <= int(chaos.stop_registers[tx.transaction_id]), (
        f"{name}: meterStop beyond the meter's register when the stop arrived")
    if tx.reason == "PowerLoss":  # ended at restart, the meter read live after the kill
        assert any(tx.meter_stop == int(k.register_wh) for k in chaos.kills), name
    samples = [(_time(value["timestamp"]), value)
               for frame in _unique_calls(csms, "MeterValues", tx.transaction_id)
               for value in frame.payload["meterValue"]]
    times = [moment for moment, _ in samples]
    assert times == sorted(times), f"{name}: MeterValues out of time order"
    assert all(_time(tx.started) <= t <= _time(tx.stopped) for t in times), (
        f"{name}: a MeterValues outside the transaction (a reused transactionId?)")
    energies = [float(v["value"]) for _, value in samples for v in value["sampledValue"]
                if v.get("measurand", "Energy.Active.Import.Register") ==
                "Energy.Active.Import.Register"]
    assert all(tx.meter_start <= e <= tx.meter_stop + 1 for e in energies), name
