"""The asyncio shell around the core: events in from hardware, timers and the CSMS; effects out.

Every event goes through :meth:`Runtime.post`, from any thread; the core handles them one at a
time on the event loop and the effects are applied strictly in order. Effects never block the
loop: contactor commands are immediate (and pass the HAL interlock), device I/O and calls to
the CSMS run as tasks whose results come back as events.

Safety does not wait for this loop: the pilot driver's thread calls the interlock, which opens
the contactor, *before* the change is posted here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from agent import clock
from agent.core import effects as fx
from agent.core import events as ev
from agent.core import messages as msg
from agent.core.station import Station
from agent.core.types import StopReason
from agent.outbox import Outbox
from agent.persistence import MemoryPersistence, Persistence
from agent.supervision import MeterHealth
from hal.errors import DeviceError
from hal.interlock import SafetyInterlock
from hal.roles import (
    ConnectorLock,
    ControlPilot,
    EnergyMeter,
    PhaseSwitch,
    PilotState,
    TokenReader,
)

log = logging.getLogger(__name__)


@dataclass
class ConnectorHardware:
    """The devices of one connector. The interlock wraps the contactor; ``lock`` is None for
    a fixed cable."""

    interlock: SafetyInterlock
    pilot: ControlPilot
    meter: EnergyMeter
    lock: ConnectorLock | None = None
    offer_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    phase_switch: PhaseSwitch | None = None


class Runtime:
    def __init__(self, station: Station, hardware: dict[int, ConnectorHardware],
                 reader: TokenReader | None, outbox_factory: Callable[[Runtime], Outbox],
                 persistence: Persistence | None = None) -> None:
        self.station = station
        self.persistence: Persistence = persistence or MemoryPersistence()
        self.hardware = hardware
        self.reader = reader
        self.outbox = outbox_factory(self)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._handling = False
        self._deferred: list[fx.Send] | None = None
        self._lock_moves: dict[int, asyncio.Task[bool]] = {}
        self._close_wanted: dict[int, bool] = {}  # the core's last contactor command
        self._offer_failed: set[int] = set()  # connectors whose pilot refused the last offer
        self._unsaved: list[fx.Effect] = []  # saves the store refused, for command()
        self.listeners: list[Callable[[ev.Event, list[fx.Effect]], None]] = []
        # Set by the composition root: read failures count towards PowerMeterFailure.
        self.meter_health: dict[int, MeterHealth] = {}
        # Handlers of commands the core does not answer (agent.maintenance); each returns its
        # answer, or None to pass the command on.
        self.command_handlers: list[Callable[[msg.AnyCsmsRequest],
                                             msg.AnyCsmsResponse | None]] = []
        self.on_reboot: Callable[[bool], None] = lambda hard: log.warning(
            "reset requested (%s) but no reboot handler is set", "hard" if hard else "soft")

    @property
    def started(self) -> bool:
        return self._loop is not None

    # --- feeding the core ---------------------------------------------------------------

    def post(self, event: ev.Event) -> None:
        """Queue an event for the core; safe from any thread."""
        loop = self._loop
        assert loop is not None, "start() first"
        loop.call_soon_threadsafe(self._handle, event)

    def command(self, request: msg.AnyCsmsRequest
                ) -> msg.AnyCsmsResponse | Awaitable[msg.AnyCsmsResponse]:
        """Handle a CSMS command now (on the loop) and return the core's answer.

        What the command makes the core send waits until :meth:`replied`: the CSMS hears the
        answer first (TriggerMessage, TC_054). An UnlockConnector that drives a lock returns
        an awaitable instead: the answer is what the lock did (Unlocked / UnlockFailed)."""
        self._deferred = self._deferred if self._deferred is not None else []
        for handler in self.command_handlers:
            answer = handler(request)
            if answer is not None:
                return answer
        if isinstance(request, msg.MaintenanceRequest | msg.SecurityRequest):
            return msg.StatusResult("NotSupported")  # no service beside the core took it
        self._unsaved = []
        effects = self._handle(ev.CsmsCommand(request))
        replies = [e.response for e in effects if isinstance(e, fx.Reply)]
        assert len(replies) == 1, "the core answers every command exactly once"
        unlocks = [e for e in effects if isinstance(e, fx.SetLock) and e.answer]
        if unlocks:
            return self._unlock_answer(self._lock_moves[unlocks[0].connector_id])
        if any(isinstance(e, fx.SaveLocalList) for e in self._unsaved):
            # The list would not survive a restart: the CSMS hears Failed (TC_043_3) and the
            # core goes back to the list it had.
            self._handle(ev.LocalListNotSaved())
            return msg.StatusResult("Failed")
        if (isinstance(request, msg.CsmsSetChargingProfile)
                and any(isinstance(e, fx.SaveChargingProfiles) for e in self._unsaved)):
            # The profile would not survive a restart: the core takes it back and the CSMS
            # hears Rejected (1.6 has no "Failed" for SetChargingProfile).
            self._handle(ev.ChargingProfilesNotSaved())
            return msg.StatusResult("Rejected")
        return replies[0]

    def send(self, ref: str, req: msg.OutboundReq) -> None:
        """Send a message the core did not make (maintenance reports) the way the core's go:
        held back while a CSMS call is answered. Its answer comes back as an event with
        ``ref``, which the core ignores."""
        self._apply(fx.Send(ref, req))

    @property
    def transaction_running(self) -> bool:
        return self._reads_pending()

    def replied(self) -> None:
        """The reply to a CSMS call went out: release the messages held back meanwhile."""
        deferred, self._deferred = self._deferred or [], None
        for send in deferred:
            self.outbox.put(send.ref, send.req)

    def deliver(self, event: ev.Event) -> list[fx.Effect]:
        """Handle a local client's event now; call on the event loop (post() from a thread)."""
        return self._handle(event)

    def _handle(self, event: ev.Event) -> list[fx.Effect]:
        assert not self._handling, "the core is not re-entrant"
        self._handling = True
        try:
            effects = self.station.handle(event, clock.now())
        finally:
            self._handling = False
        for listener in self.listeners:
            listener(event, effects)
        for effect in effects:
            self._apply(effect)
        return effects

    # --- applying effects ---------------------------------------------------------------

    def _apply(self, effect: fx.Effect) -> None:
        match effect:
            case fx.SetContactor(connector_id=cid, closed=closed):
                self._close_wanted[cid] = closed
                if closed:  # after the offers decided before it reached the pilot
                    self._spawn(self._close_under_offer(cid))
                else:  # an open never waits
                    self.hardware[cid].interlock.request(False)
            case fx.SetOfferedCurrent(connector_id=cid, amps=amps):
                self._spawn(self._set_offer(cid, amps))
            case fx.SetPhases(connector_id=cid, phases=phases):
                self._set_phases(cid, phases)
            case fx.SetLock(connector_id=cid, locked=locked):
                task = asyncio.ensure_future(self._move_lock(cid, locked))
                self._lock_moves[cid] = task
                self._tasks.add(task)  # type: ignore[arg-type]
                task.add_done_callback(self._tasks.discard)
            case fx.ReadMeter(connector_id=cid):
                self._spawn(self._read_meter(cid))
            case fx.StartTimer(name=name, delay=delay):
                self._start_timer(name, delay)
            case fx.CancelTimer(name=name):
                handle = self._timers.pop(name, None)
                if handle:
                    handle.cancel()
            case fx.Send(ref=ref, req=req):
                if self._deferred is not None:
                    self._deferred.append(effect)
                else:
                    self.outbox.put(ref, req)
            case fx.OpenTransactionQueue(open=open_):
                self.outbox.set_gate(open_)
            case fx.Notice(connector_id=cid, kind=kind, detail=detail):
                log.info("connector %s: %s %s", cid, kind, detail)
            case (fx.SaveSetting() | fx.SaveAvailability() | fx.CacheIdTag() | fx.SaveLocalList()
                  | fx.SaveReservations() | fx.SaveChargingProfiles() | fx.SaveLocalLimits()):
                self._save(effect)
            case fx.Reboot(hard=hard):
                loop = self._loop
                assert loop is not None
                loop.call_soon(self.on_reboot, hard)
            case fx.Reply():
                pass  # returned by command()

    def _save(self, effect: fx.SaveSetting | fx.SaveAvailability | fx.CacheIdTag
              | fx.SaveLocalList | fx.SaveReservations | fx.SaveChargingProfiles
              | fx.SaveLocalLimits) -> None:
        """Persist what the core decided. A store that fails is logged and never stops the
        effects after this one (the contactor, the messages)."""
        try:
            match effect:
                case fx.SaveSetting(name=name, value=value):
                    log.info("configuration: %s = %s", name, value)
                    self.persistence.save_setting(name, value)
                case fx.SaveAvailability(connector_id=cid, operative=operative):
                    self.persistence.save_availability(cid, operative)
                case fx.CacheIdTag(id_tag=id_tag, info=info):
                    self.persistence.cache_id_tag(id_tag, info)
                case fx.SaveLocalList(version=version, entries=entries):
                    self.persistence.save_local_list(version, list(entries))
                case fx.SaveReservations(reservations=reservations):
                    self.persistence.save_reservations(list(reservations))
                case fx.SaveChargingProfiles(profiles=profiles):
                    self.persistence.save_charging_profiles(list(profiles))
                case fx.SaveLocalLimits(connector_id=cid, limits=limits):
                    self.persistence.save_local_limits(cid, limits)
        except Exception as error:  # the store's own errors, whatever the backend
            log.error("state store: cannot keep %s: %s", type(effect).__name__, error)
            self._unsaved.append(effect)

    def _spawn(self, coro: asyncio.Future[None] | asyncio.Task[None] | object) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _start_timer(self, name: str, delay: float) -> None:
        old = self._timers.pop(name, None)
        if old:
            old.cancel()
        loop = self._loop
        assert loop is not None
        self._timers[name] = loop.call_later(delay, self._fire, name)

    def _fire(self, name: str) -> None:
        self._timers.pop(name, None)
        self._handle(ev.TimerFired(name))

    async def _close_under_offer(self, cid: int) -> None:
        """Close the contactor once every offer the core decided before the close has reached
        the pilot (the offer lock is FIFO; the core orders the offer first, DESIGN.md
        Safety), and only if the core still wants it closed by then."""
        hw = self.hardware[cid]
        async with hw.offer_lock:
            if not self._close_wanted.get(cid):
                return  # opened meanwhile
            if cid in self._offer_failed:  # the EV may see any offer, or none: stay open
                log.error("connector %s: not closing the contactor: the pilot did not take "
                          "the last offered current", cid)
                return
            if not hw.interlock.request(True):
                log.info("connector %s: close refused by the interlock", cid)

    def _set_phases(self, cid: int, phases: int) -> None:
        """The phase relay moves now (a GPIO write); the core asks only with the contactor
        open and the EV paused."""
        hw = self.hardware[cid]
        relay = hw.phase_switch
        if relay is None:
            log.error("connector %s: no phase switch to set to %s phases", cid, phases)
            return
        if hw.interlock.contactor.commanded_closed or self._close_wanted.get(cid):
            # never under load, whatever asks (nor with a close on its way to the contactor)
            log.error("connector %s: phase switch refused: the contactor is closed", cid)
            return
        try:
            relay.set_phases(phases)
        except Exception as error:  # a released driver at shutdown
            log.error("connector %s: cannot switch to %s phases: %s", cid, phases, error)

    async def _set_offer(self, cid: int, amps: float) -> None:
        hw = self.hardware[cid]
        async with hw.offer_lock:  # FIFO: offers reach the pilot in the order decided
            try:
                await hw.pilot.set_offered_current(amps)
            except DeviceError as error:
                log.warning("connector %s: cannot set the offered current: %s", cid, error)
                self._offer_failed.add(cid)
            else:
                self._offer_failed.discard(cid)

    async def _move_lock(self, cid: int, locked: bool) -> bool:
        """Drive the lock; the outcome goes to the core as LockMoved. Moves of one lock run
        one after the other (the driver serializes them)."""
        lock = self.hardware[cid].lock
        if lock is None:
            return False
        try:
            await (lock.lock() if locked else lock.unlock())
        except DeviceError as error:
            log.error("connector %s: lock: %s", cid, error)
            self._handle(ev.LockMoved(cid, locked, False, str(error)))
            return False
        self._handle(ev.LockMoved(cid, locked, True))
        return True

    async def _unlock_answer(self, move: asyncio.Task[bool]) -> msg.CsmsResponse:
        unlocked = await asyncio.shield(move)
        return msg.StatusResult("Unlocked" if unlocked else "UnlockFailed")

    async def _read_meter(self, cid: int) -> None:
        try:
            reading = await self.hardware[cid].meter.read()
        except DeviceError as error:
            self._handle(ev.MeterReadFailed(cid, str(error)))
            if cid in self.meter_health:
                self.meter_health[cid].failed(error)
            return
        self._handle(ev.MeterSampled(cid, reading))
        if cid in self.meter_health:
            self.meter_health[cid].ok(reading)

    # --- hardware callbacks (driver threads) ----------------------------------------------

    def _pilot_callback(self, cid: int) -> Callable[[PilotState], None]:
        interlock = self.hardware[cid].interlock

        def on_change(state: PilotState) -> None:
            interlock.on_pilot(state)  # safety first, on this thread
            self.post(ev.PilotChanged(cid, state))

        return on_change

    def _on_token(self, id_tag: str) -> None:
        self.post(ev.TokenPresented(id_tag))

    def on_link_state(self, up: bool) -> None:
        """Called by the link on the loop."""
        self.outbox.set_link(up)
        self._handle(ev.LinkUp() if up else ev.LinkDown())

    # --- life cycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Open everything safe, then start the devices and the core."""
        self._loop = asyncio.get_running_loop()
        for hw in self.hardware.values():
            hw.interlock.force_open(False)
        self._handle(ev.Started())
        for cid, hw in self.hardware.items():
            await hw.pilot.start(self._pilot_callback(cid))
        if self.reader is not None:
            await self.reader.start(self._on_token)
        self._spawn(self.outbox.run())

    async def shutdown(self, drain_seconds: float,
                       reason: StopReason = StopReason.REBOOT) -> None:
        """Contactors open first; transactions end (with ``reason``); the backlog gets a last
        chance."""
        for hw in self.hardware.values():
            hw.interlock.force_open(True)
        self._handle(ev.ShutdownRequested(reason))
        await self._drain(drain_seconds)
        await self.halt()

    async def halt(self) -> None:
        """Stop everything where it stands: timers and tasks cancelled, devices released
        (contactors open). Nothing is stopped or sent: what a power cut leaves behind."""
        for timer in self._timers.values():
            timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._close_devices()

    async def _drain(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        # Two sources of truth (the core's transactions, the outbox) and a hard deadline:
        # polling them is simpler than wiring an event through both.
        while loop.time() < deadline and (  # noqa: ASYNC110
            self._reads_pending() or self.outbox.backlog
        ):
            await asyncio.sleep(0.05)
        if self.outbox.backlog:
            log.warning("shutdown: %d transaction messages not delivered", self.outbox.backlog)

    def _reads_pending(self) -> bool:
        return any(c.transaction is not None for c in self.station.connectors.values())

    async def _close_devices(self) -> None:
        if self.reader is not None:
            await self.reader.aclose()
        for hw in self.hardware.values():
            hw.interlock.force_open(True)
            await hw.pilot.aclose()
            await hw.meter.aclose()
