"""The simulated charger site: per connector an EV, an EVSE board, a meter and a contactor.

:class:`World` is the single source of truth that the emulators expose over their wires and
that the bench API changes. It does no network I/O itself: the Modbus emulators it owns are
served by :mod:`evsim.world_server`, and its pins are reached through :mod:`evsim.pin_bus`.

Threading: every public method takes the world's lock, so the bench API may call from its
own threads while the event loop ticks the physics. Input-pin listeners run after the lock is
released, on the thread that caused the change.

Errors::

    WorldError
     +-- UnknownConnectorError (LookupError)   no such connector          -> HTTP 404
     +-- InvalidValueError (ValueError)        a bad argument, by field   -> HTTP 400
     +-- ConflictError (RuntimeError)          not possible in this state -> HTTP 409
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, cast

from evsim import world_state
from evsim.contactor_model import ContactorModel
from evsim.ev import NOMINAL_FREQUENCY_HZ, NOMINAL_VOLTAGE_V, Ev, EvState, PowerPath
from evsim.modbus_devices import EvseBoardEmulator, MeterEmulator
from evsim.world_config import CONTACTOR_FAULTS, ConnectorConfig, ContactorFault, WorldConfig

logger = logging.getLogger(__name__)

# EVSE board register 1002 ("vehicle state") for each EV state.
VEHICLE_STATE = {EvState.UNPLUGGED: 1, EvState.CONNECTED: 2, EvState.REQUESTING: 3}
PILOT_LETTERS = {1: "A", 2: "B", 3: "C", 4: "D", 5: "F"}
SAVE_INTERVAL_S = 1.0
_UID = re.compile(r"[0-9A-Fa-f]{8}")

InputListener = Callable[[int, bool], None]
JsonObject = dict[str, Any]


class WorldError(Exception):
    """Root of the errors a world verb raises."""


class UnknownConnectorError(WorldError, LookupError):
    """No connector has that id."""


class InvalidValueError(WorldError, ValueError):
    """An argument is out of range or of the wrong type; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class ConflictError(WorldError, RuntimeError):
    """The verb makes no sense in the world's present state (e.g. EV state with no EV)."""


class CardReader(Protocol):
    """The token reader emulator the world presents cards to."""

    @property
    def port(self) -> str: ...

    def present(self, card_id: int) -> None: ...


@dataclass
class _Site:
    config: ConnectorConfig
    path: PowerPath
    contactor: ContactorModel
    board: EvseBoardEmulator
    meter: MeterEmulator


class World:
    """The site's state and physics. Every verb is idempotent and returns the new state.

    ``clock`` gives the monotonic time that verbs integrate energy up to; :meth:`tick` takes
    its time from the caller and must use the same clock.
    """

    def __init__(
        self,
        config: WorldConfig,
        *,
        reader: CardReader | None = None,
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
        self._relays = {s.config.relay_pin: s for s in self._sites.values()}
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
                "reader": {
                    "port": None if self._reader is None else self._reader.port,
                    "link": self.reader_link,
                },
                "outputs": {str(pin): level for pin, level in sorted(self._outputs.items())},
            }

    def connector_state(self, connector_id: int) -> JsonObject:
        with self._lock:
            return _connector_json(self._site(connector_id))

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

    def _site(self, connector_id: int) -> _Site:
        try:
            return self._sites[connector_id]
        except KeyError:
            raise UnknownConnectorError(f"no connector {connector_id}") from None

    def _advance_to(self, now: float) -> None:
        if now > self._now:
            for site in self._sites.values():
                site.path.advance(now - self._now)
            self._now = now

    def _sync(self, now: float) -> list[tuple[int, bool]]:
        for site in self._sites.values():
            site.contactor.settle(now)
            site.path.contactor_closed = site.contactor.contacts
            site.path.offered_a = float(site.board.configured_current)
            site.board.vehicle_state = VEHICLE_STATE[site.path.ev.state]
            _publish_meter(site)
        levels = self._input_levels()
        changes = [(pin, lv) for pin, lv in levels.items() if self._inputs.get(pin) != lv]
        self._inputs = levels
        return changes

    def _input_levels(self) -> dict[int, bool]:
        return {
            s.config.feedback_pin: s.contactor.contacts == s.config.feedback_active_high
            for s in self._sites.values()
            if s.config.feedback_pin is not None
        }

    def _notify(self, changes: list[tuple[int, bool]]) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for pin, level in changes:
            for listener in listeners:
                listener(pin, level)

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


def _build_site(config: ConnectorConfig) -> _Site:
    ev = Ev(max_current_a=config.ev_max_current, phases=config.phases)
    return _Site(
        config=config,
        path=PowerPath(ev, energy_wh=config.initial_energy_kwh * 1000.0),
        contactor=ContactorModel(
            active_high=config.relay_active_high, fault=config.contactor_fault
        ),
        board=EvseBoardEmulator(device_id=config.evse_board_id),
        meter=MeterEmulator(register_map_name=config.meter_model, device_id=config.meter_id),
    )


def _publish_meter(site: _Site) -> None:
    meter, path = site.meter, site.path
    meter.energy_kwh = path.energy_wh / 1000.0
    meter.power_w = path.power_w
    meter.current_a = path.phase_currents_a
    meter.voltage_v = (NOMINAL_VOLTAGE_V,) * 3
    meter.frequency_hz = NOMINAL_FREQUENCY_HZ


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
        "pilot": PILOT_LETTERS.get(site.board.vehicle_state, "F"),
        "contactor": {
            "relay_closed": contactor.coil,
            "feedback_closed": contactor.contacts if site.config.feedback_pin is not None else None,
            "fault": contactor.fault,
        },
        "offered_current_a": site.board.configured_current,
        "meter": {
            "energy_wh": round(site.meter.register_energy_wh, 3),
            "energy_wh_exact": round(path.energy_wh, 3),
            "power_w": round(path.power_w, 3),
            "voltage_v": [NOMINAL_VOLTAGE_V] * 3,
            "current_a": list(path.phase_currents_a),
        },
    }
