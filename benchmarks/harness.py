"""The bench the benchmarks share: a simulated site, the agent in it, probes and load.

Two ways to run the agent:

* :class:`InProcessAgent`: built with ``agent.app.build`` exactly as ``evse-agent run`` builds
  it, on this process's event loop, while the site (CSMS + world) runs on its own loop in a
  :class:`SiteThread`, as the test bench would. Probes are wrapped around each connector's
  pilot driver and contactor so latencies are taken where they happen: on the thread that saw
  the pilot change and on the thread that switched the output.
* :class:`AgentProcess`: ``python -m agent run --config ...`` as a child process (as
  ``evsim demo`` runs it), for memory, CPU and start-up figures.

All times are ``time.monotonic()`` (CLOCK_MONOTONIC, shared by threads and processes, and
what asyncio's ``loop.time()`` and :class:`evsim.csms.Frame` use).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import os
import random
import signal
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from agent.app import build
from agent.config import parse_config
from agent.hardware import Hardware
from agent.runtime import ConnectorHardware, Runtime
from agent.store import Store
from evsim.csms import Csms
from evsim.site import SimSite, SiteOptions, free_port
from evsim.world import World
from evsim.world_config import Address, ConnectorConfig, WorldConfig
from hal.roles import PilotCallback, PilotState

T = TypeVar("T")
log = logging.getLogger(__name__)

# Candidates for the relay and feedback pins of connectors 5-8, which evsim does not wire.
SPARE_PINS = (4, 12, 13, 18, 19, 7, 8, 9, 10, 11, 2, 3)
STEP_TIMEOUT = 15.0


def card(number: int) -> str:
    """A distinct 32-bit card id per session: the reader ignores a repeat of the same card
    within its repeat window, and a fresh id is never in the authorization cache."""
    return f"{0xB0000000 + number:08X}"


# --- the site ---------------------------------------------------------------------------


class BenchSite(SimSite):
    """:class:`evsim.site.SimSite` with pins for up to 8 connectors (the agent's maximum)."""

    def _world_config(self) -> WorldConfig:
        count = self.options.connectors
        wired = [ConnectorConfig.for_id(cid) for cid in range(1, min(count, 4) + 1)]
        used = {value for c in wired for name, value in vars(c).items()
                if name.endswith("_pin") and value is not None}
        spare = iter(p for p in SPARE_PINS if p not in used)
        extra = [ConnectorConfig.for_id(cid, relay_pin=next(spare), feedback_pin=next(spare))
                 for cid in range(5, count + 1)]
        return WorldConfig(
            bench=Address("127.0.0.1", 0),
            pin_bus=Address("127.0.0.1", 0),
            bus=Address("127.0.0.1", free_port()),
            reader_link=self.workdir / "reader",
            state_file=self.workdir / "world.json",
            connectors=wired + extra,
        )

    @property
    def world(self) -> World:
        return self.world_server.world

    def agent_config_with(self, poll_interval: float | None = None) -> str:
        """The agent's TOML; ``poll_interval`` replaces the site's pilot poll interval."""
        text = self.agent_config()
        if poll_interval is not None:
            text = text.replace("poll_interval = 0.02", f"poll_interval = {poll_interval}")
        return text


class SiteThread:
    """A :class:`BenchSite` served on its own event loop in a background thread.

    The agent's loop stays the agent's: the CSMS, the emulators and the bench's own waiting
    never run on it. :meth:`run` executes a coroutine on the site's loop from another loop.
    """

    def __init__(self, workdir: Path, options: SiteOptions) -> None:
        self.site = BenchSite(workdir, options)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="bench-site", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None or self._loop is None:
            raise RuntimeError(f"the simulated site did not start: {self._error}")

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # reported by start()
            self._error = error
            self._ready.set()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with self.site:
            self._loop = asyncio.get_running_loop()
            self._ready.set()
            await self._stop.wait()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the site's loop; await it from any other loop."""
        return await asyncio.wrap_future(self.submit(coro))

    def close(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)


# --- probes -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Mark:
    at: float
    value: Any
    thread: str


class Timeline:
    """Timestamped values recorded from any thread; waiters block until one matches."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._marks: list[Mark] = []

    def add(self, at: float, value: Any) -> None:
        mark = Mark(at, value, threading.current_thread().name)
        with self._cond:
            self._marks.append(mark)
            self._cond.notify_all()

    def first_after(self, t0: float, match: Callable[[Any], bool]) -> Mark | None:
        with self._cond:
            found = None
            for mark in reversed(self._marks):
                if mark.at < t0:
                    break
                if match(mark.value):
                    found = mark
            return found

    def wait_after(self, t0: float, match: Callable[[Any], bool], timeout: float) -> Mark | None:
        """The first mark at or after ``t0`` that matches, waiting up to ``timeout`` for it."""
        with self._cond:
            self._cond.wait_for(lambda: self.first_after(t0, match) is not None, timeout)
            return self.first_after(t0, match)

    async def await_after(self, t0: float, match: Callable[[Any], bool],
                          within: float) -> Mark | None:
        return await asyncio.to_thread(self.wait_after, t0, match, within)


class ContactorProbe:
    """Wraps a contactor driver; marks each switching of the output, after the driver did it.

    Only changes are marked (the interlock opens an open contactor on every pilot change that
    does not ask for power). Everything else is passed through.
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._closed = False
        self.timeline = Timeline()

    def set_closed(self, closed: bool) -> None:
        self._inner.set_closed(closed)
        now = time.monotonic()
        if closed != self._closed:
            self._closed = closed
            self.timeline.add(now, closed)

    @property
    def closed(self) -> bool:
        return self._closed

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class PilotProbe:
    """Wraps a pilot driver; marks each state the driver reports, on the driver's thread,
    before the agent's callback (the interlock first, then the post to the loop) runs."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.timeline = Timeline()

    async def start(self, on_change: PilotCallback) -> None:
        def seen(state: PilotState) -> None:
            self.timeline.add(time.monotonic(), state)
            on_change(state)

        await self._inner.start(seen)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@dataclass
class ConnectorProbes:
    pilot: PilotProbe
    contactor: ContactorProbe


def install_probes(hardware: ConnectorHardware) -> ConnectorProbes:
    """Put probes around one connector's pilot driver and contactor, before the runtime starts.

    The SafetyInterlock owns the contactor and offers no way to replace it; the probe is
    slipped in behind the interlock (its private attribute) so the interlock's own logic and
    lock stay in the path.
    """
    pilot = PilotProbe(hardware.pilot)
    hardware.pilot = pilot
    interlock = hardware.interlock
    contactor = ContactorProbe(interlock._contactor)
    interlock._contactor = contactor
    return ConnectorProbes(pilot, contactor)


# --- the agent, in this process -----------------------------------------------------------


class InProcessAgent:
    """The agent wired as ``agent.app.serve`` wires it (``build``, ``Runtime.start``, the link
    task), with probes, on the calling loop. Its state store is new, so there is nothing for
    crash recovery to settle."""

    def __init__(self, config_text: str) -> None:
        self.config = parse_config(config_text, "bench")
        self.hardware = Hardware(self.config)
        self.store = Store.open(self.config.charger.state_dir)
        self.runtime: Runtime
        self.runtime, self.link = build(self.config, self.hardware, self.store)
        self.probes = {cid: install_probes(hw) for cid, hw in self.runtime.hardware.items()}
        self.loop: asyncio.AbstractEventLoop | None = None
        self._link_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        await self.runtime.start()
        self.link_up()

    def link_up(self) -> None:
        """Let the link (re)connect to the CSMS. Call on the agent's loop."""
        self._link_task = asyncio.create_task(self.link.run())

    async def link_down(self) -> None:
        """Cut the link to the CSMS, as a lost network would. Call on the agent's loop."""
        if self._link_task is not None:
            self._link_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._link_task
            self._link_task = None

    async def on_agent_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the agent's loop, awaited from another loop (the site's)."""
        assert self.loop is not None
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    async def stop(self, drain_seconds: float = 2.0) -> None:
        await self.runtime.shutdown(drain_seconds)
        await self.link_down()
        self.hardware.close()
        self.store.close()


@contextlib.asynccontextmanager
async def agent_in_site(options: SiteOptions,
                        poll_interval: float | None = None) -> AsyncIterator[tuple[SiteThread,
                                                                                   InProcessAgent]]:
    """A site on its own thread and the agent on the calling loop, both running."""
    quiet_logging()
    with tempfile.TemporaryDirectory(prefix="evse-bench-") as tmp:
        site = SiteThread(Path(tmp), options)
        site.start()
        try:
            os.environ["EVSIM_PIN_BUS"] = site.site.pin_bus  # read by the evsim pin factory
            agent = InProcessAgent(site.site.agent_config_with(poll_interval))
            await agent.start()
            try:
                await site.run(wait_all_status(site.site, "Available"))
                yield site, agent
            finally:
                await agent.stop()
        finally:
            site.close()


def quiet_logging() -> None:
    """Warnings only: the figures should not include printing every frame to a terminal."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(logging.WARNING)
    # The agent never closes its gpiozero pin factories, so their pin-bus threads outlive a
    # site the bench has already torn down and complain about it.
    logging.getLogger("evsim.pins").setLevel(logging.ERROR)


# --- steps of a session, run on the site's loop -------------------------------------------


async def wait_status(csms: Csms, connector_id: int, status: str,
                      within: float = STEP_TIMEOUT) -> None:
    await csms.wait_for(lambda: csms.last_status(connector_id) == status, within)


async def wait_all_status(site: SimSite, status: str) -> None:
    for cid in range(1, site.options.connectors + 1):
        await wait_status(site.csms, cid, status)


async def plug_in_c(world: World, probes: ConnectorProbes, cid: int) -> float:
    """Plug the EV in and let it ask for power at once; returns when the pilot driver saw C.
    The return value is when the plug-in happened."""
    t0 = time.monotonic()
    world.plug(cid)
    world.set_ev_state(cid, "C")
    seen = await probes.pilot.timeline.await_after(t0, lambda s: s is PilotState.C, STEP_TIMEOUT)
    if seen is None:
        raise TimeoutError(f"connector {cid}: the pilot driver never saw C")
    return t0


async def wait_contactor(probes: ConnectorProbes, t0: float, closed: bool,
                         within: float = STEP_TIMEOUT) -> Mark:
    mark = await probes.contactor.timeline.await_after(t0, lambda v: v is closed, within)
    if mark is None:
        raise TimeoutError(f"the contactor was not {'closed' if closed else 'opened'} "
                           f"within {within} s")
    return mark


async def start_charging(site: BenchSite, probes: ConnectorProbes, cid: int, uid: str) -> None:
    """Plug first, EV in C, present ``uid``; returns once the contactor output is closed."""
    await plug_in_c(site.world, probes, cid)
    await wait_status(site.csms, cid, "Preparing")
    t0 = time.monotonic()
    site.world.present_card(uid)
    await wait_contactor(probes, t0, True)


# --- load on the agent's event loop ----------------------------------------------------------


class StoreWriteLoad:
    """Blocks the event loop like a synchronous SQLite commit on an SD card, periodically.

    Each write takes ``block`` seconds on the loop: the first half is pure-Python work that
    holds the GIL (encoding a journal entry), then a 4 KiB write with fsync, then a sleep for
    the rest (the card being slow). Writes come every ``period`` seconds, jittered by +-50 %.
    """

    def __init__(self, directory: Path, block: float = 0.020, period: float = 0.100,
                 seed: int = 1) -> None:
        self.block, self.period = block, period
        self.path = directory / "store-load.bin"
        self.blocked: list[float] = []
        self._rng = random.Random(seed)
        self._handle: asyncio.TimerHandle | None = None
        self._payload = [{"connector": i, "energy_wh": i * 1.5, "state": "Charging"}
                         for i in range(50)]

    def start(self) -> None:
        self._schedule()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()

    def _schedule(self) -> None:
        delay = self.period * self._rng.uniform(0.5, 1.5)
        self._handle = asyncio.get_running_loop().call_later(delay, self._write)

    def _write(self) -> None:
        t0 = time.monotonic()
        while time.monotonic() - t0 < self.block / 2:
            json.dumps(self._payload)  # holds the GIL, like building a journal entry
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.write(fd, b"\0" * 4096)
            os.fsync(fd)
        finally:
            os.close(fd)
        rest = self.block - (time.monotonic() - t0)
        if rest > 0:
            time.sleep(rest)
        self.blocked.append(time.monotonic() - t0)
        self._schedule()


class LoopLag:
    """How late the loop runs a callback that asked to run every ``interval`` seconds."""

    def __init__(self, interval: float = 0.010) -> None:
        self.interval = interval
        self.lags: list[float] = []
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._arm()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + self.interval
        self._handle = loop.call_at(due, self._tick, due)

    def _tick(self, due: float) -> None:
        self.lags.append(max(0.0, asyncio.get_running_loop().time() - due))
        self._arm()


@dataclass
class CsmsBursts:
    """The CSMS sends bursts of calls back to back, every ``period`` seconds (jittered):
    GetConfiguration of every key, DataTransfer, TriggerMessage for a Heartbeat and for
    MeterValues of connector 1 (a meter read and one more message from the agent)."""

    csms: Csms
    size: int = 10
    period: float = 1.0
    sent: int = 0
    errors: int = 0
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        from ocpp.v16 import call

        calls = [call.GetConfiguration(), call.DataTransfer(vendor_id="bench.evse-agent"),
                 call.TriggerMessage(requested_message="Heartbeat"),
                 call.TriggerMessage(requested_message="MeterValues", connector_id=1)]
        rng = random.Random(2)
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.period * rng.uniform(0.5, 1.5))
            for i in range(self.size):
                if self._stop.is_set():
                    break
                try:
                    await asyncio.wait_for(self.csms.call(calls[i % len(calls)]), 10)
                    self.sent += 1
                except Exception:  # a refused call is still load; count it
                    self.errors += 1

    def stop(self) -> None:
        self._stop.set()


# --- the agent as a child process ---------------------------------------------------------


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` from /proc/<pid>/stat, in seconds."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text.rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)
    return ticks / os.sysconf("SC_CLK_TCK")


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (kB) and Threads of ``pid`` from /proc/<pid>/status."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            out[key] = int(value.split()[0])
    return out


class AgentProcess:
    """``python -m agent run --config FILE`` against a site, with its log lines timestamped."""

    def __init__(self, site: BenchSite, config_text: str | None = None) -> None:
        self.site = site
        self.config_path = site.workdir / "agent.toml"
        self.config_path.write_text(config_text or site.agent_config())
        self.log_path = site.workdir / "agent.log"
        self.lines: list[tuple[float, str]] = []
        self.started_at = 0.0
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._line_seen = asyncio.Event()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self) -> None:
        env = dict(os.environ, EVSIM_PIN_BUS=self.site.pin_bus, PYTHONUNBUFFERED="1")
        self.started_at = time.monotonic()
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agent", "run", "--config", str(self.config_path),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env,
        )
        self._reader = asyncio.create_task(self._read_log())

    async def _read_log(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        with self.log_path.open("a") as log_file:
            async for raw in self.proc.stderr:
                line = raw.decode(errors="replace").rstrip()
                self.lines.append((time.monotonic(), line))
                log_file.write(line + "\n")
                self._line_seen.set()

    async def wait_line(self, needle: str, within: float = STEP_TIMEOUT) -> float:
        """When the first log line containing ``needle`` arrived."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            for at, line in self.lines:
                if needle in line:
                    return at
            if self.proc is not None and self.proc.returncode is not None:
                raise RuntimeError(f"the agent exited ({self.proc.returncode}): {self.tail()}")
            self._line_seen.clear()
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"no {needle!r} in the agent's log: {self.tail()}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._line_seen.wait(), left)

    def tail(self, count: int = 8) -> str:
        return " | ".join(line for _, line in self.lines[-count:])

    async def stop(self) -> int | None:
        proc = self.proc
        if proc is None:
            return None
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 5)
        return proc.returncode


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="evse-bench-") as tmp:
        yield Path(tmp)

