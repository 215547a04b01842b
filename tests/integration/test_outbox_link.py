"""The outbox over the real link and a real CSMS: a confirmation's commit overlaps the next
round trip, and nothing confirmed is left behind.

The agent's Outbox and Link (OCPP 1.6J over ``websockets``) deliver a backlog queued offline
to the evsim CSMS on loopback, which validates every frame. As each call arrives, the test
reads the agent's journal: the message confirmed just before is already gone (its commit was
made once the new call had been written, agent.outbox's Durability), and nothing older is left.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.core import events as ev
from agent.core import messages as msg
from agent.core.settings import Settings, core_keys
from agent.core.types import RequestStatus, StopReason
from agent.csms import v16
from agent.csms.link import Link, LinkSettings
from agent.outbox import Outbox
from agent.store import Store
from evsim.csms import Csms, Frame

T0 = datetime.now(UTC) - timedelta(hours=1)


def backlog() -> list[tuple[str, msg.OutboundReq]]:
    value = lambda n: msg.SampledValue("Energy.Active.Import.Register", 1000.0 + n, "Wh")  # noqa: E731
    samples = [msg.TransactionUpdated(1, 1, (msg.MeterSample(T0 + timedelta(seconds=n),
                                                             (value(n),)),), n)
               for n in range(1, 4)]
    return [("s", msg.TransactionStarted(1, 1, "CAFE0001", 1000, T0)),
            *((f"m{n}", s) for n, s in enumerate(samples, 1)),
            ("t", msg.TransactionEnded(1, 1, 1003, T0 + timedelta(seconds=5),
                                       StopReason.LOCAL, 4))]


async def test_each_confirmation_is_committed_once_the_next_call_is_on_the_wire(
    tmp_path: Path,
) -> None:
    answered: list[str] = []
    done = asyncio.Event()

    def report(event: ev.Event) -> None:
        assert not isinstance(event, ev.CallFailed), event
        if isinstance(event, ev.CallAnswered):
            answered.append(event.ref)
            if event.ref == "t":
                done.set()

    with Store.open(tmp_path) as store:
        async with Csms() as csms:
            journal_at_call: list[list[str]] = []

            def on_frame(frame: Frame) -> None:
                if frame.direction == "in" and frame.message_type == 2:
                    journal_at_call.append([row.ref for row in store.journal_rows()])

            csms.on_frame = on_frame
            holder: list[Link] = []
            outbox = Outbox(lambda ref, req, txid: holder[0].send(ref, req, txid), report,
                            Settings(core_keys(1)), time.monotonic, store)
            link = Link(LinkSettings(url=csms.url, charge_point_id="CP-OVERLAP",
                                     reconnect_min=0.1, reconnect_max=1.0, ping_interval=0),
                        v16.ADAPTER, lambda _: msg.CommandResult(RequestStatus.REJECTED),
                        outbox.set_link, sent=outbox.flush_confirmed)
            holder.append(link)
            for ref, req in backlog():
                outbox.put(ref, req)
            outbox.set_gate(True)
            tasks = [asyncio.ensure_future(outbox.run()), asyncio.ensure_future(link.run())]
            try:
                await asyncio.wait_for(done.wait(), 10)
                await asyncio.sleep(0.05)  # the loop goes idle: the last commit is made
                rows = [row.ref for row in store.journal_rows()]
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            assert csms.violations == []
    assert answered == ["s", "m1", "m2", "m3", "t"]
    refs = ["s", "m1", "m2", "m3", "t"]
    assert journal_at_call == [refs[k:] for k in range(len(refs))]
    assert rows == []
