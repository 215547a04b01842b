"""Device supervision: turns contactor disagreement and meter trouble into core events.

The contactor check runs on the event loop (it reports faults; the safety reaction itself
never waits for it: the interlock opens on the pilot's thread). A disagreement must last
0.5 s before it counts, so the check runs every ``interval`` (0.25 s) while it can find
something soon: while a contactor is commanded closed, and while a contact disagrees with
its command (a weld shows in the first checks after the open). With every contactor open
and agreeing, every ``idle_interval`` (1 s): a contact that closes on its own is then
reported within 1.75 s, and the idle loop wakes once a second instead of 4 times
(docs/performance.md, idle CPU). A close commanded by the core wakes the check at once
(:meth:`Supervisor.on_event`), so a contactor that fails to close is still reported within
0.75 s. A meter is read every ``idle_meter_interval`` seconds (``supervision.idle_meter_interval``,
default 5 s) while idle too, so a dead meter is reported before the next driver plugs in,
not during their session; while a meter fails, every ``retry_interval`` seconds, so the
fault is reported (and cleared) within a few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from agent.core import effects as fx
from agent.core import events as ev
from agent.core.types import ErrorCode
from hal.contactor_supervisor import WELDED, ContactorSupervisor
from hal.errors import DeviceError
from hal.roles import Contactor, EnergyMeter, MeterReading, PhaseSwitch

log = logging.getLogger(__name__)

METER_FAILURES_TO_FAULT = 3


class MeterHealth:
    """Counts consecutive failed reads; reports PowerMeterFailure after a few, clears at once
    on the next good read."""

    def __init__(self, connector_id: int, post: Callable[[ev.Event], None],
                 threshold: int = METER_FAILURES_TO_FAULT) -> None:
        self._connector_id = connector_id
        self._post = post
        self._threshold = threshold
        self._failures = 0
        self.faulted = False

    @property
    def troubled(self) -> bool:
        """The last read failed, or the fault is still reported."""
        return self._failures > 0 or self.faulted

    def ok(self, reading: MeterReading) -> None:
        self._failures = 0
        if self.faulted:
            self.faulted = False
            self._post(ev.DeviceFault(self._connector_id, ErrorCode.POWER_METER_FAILURE, False))

    def failed(self, error: Exception) -> None:
        self._failures += 1
        if self._failures >= self._threshold and not self.faulted:
            self.faulted = True
            log.error("connector %s: meter failed %d times: %s", self._connector_id,
                      self._failures, error)
            self._post(ev.DeviceFault(self._connector_id, ErrorCode.POWER_METER_FAILURE, True,
                                      str(error)))


class Supervisor:
    def __init__(self, post: Callable[[ev.Event], None], contactors: dict[int, Contactor],
                 meters: dict[int, EnergyMeter], health: dict[int, MeterHealth],
                 interval: float = 0.25, idle_meter_interval: float = 5.0,
                 clock: Callable[[], float] = time.monotonic,
                 retry_interval: float = 1.0, idle_interval: float = 1.0) -> None:
        self._post = post
        self._relays: dict[int, PhaseSwitch] = {}  # watch_phase_relays()
        self._relay_checks: dict[int, ContactorSupervisor] = {}
        self._contactors = contactors
        self._meters = meters
        self._health = health
        self._interval = interval
        self._idle_interval = idle_interval
        self._idle_meter_interval = idle_meter_interval
        self._retry_interval = retry_interval
        self._clock = clock
        self._checks = {cid: ContactorSupervisor() for cid in contactors}
        # What disagrees on each connector: "contactor" and/or "phase relay" -> the info. Both
        # report as one PowerSwitchFailure, so one agreeing again must not clear the other.
        self._switch_faults: dict[int, dict[str, str]] = {}
        self._woken = asyncio.Event()

    async def run(self) -> None:
        next_meter_check = self._clock()
        while True:
            self.check_contactors()
            self.check_phase_relays()
            if self._clock() >= next_meter_check:
                await self.check_meters()
                troubled = any(health.troubled for health in self._health.values())
                pause = self._retry_interval if troubled else self._idle_meter_interval
                next_meter_check = self._clock() + pause
            self._woken.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), self.pause())

    def pause(self) -> float:
        """Seconds until the next contactor check: short while one can find something soon."""
        busy = any(contactor.commanded_closed for contactor in self._contactors.values()) or \
            any(check.suspect is not None for check in self._checks.values())
        return self._interval if busy else self._idle_interval

    def on_event(self, event: ev.Event, effects: list[fx.Effect]) -> None:
        """A runtime listener: a close commanded now is checked now, not after a long pause."""
        if any(isinstance(effect, fx.SetContactor) and effect.closed for effect in effects):
            self._woken.set()

    def check_contactors(self) -> None:
        now = self._clock()
        for cid, contactor in self._contactors.items():
            verdict = self._checks[cid].check(contactor.commanded_closed,
                                              contactor.feedback_closed, now)
            if verdict is False:
                continue
            log.error("connector %s: contactor %s", cid, verdict or "agrees again")
            self._power_switch(cid, "contactor", f"contactor {verdict}" if verdict else None)

    def watch_phase_relays(self, relays: dict[int, PhaseSwitch]) -> None:
        """Also supervise these 1<->3 phase relays' feedback (agent/core/phases.py)."""
        self._relays = dict(relays)
        self._relay_checks = {cid: ContactorSupervisor() for cid in relays}

    def check_phase_relays(self) -> None:
        """A phase relay whose auxiliary contact disagrees with the command for longer than
        the settle time is PowerSwitchFailure: the connector is Faulted, its contactor stays
        open, and the core moves the relay no more (agent/core/phases.py)."""
        now = self._clock()
        for cid, relay in self._relays.items():
            feedback = relay.feedback_phases
            verdict = self._relay_checks[cid].check(
                relay.phases == 3, None if feedback is None else feedback == 3, now)
            if verdict is False:
                continue
            info = None if verdict is None else (
                "phase relay connects 3 phases, told 1" if verdict == WELDED
                else "phase relay connects 1 phase, told 3")
            log.error("connector %s: %s", cid, info or "phase relay agrees again")
            self._power_switch(cid, "phase relay", info)

    def _power_switch(self, cid: int, source: str, info: str | None) -> None:
        """Report the connector's PowerSwitchFailure as what all its switches say together:
        active while any disagrees (a welded contactor stays a fault when the phase relay
        agrees again), cleared only when none does."""
        faults = self._switch_faults.setdefault(cid, {})
        if info is None:
            faults.pop(source, None)
        else:
            faults[source] = info
        self._post(ev.DeviceFault(cid, ErrorCode.POWER_SWITCH_FAILURE, bool(faults),
                                  "; ".join(faults.values()) or None))

    async def check_meters(self) -> None:
        for cid, meter in self._meters.items():
            try:
                self._health[cid].ok(await meter.read())
            except DeviceError as error:
                self._health[cid].failed(error)
