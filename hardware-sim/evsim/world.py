"""The simulated charger site: per connector an EV, an EVSE board, a meter, a contactor, and
where wired an RCD trip input and a connector lock; one token reader for the site and, where
wired, the enclosure's tamper switch. A connector with ``pilot = "pwm"`` has no EVSE board in
the loop: the charger drives its pilot through a sysfs PWM channel (:mod:`evsim.pwm_sysfs_tree`)
and reads it back through an MCP3008 input that the world describes (:mod:`evsim.pilot_wire`).

:class:`World` is the single source of truth that the emulators expose over their wires and
that the bench API changes. It does no network I/O itself: the Modbus emulators it owns are
served by :mod:`evsim.world_server`, and its pins are reached through :mod:`evsim.pin_bus`.

Threading: every public method takes the world's lock, so the bench API may call from its
own threads while the event loop ticks the physics. Input-pin listeners run after the lock is
released, on the thread that caused the change.

Faults (:meth:`World.set_fault`) are knobs on the emulators and the models, so what the agent
sees on its wires changes exactly as with broken hardware; the active ones are derived from
those knobs, never stored twice. Faults are bench state: they are not persisted, and a harness
re-applies them after a restart (every verb is idempotent).

The world is one :class:`evsim.bench_backend.BenchBackend`: its verbs raise that module's
errors (UnknownConnectorError -> HTTP 404, InvalidValueError -> 400, ConflictError -> 409),
re-exported here.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, cast, runtime_checkable

from evsim import world_state
from evsim.bench_backend import ConflictError as ConflictError
from evsim.bench_backend import InvalidValueError as InvalidValueError
from evsim.bench_backend import UnknownConnectorError as UnknownConnectorError
from evsim.contactor_model import ContactorModel
from evsim.ev import NOMINAL_FREQUENCY_HZ, NOMINAL_VOLTAGE_V, Ev, EvState, PowerPath
from evsim.modbus_devices import EvseBoardEmulator, MeterEmulator
from evsim.pilot_wire import (
    SPI_DEVICE,
    SPI_PORT,
    AdcInput,
    AdcKey,
    adc_level,
    pilot_letter,
    plateaus_v,
)
from evsim.pwm_sysfs_tree import PwmOutput, PwmSysfsTree
from evsim.world_config import (
    CONNECTOR_FAULT_NAMES,
    CONTACTOR_FAULTS,
    PILOT_FAULT_NAMES,
    STATION_FAULT_NAMES,
    ConnectorConfig,
    ContactorFault,
    WorldConfig,
)

logger = logging.getLogger(__name__)

# EVSE board register 1002 ("vehicle state") for each EV state.
VEHICLE_STATE = {EvState.UNPLUGGED: 1, EvState.CONNECTED: 2, EvState.REQUESTING: 3}
PILOT_LETTERS = {1: "A", 2: "B", 3: "C", 4: "D", 5: "F"}
BOARD_FAILURE = 5  # the board's "failure" vehicle state: CP error or diode check failed
IMPLAUSIBLE_ENERGY_STEP_KWH = 10.0  # meter_implausible: the register runs backwards by this
SAVE_INTERVAL_S = 1.0
_UID = re.compile(r"[0-9A-Fa-f]{8}")

InputListener = Callable[[int, bool], None]
AdcListener = Callable[[AdcKey, AdcInput], None]
Changes = tuple[list[tuple[int, bool]], list[tuple[AdcKey, AdcInput]]]  # input pins, ADC inputs
JsonObject = dict[str, Any]


class CardReader(Protocol):
    """The token reader emulator the world presents cards to."""

    @property
    def port(self) -> str: ...

    def present(self, card_id: int) -> None: ...


@runtime_checkable
class PluggableReader(Protocol):
    """A reader emulator the bench can unplug (both emulators can)."""

    @property
    def plugged(self) -> bool: ...

    def unplug(self) -> None: ...

    def replug(self) -> None: ...


@dataclass
class LockModel:
    """A connector lock: it moves while exactly one motor output is energized, unless jammed."""

    active_high: bool = True
    locked: bool = False
    jammed: bool = False
    lock_on: bool = False
    unlock_on: bool = False

    def drive(self, lock_output: bool, level: float | None) -> None:
        """A motor output went to ``level`` (None: released, the motor stops)."""
        on = level is not None and (level >= 0.5) == self.active_high
        if lock_output:
            self.lock_on = on
        else:
            self.unlock_on = on
        self.settle()

    def settle(self) -> None:
        if not self.jammed and self.lock_on != self.unlock_on:
            self.locked = self.lock_on


@dataclass
class _Site:
    config: ConnectorConfig
    path: PowerPath
    contactor: ContactorModel
    board: EvseBoardEmulator
    meter: MeterEmulator
    lock: LockModel | None = None
    # The 1<->3 phase relay (config.phase_pin): True while it connects L2 and L3. Moves of it
    # while current flows are counted: a charger must never switch phases under load.
    phase_relay: bool = False
    switched_under_load: int = 0
    rcd_tripped: bool = False
    meter_implausible: bool = False
    pilot_faults: set[str] = field(default_factory=set)
    pwm: PwmOutput | None = None  # a PWM pilot's output as last read (None: EVSE board pilot)


class World:
    """The site's state and physics. Every verb is idempotent and returns the new state.

    ``clock`` gives the monotonic time that verbs integrate energy up to; :meth:`tick` takes
    its time from the caller and must use the same clock. ``pwm`` is the sysfs PWM tree that
    connectors with ``pilot = "pwm"`` are driven through (required for them).
    """

    def __init__(
        self,
        config: WorldConfig,
        *,
        reader: CardReader | None = None,
        pwm: PwmSysfsTree | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.RLock()
        self._clock = clock
        self._now = clock()
        self._reader = reader
        self.reader_link: str | None = None
        self._state_file = config.state_file
        self._last_save = -math.inf
        self._saved_energy: dict[int, float] = {}
        self._sites = {c.id: _build_site(c) for c in config.connectors}
        self._pwm = pwm
        if pwm is None and any(s.pwm is not None for s in self._sites.values()):
            raise ValueError("connectors with pilot = \"pwm\" need the sysfs PWM tree")
        self._adc: dict[AdcKey, AdcInput] = {}
        self._adc_listeners: list[AdcListener] = []
        self._tamper = (config.tamper_pin, config.tamper_active_high)
        self._enclosure_open = False
        self._relays = {s.config.relay_pin: s for s in self._sites.values()}
        self._lock_outputs = _lock_outputs(self._sites.values())
        self._phase_relays = {s.config.phase_pin: s for s in self._sites.values()
                              if s.config.phase_pin is not None}
        self._driven: set[int] = set()  # optional inputs, driven once they first went high
        self._outputs: dict[int, float | None] = {}
        self._listeners: list[InputListener] = []
        self._inputs: dict[int, bool] = {}
        self._restore()
        self._sync(self._now)

    # -- the bench's verbs ------------------------------------------------------------------

    def plug(self, connector_id: int) -> JsonObject:
        """Plug the EV in (state B). A plugged EV stays as it is."""
        with self._changing():
            ev = self._site(connector_id).path.ev
            if not ev.plugged:
                ev.state = EvState.CONNECTED
        return self.connector_state(connector_id)

    def unplug(self, connector_id: int) -> JsonObject:
        """Unplug the EV (state A). The current stops at once, whatever the contactor does."""
        with self._changing():
            self._site(connector_id).path.ev.state = EvState.UNPLUGGED
        return self.connector_state(connector_id)

    def set_ev_state(self, connector_id: int, state: object) -> JsonObject:
        """The plugged EV shows ``"B"`` (not ready) or ``"C"`` (asks for power)."""
        if state not in ("B", "C"):
            raise InvalidValueError("state", 'must be "B" or "C"')
        with self._changing():
            ev = self._site(connector_id).path.ev
            if not ev.plugged:
                raise ConflictError(f"connector {connector_id}: no EV is plugged in")
            ev.state = EvState(state)
        return self.connector_state(connector_id)

    def set_draw(self, connector_id: int, amps: object) -> JsonObject:
        """Cap what the EV draws (per phase), or None to draw as much as it is allowed."""
        if amps is not None and (
            isinstance(amps, bool) or not isinstance(amps, int | float)
            or not math.isfinite(amps) or amps < 0
        ):
            raise InvalidValueError("amps", "must be a number >= 0 or null")
        with self._changing():
            self._site(connector_id).path.ev.draw_a = None if amps is None else float(amps)
        return self.connector_state(connector_id)

    def set_contactor_fault(self, connector_id: int, fault: object) -> JsonObject:
        """Weld the contactor closed, stick it open, or repair it (None)."""
        if fault is not None and fault not in CONTACTOR_FAULTS:
            allowed = ", ".join(CONTACTOR_FAULTS)
            raise InvalidValueError("fault", f"must be one of {allowed} or null")
        with self._changing() as now:
            fault_value = cast("ContactorFault | None", fault)
            self._site(connector_id).contactor.set_fault(fault_value, now)
        return self.connector_state(connector_id)

    def set_fault(self, connector_id: int, fault: object, active: object) -> JsonObject:
        """Switch ``fault`` on or off; connector 0 takes the station-wide faults.

        Returns the connector's state (connector 0: the station's). See hardware-sim/README.md
        for what each fault does on the wires.
        """
        if not isinstance(active, bool):
            raise InvalidValueError("active", "must be true or false")
        if fault in STATION_FAULT_NAMES:
            if connector_id != 0:
                raise InvalidValueError("fault", f"{fault} is station-wide: use connector 0")
            with self._changing():
                if fault == "tamper":
                    self._set_enclosure_open(active)
                else:
                    self._set_reader_plugged(not active)
            logger.info("station: fault %s %s", fault, "on" if active else "off")
            return self.station_state()
        if fault not in CONNECTOR_FAULT_NAMES:
            known = ", ".join((*CONNECTOR_FAULT_NAMES, *STATION_FAULT_NAMES))
            raise InvalidValueError("fault", f"must be one of {known}")
        if connector_id == 0:
            raise InvalidValueError("fault", f"{fault} is per connector: use a connector id")
        with self._changing() as now:
            _apply_fault(self._site(connector_id), str(fault), active, now)
        logger.info("connector %s: fault %s %s", connector_id, fault, "on" if active else "off")
        return self.connector_state(connector_id)

    def present_card(self, uid: object) -> JsonObject:
        """Hold a card with the 32-bit id ``uid`` (8 hex chars) to the token reader."""
        if not isinstance(uid, str) or not _UID.fullmatch(uid):
            raise InvalidValueError("uid", "must be 8 hex characters (the card's 32-bit id)")
        if self._reader is None:
            raise ConflictError("this world has no token reader")
        card_id = int(uid, 16)
        try:
            self._reader.present(card_id)
        except (RuntimeError, OSError) as exc:  # the reader was unplugged by a fault knob
            raise ConflictError(f"token reader: {exc}") from exc
        logger.info("card %s presented", uid.upper())
        return {"uid": uid.upper(), "card_id": card_id, "reader": self._reader.port}

    # -- the pins ----------------------------------------------------------------------------

    def set_output(self, pin: int, level: float | None) -> None:
        """An output pin of the charger went to ``level`` (None: released, floating)."""
        with self._changing(save=False) as now:
            self._outputs[pin] = level
            site = self._relays.get(pin)
            if site is not None:
                site.contactor.drive(level, now)
            lock = self._lock_outputs.get(pin)
            if lock is not None:
                lock[0].drive(lock[1], level)
            phase_site = self._phase_relays.get(pin)
            if phase_site is not None:
                _drive_phase_relay(phase_site, level)

    def input_levels(self) -> dict[int, bool]:
        """The level the world drives on every input pin it knows (the feedback contacts)."""
        with self._lock:
            return dict(self._inputs)

    def add_input_listener(self, listener: InputListener) -> None:
        """Call ``listener(pin, level)`` whenever an input pin changes (any thread)."""
        with self._lock:
            self._listeners.append(listener)

    def remove_input_listener(self, listener: InputListener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def adc_inputs(self) -> dict[AdcKey, AdcInput]:
        """What the world puts on every ADC input it knows (the PWM pilots' wires)."""
        with self._lock:
            return dict(self._adc)

    def add_adc_listener(self, listener: AdcListener) -> None:
        """Call ``listener(key, adc_input)`` whenever an ADC input changes (any thread)."""
        with self._lock:
            self._adc_listeners.append(listener)

    def remove_adc_listener(self, listener: AdcListener) -> None:
        with self._lock:
            if listener in self._adc_listeners:
                self._adc_listeners.remove(listener)

    # -- physics -----------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Advance the physics to ``now``: integrate energy, move contacts, follow the offer."""
        with self._lock:
            self._advance_to(now)
            changes = self._sync(now)
            if now - self._last_save >= SAVE_INTERVAL_S and self._energy_moved():
                self._save(now)
        self._notify(changes)

    def next_event_at(self) -> float | None:
        """When some contacts are due to move, so a caller can tick just then."""
        with self._lock:
            due = [s.contactor.pending_until for s in self._sites.values()]
            return min((t for t in due if t is not None), default=None)

    def now(self) -> float:
        return self._clock()

    # -- reading -----------------------------------------------------------------------------

    @property
    def connector_ids(self) -> list[int]:
        return list(self._sites)

    def evse_board(self, connector_id: int) -> EvseBoardEmulator:
        """The connector's EVSE board emulator (its fault knobs; tests may set its registers)."""
        return self._site(connector_id).board

    def meter(self, connector_id: int) -> MeterEmulator:
        """The connector's meter emulator (its ``offline``/``exception`` fault knobs)."""
        return self._site(connector_id).meter

    def devices(self) -> list[EvseBoardEmulator | MeterEmulator]:
        """The Modbus devices to serve on the bus: every EVSE board and meter."""
        return [d for s in self._sites.values() for d in (s.board, s.meter)]

    def snapshot(self) -> JsonObject:
        """The whole site as plain JSON-able data (see hardware-sim/README.md)."""
        with self._lock:
            return {
                "connectors": [_connector_json(s) for s in self._sites.values()],
                "reader": self._reader_json(),
                "faults": self._station_faults(),
                "outputs": {str(pin): level for pin, level in sorted(self._outputs.items())},
            }

    def connector_state(self, connector_id: int) -> JsonObject:
        with self._lock:
            return _connector_json(self._site(connector_id))

    def station_state(self) -> JsonObject:
        """The station-wide part: the reader and the station's faults (connector 0)."""
        with self._lock:
            return {"id": 0, "reader": self._reader_json(), "faults": self._station_faults()}

    def save(self) -> None:
        """Write the state file now (no-op without one)."""
        with self._lock:
            self._save(self._clock())

    # -- internals ---------------------------------------------------------------------------

    @contextmanager
    def _changing(self, *, save: bool = True) -> Iterator[float]:
        with self._lock:
            now = self._clock()
            self._advance_to(now)
            yield now
            changes = self._sync(now)
            if save:
                self._save(now)
        self._notify(changes)

    def _reader_json(self) -> JsonObject:
        reader = self._reader
        return {
            "port": None if reader is None else reader.port,
            "link": self.reader_link,
            "plugged": reader.plugged if isinstance(reader, PluggableReader) else None,
        }

    def _station_faults(self) -> list[str]:
        reader = self._reader
        unplugged = isinstance(reader, PluggableReader) and not reader.plugged
        return (["reader_unplugged"] if unplugged else []) + (
            ["tamper"] if self._enclosure_open else [])

    def _set_enclosure_open(self, opened: bool) -> None:
        if self._tamper[0] is None:
            raise ConflictError("this world has no tamper switch wired (tamper_pin)")
        self._enclosure_open = opened

    def _set_reader_plugged(self, plugged: bool) -> None:
        reader = self._reader
        if not isinstance(reader, PluggableReader):
            raise ConflictError("this world has no token reader that can be unplugged")
        if plugged:
            reader.replug()
        else:
            reader.unplug()

    def _site(self, connector_id: int) -> _Site:
        try:
            return self._sites[connector_id]
        except KeyError:
            raise UnknownConnectorError(f"no connector {connector_id}") from None

    def _advance_to(self, now: float) -> None:
        """Integrate every connector's energy up to ``now``. Contacts due to move before
        ``now`` move at their own moment, so energy stops flowing when the contacts open,
        however late the next tick comes (a loaded machine must not bill extra energy)."""
        if now <= self._now:
            return
        for site in self._sites.values():
            start = self._now
            due = site.contactor.pending_until
            if due is not None and start < due <= now:
                site.path.advance(due - start)
                site.contactor.settle(due)
                site.path.contactor_closed = site.contactor.contacts and not site.rcd_tripped
                start = due
            site.path.advance(now - start)
        self._now = now

    def _sync(self, now: float) -> Changes:
        for site in self._sites.values():
            site.contactor.settle(now)
            # A tripped RCD cuts the supply: nothing flows, whatever the contactor does.
            site.path.contactor_closed = site.contactor.contacts and not site.rcd_tripped
            site.path.offered_a = self._offer(site)
            site.board.vehicle_state = (
                BOARD_FAILURE if site.pilot_faults else VEHICLE_STATE[site.path.ev.state]
            )
            _publish_meter(site)
        levels = self._input_levels()
        changes = [(pin, lv) for pin, lv in levels.items() if self._inputs.get(pin) != lv]
        self._inputs = levels
        adc = self._adc_levels()
        adc_changes = [(key, wire) for key, wire in adc.items() if self._adc.get(key) != wire]
        self._adc = adc
        return changes, adc_changes

    def _offer(self, site: _Site) -> float:
        """What the pilot offers: the EVSE board's register, or the PWM's duty."""
        if site.pwm is None or self._pwm is None:
            return float(site.board.configured_current)
        site.pwm = self._pwm.read(site.config.pwm_chip, site.config.pwm_channel)
        return site.pwm.offered_current

    def _adc_levels(self) -> dict[AdcKey, AdcInput]:
        if self._pwm is None:
            return {}
        levels: dict[AdcKey, AdcInput] = {}
        for site in self._sites.values():
            if site.pwm is None:
                continue
            c = site.config
            high, low = plateaus_v(site.path.ev.state, site.pilot_faults)
            pwm = str(self._pwm.channel_dir(c.pwm_chip, c.pwm_channel))
            levels[SPI_PORT, SPI_DEVICE, c.adc_channel] = AdcInput(
                adc_level(high), adc_level(low), pwm)
        return levels

    def _input_levels(self) -> dict[int, bool]:
        levels = {
            s.config.feedback_pin: s.contactor.contacts == s.config.feedback_active_high
            for s in self._sites.values()
            if s.config.feedback_pin is not None
        }
        for s in self._sites.values():
            if s.config.phase_feedback_pin is not None:
                connected = s.path.connected_phases == 3
                levels[s.config.phase_feedback_pin] = (
                    connected == s.config.phase_feedback_active_high)
        tamper_pin, tamper_high = self._tamper
        optional = list(_optional_inputs(self._sites.values()))
        if tamper_pin is not None:
            optional.append((tamper_pin, self._enclosure_open == tamper_high))
        for pin, level in optional:
            # An input nobody drives reads low on a mock pin, so an optional input (RCD, lock
            # feedback, tamper switch) is left alone until its level first goes high, and
            # driven from then on.
            if level or pin in self._driven:
                levels[pin] = level
                self._driven.add(pin)
        return levels

    def _notify(self, changes: Changes) -> None:
        pins, adc = changes
        with self._lock:
            listeners, adc_listeners = list(self._listeners), list(self._adc_listeners)
        for pin, level in pins:
            for listener in listeners:
                listener(pin, level)
        for key, wire in adc:
            for adc_listener in adc_listeners:
                adc_listener(key, wire)

    def _energy_moved(self) -> bool:
        return any(
            s.path.energy_wh != self._saved_energy.get(cid) for cid, s in self._sites.items()
        )

    def _save(self, now: float) -> None:
        if self._state_file is None:
            return
        world_state.write(self._state_file, {cid: s.path for cid, s in self._sites.items()})
        self._saved_energy = {cid: s.path.energy_wh for cid, s in self._sites.items()}
        self._last_save = now

    def _restore(self) -> None:
        if self._state_file is None:
            return
        world_state.restore(self._state_file, {cid: s.path for cid, s in self._sites.items()})


def _drive_phase_relay(site: _Site, level: float | None) -> None:
    """The phase relay's pin moved: L2 and L3 are connected while its coil is energized (a
    released pin de-energizes it, like the contactor's)."""
    energized = level is not None and (level >= 0.5) == site.config.phase_active_high
    if energized != site.phase_relay and site.path.current_a > 0:
        site.switched_under_load += 1
        logger.warning("connector %s: phase relay switched under load", site.config.id)
    site.phase_relay = energized
    site.path.connected_phases = 3 if energized else 1


def _build_site(config: ConnectorConfig) -> _Site:
    ev = Ev(max_current_a=config.ev_max_current, phases=config.phases)
    wired = config.phases if config.phase_pin is None else 1  # the relay starts released
    return _Site(
        config=config,
        path=PowerPath(ev, energy_wh=config.initial_energy_kwh * 1000.0,
                       connected_phases=wired),
        contactor=ContactorModel(
            active_high=config.relay_active_high, fault=config.contactor_fault
        ),
        board=EvseBoardEmulator(device_id=config.evse_board_id),
        meter=MeterEmulator(register_map_name=config.meter_model, device_id=config.meter_id),
        lock=LockModel(active_high=config.lock_active_high) if config.has_lock else None,
        pwm=PwmOutput() if config.pilot == "pwm" else None,
    )


def _lock_outputs(sites: Iterable[_Site]) -> dict[int, tuple[LockModel, bool]]:
    """Lock motor pin -> (its lock, True for the "lock" output, False for "unlock")."""
    outputs: dict[int, tuple[LockModel, bool]] = {}
    for site in sites:
        c = site.config
        if site.lock is not None and c.lock_pin is not None and c.unlock_pin is not None:
            outputs[c.lock_pin] = (site.lock, True)
            outputs[c.unlock_pin] = (site.lock, False)
    return outputs


def _optional_inputs(sites: Iterable[_Site]) -> Iterator[tuple[int, bool]]:
    for site in sites:
        c = site.config
        if c.rcd_pin is not None:
            yield c.rcd_pin, site.rcd_tripped == c.rcd_active_high
        if site.lock is not None and c.lock_feedback_pin is not None:
            yield c.lock_feedback_pin, site.lock.locked == c.lock_feedback_active_high


def _apply_fault(site: _Site, fault: str, active: bool, now: float) -> None:
    if fault == "meter_offline":
        site.meter.offline = active
    elif fault == "meter_garbage":
        site.meter.exception = active
    elif fault == "meter_implausible":
        site.meter_implausible = active
    elif fault == "evse_board_offline":
        site.board.offline = active
    elif fault in PILOT_FAULT_NAMES:
        (site.pilot_faults.add if active else site.pilot_faults.discard)(fault)
    elif fault in ("contactor_welded", "contactor_stuck_open"):
        _contactor_fault(site, cast("ContactorFault", fault.removeprefix("contactor_")),
                         active, now)
    elif fault == "lock_failure":
        if site.lock is None:
            raise ConflictError(f"connector {site.config.id} has no lock wired")
        site.lock.jammed = active
        site.lock.settle()
    elif fault == "rcd_trip":
        if site.config.rcd_pin is None:
            raise ConflictError(f"connector {site.config.id} has no RCD trip input wired")
        site.rcd_tripped = active


def _contactor_fault(site: _Site, fault: ContactorFault, active: bool, now: float) -> None:
    current = site.contactor.fault
    if active and current not in (None, fault):
        raise ConflictError(f"contactor is {current}; clear that fault first")
    if active:
        site.contactor.set_fault(fault, now)
    elif current == fault:
        site.contactor.set_fault(None, now)


def _active_faults(site: _Site) -> list[str]:
    knobs = {
        "meter_offline": site.meter.offline,
        "meter_garbage": site.meter.exception,
        "meter_implausible": site.meter_implausible,
        "evse_board_offline": site.board.offline,
        "contactor_welded": site.contactor.fault == "welded",
        "contactor_stuck_open": site.contactor.fault == "stuck_open",
        "lock_failure": site.lock is not None and site.lock.jammed,
        "rcd_trip": site.rcd_tripped,
    }
    return sorted({name for name, on in knobs.items() if on} | site.pilot_faults)


def _publish_meter(site: _Site) -> None:
    meter, path = site.meter, site.path
    meter.energy_kwh = path.energy_wh / 1000.0
    meter.power_w = path.power_w
    meter.current_a = path.phase_currents_a
    meter.voltage_v = (NOMINAL_VOLTAGE_V,) * 3
    meter.frequency_hz = NOMINAL_FREQUENCY_HZ
    if site.meter_implausible:  # what a meter with a corrupted memory might say
        meter.energy_kwh = max(0.0, meter.energy_kwh - IMPLAUSIBLE_ENERGY_STEP_KWH)
        meter.voltage_v = (0.0, 0.0, 0.0)


def _connector_json(site: _Site) -> JsonObject:
    ev, path, contactor = site.path.ev, site.path, site.contactor
    return {
        "id": site.config.id,
        "ev": {
            "plugged": ev.plugged,
            "state": ev.state.value,
            "draw_a": ev.draw_a,
            "max_current_a": ev.max_current_a,
            "phases": ev.phases,
        },
        "pilot": (PILOT_LETTERS.get(site.board.vehicle_state, "F") if site.pwm is None
                  else pilot_letter(ev.state, site.pilot_faults, driven=site.pwm.high_ns > 0)),
        "pwm": None if site.pwm is None else {
            "enabled": site.pwm.enabled, "duty": round(site.pwm.high_fraction, 6)},
        "contactor": {
            "relay_closed": contactor.coil,
            "feedback_closed": contactor.contacts if site.config.feedback_pin is not None else None,
            "fault": contactor.fault,
        },
        "offered_current_a": (site.board.configured_current if site.pwm is None
                              else round(site.pwm.offered_current, 3)),
        "phases_connected": path.connected_phases,
        "phase_switch": None if site.config.phase_pin is None else {
            "relay_energized": site.phase_relay,
            "switched_under_load": site.switched_under_load,
        },
        "lock": None if site.lock is None else {
            "locked": site.lock.locked,
            "motor": "lock" if site.lock.lock_on else "unlock" if site.lock.unlock_on else None,
        },
        "rcd": None if site.config.rcd_pin is None else {"tripped": site.rcd_tripped},
        "faults": _active_faults(site),
        "meter": {
            "energy_wh": round(site.meter.register_energy_wh, 3),
            "energy_wh_exact": round(path.energy_wh, 3),
            "power_w": round(path.power_w, 3),
            "voltage_v": [NOMINAL_VOLTAGE_V] * 3,
            "current_a": list(path.phase_currents_a),
        },
    }
