"""What the journal costs the SD card: bytes written per charging hour, fsync per put, replay.

    python -m benchmarks.storage [--quick] [--json PATH]

Drives the real :class:`agent.outbox.Outbox` over a real :class:`agent.store.Store` in a
temporary directory (on the same file system as this checkout unless ``TMPDIR`` says
otherwise), with an instant CSMS: a ``deliver`` function that confirms every call at once.
No wall time passes; a "charging hour" is the messages of one: a StartTransaction, one
MeterValues per sample interval, a StopTransaction, each journaled (one commit) and confirmed
(one more commit), exactly as in the agent.

* bytes written: the process's ``wchar`` from ``/proc/self/io`` (every byte handed to
  write/pwrite: the WAL, checkpoints into the database file), the only writer in the process
  during the run. It is what reaches the page cache, an upper bound for what the kernel
  writes to the card (the card's own erase-block amplification is not visible from here).
* fsync cost: the time of a ``put()`` of a MeterValues (append + commit with
  ``synchronous=FULL``), and of the same SQL with ``synchronous=OFF`` beside it.
* replay: N MeterValues journaled while the CSMS is unreachable, then the time to deliver and
  confirm them all once it is back.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent.core import events as ev
from agent.core import messages as msg
from agent.core.settings import Settings, core_keys
from agent.core.types import AuthorizationInfo, AuthStatus, StopReason
from agent.journal import encode
from agent.outbox import Outbox
from agent.store import Store
from benchmarks.report import Result, benchmark_main, fmt_ms, say, summary_ms

ROOT = Path(__file__).resolve().parent.parent
MB = 1_000_000
HOUR = 3600
T0 = datetime(2026, 1, 1, tzinfo=UTC)
TWO_VALUES = ("energy+power", 2)  # the shipped MeterValuesSampledData seed
TEN_VALUES = ("3-phase, 9 values", 9)  # energy, power, current and voltage per phase


def wchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise OSError("no wchar in /proc/self/io")


def sample(at: datetime, energy_wh: float, values: int) -> msg.MeterSample:
    out = [msg.SampledValue("Energy.Active.Import.Register", energy_wh, "Wh"),
           msg.SampledValue("Power.Active.Import", 11040.0, "W")]
    if values > 2:
        out += [msg.SampledValue("Current.Import", 16.02, "A", p) for p in ("L1", "L2", "L3")]
        out += [msg.SampledValue("Voltage", 230.4, "V", p) for p in ("L1", "L2", "L3")]
    return msg.MeterSample(at, tuple(out[:values]))


async def instant_csms(ref: str, req: msg.OutboundReq, txid: int | None) -> msg.InboundConf:
    if isinstance(req, msg.TransactionStarted):
        return msg.TransactionStartResult(AuthorizationInfo(AuthStatus.ACCEPTED), 1)
    if isinstance(req, msg.TransactionEnded):
        return msg.TransactionEndResult()
    return msg.Ack()


class Rig:
    """An outbox over a fresh store, its delivery loop running."""

    def __init__(self, state_dir: Path) -> None:
        self.store = Store.open(state_dir)
        self.state_dir = state_dir
        self.answers = 0
        self.outbox = Outbox(instant_csms, self._report, Settings(core_keys(1)),
                             time.monotonic, self.store)
        self._task = asyncio.ensure_future(self.outbox.run())

    def _report(self, event: ev.Event) -> None:
        self.answers += isinstance(event, ev.CallAnswered)

    def online(self, up: bool) -> None:
        self.outbox.set_link(up)
        self.outbox.set_gate(up)

    async def drained(self) -> None:
        # The outbox has no "drained" event; its loop needs only a few turns per message.
        while self.outbox.backlog:  # noqa: ASYNC110
            await asyncio.sleep(0)

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self.store.close()

    def files(self) -> int:
        return sum(p.stat().st_size for p in self.state_dir.iterdir())


async def charging_hour(workdir: Path, interval: int, values: int) -> dict[str, Any]:
    """One hour of one connector charging online at ``interval`` s sampling."""
    rig = Rig(workdir)
    rig.online(True)
    samples = HOUR // interval
    put_s: list[float] = []
    before = wchar()
    rig.outbox.put("start", msg.TransactionStarted(1, 1, "CAFE0001", 10_000, T0))
    await rig.drained()
    for i in range(1, samples + 1):
        at = T0 + timedelta(seconds=i * interval)
        req = msg.TransactionUpdated(1, 1, (sample(at, 10_000 + i * 3.07 * interval, values),),
                                     seq_no=i)
        started = time.perf_counter()
        rig.outbox.put(f"mv{i}", req)
        put_s.append(time.perf_counter() - started)
        await rig.drained()
    end = T0 + timedelta(seconds=HOUR)
    rig.outbox.put("stop", msg.TransactionEnded(1, 1, 21_000, end, StopReason.EV_DISCONNECTED,
                                                seq_no=samples + 1))
    await rig.drained()
    written = wchar() - before
    body = len(encode(msg.TransactionUpdated(1, 1, (sample(T0, 12345.6, values),))))
    files = rig.files()
    await rig.close()
    return {"interval_s": interval, "values": values, "samples": samples,
            "mb_per_hour": round(written / MB, 3), "bytes_per_sample": written // (samples + 2),
            "row_body_bytes": body, "state_dir_bytes_after": files, "put_ms": summary_ms(put_s)}


async def replay(workdir: Path, messages: int) -> dict[str, Any]:
    """``messages`` MeterValues journaled offline, then delivered at once."""
    rig = Rig(workdir)
    rig.outbox.put("start", msg.TransactionStarted(1, 1, "CAFE0001", 10_000, T0))
    started = time.perf_counter()
    for i in range(1, messages + 1):
        at = T0 + timedelta(seconds=i * 10)
        rig.outbox.put(f"mv{i}", msg.TransactionUpdated(1, 1, (sample(at, 10_000 + i, 2),), i))
    queued = time.perf_counter() - started
    files = rig.files()
    started = time.perf_counter()
    rig.online(True)
    await rig.drained()
    delivered = time.perf_counter() - started
    await rig.close()
    return {"messages": messages, "queue_s": round(queued, 2),
            "replay_s": round(delivered, 2), "replay_per_s": round(messages / delivered),
            "state_dir_bytes_queued": files}


def fsync_cost(workdir: Path, commits: int) -> dict[str, Any]:
    """The same append+commit with and without the fsync of synchronous=FULL."""
    body = encode(msg.TransactionUpdated(1, 1, (sample(T0, 12345.6, 2),)))
    out: dict[str, Any] = {}
    for mode in ("FULL", "OFF"):
        path = workdir / f"fsync-{mode}.db"
        db = sqlite3.connect(path, isolation_level=None)
        for pragma in ("locking_mode = EXCLUSIVE", "page_size = 1024", "journal_mode = WAL",
                       f"synchronous = {mode}"):
            db.execute(f"PRAGMA {pragma}")
        db.execute("CREATE TABLE journal (seq INTEGER PRIMARY KEY, body TEXT)")
        times = []
        for _ in range(commits):
            started = time.perf_counter()
            db.execute("INSERT INTO journal (body) VALUES (?)", (body,))
            times.append(time.perf_counter() - started)
        db.close()
        out[mode.lower()] = summary_ms(times)
    return out


async def measure(quick: bool) -> Result:
    base = Path(os.environ.get("TMPDIR") or ROOT)
    result = Result(
        name="storage",
        title="journal: bytes written per charging hour, fsync per put, replay",
        measured=__doc__.split("\n\n")[2].replace("\n", " ") if __doc__ else "",
        quick=quick,
    )
    cases = [(10, TWO_VALUES), (1, TWO_VALUES), (10, TEN_VALUES), (1, TEN_VALUES)]
    if quick:
        cases = cases[:1]
    hours: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="storage-bench-", dir=base) as tmp:
        for n, (interval, (label, values)) in enumerate(cases):
            say(f"charging hour at {interval} s, {label}")
            hours[f"{interval}s_{values}v"] = await charging_hour(
                Path(tmp) / f"hour{n}", interval, values
            )
        say("fsync cost")
        fsync = fsync_cost(Path(tmp), 50 if quick else 500)
        say("replay")
        replayed = await replay(Path(tmp) / "replay", 1_000 if quick else 10_000)
    result.metrics = {"hours": hours, "fsync_put_ms": fsync, "replay": replayed}
    for key, hour in hours.items():
        result.row(f"charging hour, {hour['interval_s']} s sampling, {hour['values']} values",
                   f"{hour['mb_per_hour']:.2f} MB/h ({hour['bytes_per_sample']} B per message,"
                   f" row body {hour['row_body_bytes']} B)")
        result.row(f"  put() incl. commit+fsync, {key}", fmt_ms(hour["put_ms"]))
    result.row("insert+commit, synchronous=FULL", fmt_ms(fsync["full"]))
    result.row("insert+commit, synchronous=OFF", fmt_ms(fsync["off"]))
    result.row(f"replay of {replayed['messages']} queued MeterValues",
               f"{replayed['replay_s']} s, {replayed['replay_per_s']}/s (journaled in "
               f"{replayed['queue_s']} s; {replayed['state_dir_bytes_queued'] // 1000} kB)")
    result.budget("bytes per charging hour at 10 s sampling", "hours.10s_2v.mb_per_hour", 2.0,
                  "MB")
    result.notes.append("one commit per journaled message and one per confirmation; "
                        f"{Path(tmp).parent} is on the file system measured")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    return benchmark_main(measure, argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
