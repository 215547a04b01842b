"""Offline replay: transaction messages queued while the CSMS was unreachable, delivered after
the link comes back; messages per second.

The agent's own delivery layer (agent.outbox.Outbox) queues one transaction while the link is
down: StartTransaction, MeterValues, StopTransaction, 10,000 messages in all. Then the agent's
WebSocket link (agent.csms.link.Link, OCPP 1.6J over the ``ocpp`` library) connects to the
evsim CSMS on loopback, and the Outbox delivers the backlog in order, one call at a time, each
confirmed by the CSMS (which validates every frame against the schemas), the transactionId
from StartTransaction.conf substituted into the rest. Timed from the link coming up to the
StopTransaction's confirmation.

When the Outbox keeps a durable journal (agent.store), the messages are journaled in a state
directory on disk (one commit for the whole offline batch) and each confirmation is committed
as it arrives, as in the agent; the report says which was measured.

With the CSMS in its own process the replay runs three times (once with ``--quick``) on a
fresh store and CSMS each time; the figure is the median, the spread is reported. The CSMS's
own check of every frame against the schemas (:class:`BenchCsms`) runs after the replay, not
inside each round trip.

    python -m benchmarks.replay [--quick] [--json PATH]
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent.core import events as ev
from agent.core import messages as msg
from agent.core.settings import Settings, core_keys
from agent.core.types import RequestStatus, StopReason
from agent.csms import v16
from agent.csms.link import Link, LinkSettings
from agent.outbox import Outbox
from benchmarks.harness import quiet_logging, workdir
from benchmarks.report import Result, benchmark_main, say
from evsim.csms import Csms, Frame

FULL_MESSAGES, QUICK_MESSAGES = 10_000, 500
FULL_ROUNDS, QUICK_ROUNDS = 3, 1  # with the CSMS in its own process
SAMPLE_SECONDS = 10  # the queued MeterValues are 10 s apart, as at 10 s sampling
DEADLINE = 900.0


def backlog(count: int) -> Iterator[tuple[str, msg.OutboundReq]]:
    """One transaction of ``count`` messages: start, count - 2 samples, stop."""
    start = datetime.now(UTC) - timedelta(seconds=SAMPLE_SECONDS * count)
    energy = 1_234_500.0
    yield "start", msg.TransactionStarted(1, 1, "B0000001", int(energy), start)
    for i in range(1, count - 1):
        energy += 30.5
        sample = msg.MeterSample(start + timedelta(seconds=SAMPLE_SECONDS * i), (
            msg.SampledValue("Energy.Active.Import.Register", energy, "Wh"),
            msg.SampledValue("Power.Active.Import", 11_000.0, "W"),
        ))
        yield f"mv-{i}", msg.TransactionUpdated(1, 1, (sample,), i)
    stop_at = start + timedelta(seconds=SAMPLE_SECONDS * (count - 1))
    yield "stop", msg.TransactionEnded(1, 1, int(energy), stop_at, StopReason.EV_DISCONNECTED,
                                       count - 1)


@contextlib.contextmanager
def durable_store(state_dir: Path) -> Iterator[Any]:
    """The agent's state store when the Outbox journals (None when it does not)."""
    if "store" not in inspect.signature(Outbox).parameters:
        yield None
        return
    from agent.store import Store

    store = Store.open(state_dir)
    try:
        yield store
    finally:
        store.close()


def _refuse(request: msg.CsmsRequest) -> msg.CsmsResponse:
    return msg.CommandResult(RequestStatus.REJECTED)


class Replay:
    def __init__(self, url: str, store: Any) -> None:
        self.answered = 0
        self.failed: list[str] = []
        self.up_at: float | None = None
        self.up_cpu = 0.0
        self.done = asyncio.Event()
        settings = Settings(core_keys(1))
        extra: dict[str, Any] = {} if store is None else {"store": store}
        self.outbox = Outbox(self._deliver, self._report, settings, time.monotonic, **extra)
        self.outbox.set_gate(True)  # registered before the outage
        self.link = Link(LinkSettings(url=url, charge_point_id="REPLAY-1",
                                      reconnect_min=0.1, reconnect_max=1.0, ping_interval=0),
                         v16.ADAPTER, _refuse, self._on_state,
                         **self._sent_hook())

    def _sent_hook(self) -> dict[str, Any]:
        """The outbox commits a confirmation once the next call is out, where it can."""
        flush = getattr(self.outbox, "flush_confirmed", None)
        if flush is None or "sent" not in inspect.signature(Link).parameters:
            return {}
        return {"sent": flush}

    async def _deliver(self, ref: str, req: msg.OutboundReq,
                       transaction_id: int | None) -> msg.InboundConf:
        return await self.link.send(ref, req, transaction_id)

    def _report(self, event: ev.Event) -> None:
        if isinstance(event, ev.CallAnswered):
            self.answered += 1
            if event.ref == "stop":
                self.done.set()
        elif isinstance(event, ev.CallFailed):
            self.failed.append(f"{event.ref}: {event.reason}")
            if event.ref == "stop":
                self.done.set()

    def _on_state(self, up: bool) -> None:
        if up and self.up_at is None:
            self.up_at, self.up_cpu = time.monotonic(), time.process_time()
        self.outbox.set_link(up)


class BenchCsms(Csms):
    """The evsim CSMS with the bench's frame check taken off the measured path.

    evsim's Csms validates every frame it receives as it records it, and the ocpp library
    validates each call once more when it routes it (answering an invalid one with a
    CALLERROR). The second is what any CSMS does; the first is the test bench's own check and
    doubled the CSMS's CPU per message inside each round trip. For calls it is done after the
    replay, in :meth:`check_frames`: the same frames, the same violations.
    """

    def __init__(self) -> None:
        super().__init__()
        self._unchecked: list[tuple[str, Frame]] = []

    def validate(self, direction: str, raw: str, frame: Frame) -> None:
        if direction == "in" and frame.message_type == 2:
            self._unchecked.append((raw, frame))
        else:
            super().validate(direction, raw, frame)

    def check_frames(self) -> None:
        unchecked, self._unchecked = self._unchecked, []
        for raw, frame in unchecked:
            super().validate("in", raw, frame)


def books(csms: Csms, count: int) -> dict[str, Any]:
    """What the CSMS booked, and whether the messages came in the order they happened."""
    if isinstance(csms, BenchCsms):
        csms.check_frames()
    records = list(csms.transactions.values())
    in_order = [f.action for f in csms.calls()
                if f.action in ("StartTransaction", "MeterValues", "StopTransaction")]
    return {
        "csms_transactions": len(records),
        "csms_meter_values": sum(len(t.meter_values) for t in records),
        "csms_stopped": sum(t.stop_count for t in records),
        "in_order": in_order[:1] == ["StartTransaction"]
        and in_order[-1:] == ["StopTransaction"] and len(in_order) == count,
        "csms_violations": len(csms.violations),
    }


class CsmsProcess:
    """The evsim CSMS in its own process (benchmarks.csms_process), as a real one would be."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self.url = ""

    async def __aenter__(self) -> CsmsProcess:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benchmarks.csms_process",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 30)
        self.url = json.loads(line)["url"]
        return self

    async def books(self, count: int) -> dict[str, Any]:
        """Ask the CSMS what it booked; it exits after answering."""
        assert self.proc is not None and self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(f"{count}\n".encode())
        await self.proc.stdin.drain()
        answer: dict[str, Any] = json.loads(await asyncio.wait_for(self.proc.stdout.readline(), 30))
        return answer

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


async def replay_into(url: str, count: int, state_dir: Path) -> dict[str, Any]:
    """Queue ``count`` messages with the link down, connect to ``url``, time the delivery."""
    with durable_store(state_dir) as store:
        replay = Replay(url, store)
        t0 = time.monotonic()
        batch = store.write() if store is not None and hasattr(store, "write") \
            else contextlib.nullcontext()
        with batch:
            for ref, req in backlog(count):
                replay.outbox.put(ref, req)
        queued_in = time.monotonic() - t0
        tasks = [asyncio.create_task(replay.outbox.run()),
                 asyncio.create_task(replay.link.run())]
        try:
            await asyncio.wait_for(replay.done.wait(), DEADLINE)
            done_at, cpu = time.monotonic(), time.process_time()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    assert replay.up_at is not None
    seconds = done_at - replay.up_at
    return {
        "messages": count,
        "durable_journal": store is not None,
        "queue_seconds": round(queued_in, 3),
        "replay_seconds": round(seconds, 3),
        "messages_per_second": round(count / seconds, 1),
        "process_cpu_ms_per_message": round(1000 * (cpu - replay.up_cpu) / count, 3),
        "answered": replay.answered,
        "failed": len(replay.failed),
    }


async def run_replay(count: int, state_dir: Path, csms_in_process: bool) -> dict[str, Any]:
    if csms_in_process:
        async with BenchCsms() as csms:
            out = await replay_into(csms.url, count, state_dir)
            out.update(books(csms, count))
            return out
    async with CsmsProcess() as remote:
        out = await replay_into(remote.url, count, state_dir)
        out.update(await remote.books(count))
        return out


async def one_round(count: int, csms_in_process: bool) -> dict[str, Any]:
    """One replay on a fresh state directory."""
    with workdir() as path:
        state_dir = path / "state"
        os.makedirs(state_dir, exist_ok=True)
        out = await run_replay(count, state_dir, csms_in_process)
        out["state_dir_filesystem"] = filesystem(state_dir)
        return out


def filesystem(path: Path) -> str:
    try:
        out = subprocess.run(["df", "-T", str(path)], capture_output=True, text=True,
                             check=False, timeout=5).stdout.splitlines()
        return out[1].split()[1] if len(out) > 1 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


async def measure(quick: bool) -> Result:
    quiet_logging()
    count = QUICK_MESSAGES if quick else FULL_MESSAGES
    rounds = QUICK_ROUNDS if quick else FULL_ROUNDS
    metrics: dict[str, Any] = {}
    own: list[dict[str, Any]] = []
    for k in range(rounds):
        say(f"replay: {count} queued transaction messages, csms own process "
            f"(round {k + 1} of {rounds})")
        own.append(await one_round(count, False))
    say(f"replay: {count} queued transaction messages, csms same loop")
    metrics["csms_same_loop"] = await one_round(count, True)
    rates = sorted(r["messages_per_second"] for r in own)
    median = rates[len(rates) // 2]
    metrics["csms_own_process"] = next(r for r in own if r["messages_per_second"] == median)
    metrics["csms_own_process_rounds"] = [r["messages_per_second"] for r in own]
    metrics["messages_per_second"] = median
    durable = metrics["csms_own_process"]["durable_journal"]
    result = Result(
        name="replay",
        title="offline backlog delivered after reconnect",
        measured=(
            f"{count} transaction messages (1 StartTransaction, {count - 2} MeterValues, "
            "1 StopTransaction) queued in agent.outbox.Outbox while the link was down, "
            "delivered over agent.csms.link.Link to the evsim CSMS on loopback; from the link "
            "coming up to StopTransaction confirmed. The CSMS runs in its own process (as a "
            "real one is elsewhere), and again on the agent's event loop for comparison. "
            + ("Journaled in the agent's SQLite store (agent.store) on disk."
               if durable else "In memory: the Outbox has no durable journal in this build.")
        ),
        quick=quick,
        metrics=metrics,
    )
    for where, label in (("csms_own_process", "CSMS in its own process"),
                         ("csms_same_loop", "CSMS on the agent's loop")):
        m = metrics[where]
        result.row(label, f"{m['messages_per_second']:.0f} messages/s "
                   f"({m['replay_seconds']:.1f} s); {m['answered']} of {count} confirmed, "
                   f"{m['failed']} failed, in order: {m['in_order']}")
    if rounds > 1:
        result.row("  rounds, CSMS in its own process",
                   f"median {median:.0f} messages/s; {min(rates):.0f} to {max(rates):.0f} "
                   f"over {rounds} rounds (" + ", ".join(f"{r:.0f}" for r in
                                                        metrics["csms_own_process_rounds"]) + ")")
    m = metrics["csms_own_process"]
    cpu = m["process_cpu_ms_per_message"]
    m["csms_cpu_ms_per_message"] = round(1000 * m.get("csms_cpu_seconds", 0.0) / count, 3)
    result.row("CPU per message", f"agent {cpu:.2f} ms, CSMS {m['csms_cpu_ms_per_message']:.2f}"
               f" ms (the agent alone could replay about {1000 / cpu:.0f} messages/s)")
    result.row("journal", (f"SQLite on {m['state_dir_filesystem']}, {count} messages queued "
                           f"in {m['queue_seconds']:.2f} s") if durable else "in memory")
    result.row("CSMS books", f"{m['csms_transactions']} transaction, "
               f"{m['csms_meter_values']} meter values, {m['csms_stopped']} stop, "
               f"{m['csms_violations']} schema violations")
    result.budget("replay rate (CSMS in its own process, median)", "messages_per_second", 1000,
                  "msg/s", at_least=True)
    result.notes.append("one call at a time (OCPP 1.6): the rate is bounded by the round "
                        "trip, so over a link with 50 ms RTT it cannot exceed ~20 messages/s")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    return benchmark_main(measure, argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
