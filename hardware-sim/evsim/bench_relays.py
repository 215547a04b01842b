"""A reference :class:`evsim.bench_backend.BenchBackend` for a relay-switched test bench.

NOT YET RUN ON REAL EQUIPMENT: it is tested against gpiozero mock pins only. It shows how a
backend for real test equipment is written (docs/bench.md has the wiring); adapt it to your
bench. It runs on the bench controller (a second Raspberry Pi, say), never on the charger:

- an EV simulator per connector: a 2.74 kOhm resistor and a diode between CP and PE, connected
  by ``plug_relay`` (pilot B), and a 1.3 kOhm resistor added in parallel by ``ready_relay``
  (pilot C), as IEC 61851-1 Annex A draws the EV;
- taps that tell the bench what the charger switched: ``coil_tap`` (an opto-coupler on the
  contactor coil: ``relay_closed``) and ``load_tap`` (a 230 V opto module on the load side:
  ``feedback_closed``);
- optional fault relays per connector (``[connectors.faults]``: a relay that breaks the
  meter's RS-485 line, shorts CP to PE, bridges the diode, ...) and for the station
  (``[station_faults]``: a relay in the reader's supply for ``reader_unplugged``);
- cards on servos: ``present_card(uid)`` swings the servo holding that card onto the reader,
  holds it ``card_hold_s`` seconds and swings it back.

Options (the TOML given to ``evsim bench serve --backend evsim.bench_relays:RelayBench
--config FILE``)::

    pin_factory = "lgpio"            # optional; gpiozero's default otherwise
    relays_active_high = false       # most relay boards switch on a low level
    settle_s = 0.3                   # after switching, before answering (relay + EVSE reaction)
    card_hold_s = 1.0

    [[connectors]]
    id = 1
    plug_relay = 5
    ready_relay = 6
    coil_tap = 13
    load_tap = 19
    [connectors.faults]
    meter_offline = 12
    pilot_e = 16

    [station_faults]
    reader_unplugged = 21

    [[cards]]
    uid = "04A2B3C4D5E680"           # the idTag the charger's reader reports for this card
    servo = 18
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gpiozero import DigitalInputDevice, OutputDevice, Servo
from gpiozero.pins import Factory

from evsim.bench_backend import ConflictError, InvalidValueError, JsonObject, UnknownConnectorError
from evsim.world_config import CONNECTOR_FAULT_NAMES, STATION_FAULT_NAMES


@dataclass
class _Connector:
    id: int
    plug: Any  # gpiozero OutputDevice
    ready: Any
    coil_tap: Any  # gpiozero DigitalInputDevice
    load_tap: Any
    faults: dict[str, Any] = field(default_factory=dict)  # fault name -> OutputDevice


class RelayBench:
    """EV simulator relays, contactor taps, fault relays and card servos on GPIO."""

    def __init__(self, options: Mapping[str, Any], *, sleep: Callable[[float], None] = time.sleep,
                 pin_factory: Factory | None = None) -> None:
        self._lock = threading.Lock()
        self._sleep = sleep
        self._settle_s = float(options.get("settle_s", 0.3))
        self._card_hold_s = float(options.get("card_hold_s", 1.0))
        self._factory = pin_factory or _factory(options.get("pin_factory"))
        self._active_high = bool(options.get("relays_active_high", False))
        self._devices: list[Any] = []
        try:
            self._connectors = {int(c["id"]): self._connector(c) for c in options["connectors"]}
            self._station = {name: self._relay(pin)
                             for name, pin in options.get("station_faults", {}).items()}
            self._cards = {str(c["uid"]).upper(): self._servo(c["servo"])
                           for c in options.get("cards", [])}
        except Exception:
            self.close()
            raise

    # -- the verbs ---------------------------------------------------------------------------

    def snapshot(self) -> JsonObject:
        with self._lock:
            return {"connectors": [self._state(c) for c in self._connectors.values()],
                    "faults": _on(self._station), "cards": sorted(self._cards)}

    def connector_state(self, connector_id: int) -> JsonObject:
        with self._lock:
            return self._state(self._get(connector_id))

    def plug(self, connector_id: int) -> JsonObject:
        return self._switch(connector_id, lambda c: c.plug.on())

    def unplug(self, connector_id: int) -> JsonObject:
        def pull(c: _Connector) -> None:
            c.ready.off()  # C -> A in one step, as a cable pulled while charging
            c.plug.off()
        return self._switch(connector_id, pull)

    def set_ev_state(self, connector_id: int, state: object) -> JsonObject:
        if state not in ("B", "C"):
            raise InvalidValueError("state", 'must be "B" or "C"')

        def apply(c: _Connector) -> None:
            if not c.plug.value:
                raise ConflictError(f"connector {c.id}: no EV is plugged in")
            (c.ready.on if state == "C" else c.ready.off)()
        return self._switch(connector_id, apply)

    def set_draw(self, connector_id: int, amps: object) -> JsonObject:
        raise ConflictError("this bench has no controllable load")

    def set_fault(self, connector_id: int, fault: object, active: object) -> JsonObject:
        if not isinstance(active, bool):
            raise InvalidValueError("active", "must be true or false")
        if fault not in (*CONNECTOR_FAULT_NAMES, *STATION_FAULT_NAMES):
            raise InvalidValueError("fault", "unknown fault")
        if connector_id == 0:
            relay = self._station.get(str(fault))
            if relay is None:
                raise ConflictError(f"no relay for the station fault {fault} on this bench")
            with self._lock:
                (relay.on if active else relay.off)()
                self._sleep(self._settle_s)
            return self.snapshot()

        def apply(c: _Connector) -> None:
            if (relay := c.faults.get(str(fault))) is None:
                raise ConflictError(f"connector {c.id}: no relay for {fault} on this bench")
            (relay.on if active else relay.off)()
        return self._switch(connector_id, apply)

    def present_card(self, uid: object) -> JsonObject:
        if not isinstance(uid, str) or not uid:
            raise InvalidValueError("uid", "must be the idTag of a card on this bench")
        servo = self._cards.get(uid.upper())
        if servo is None:
            raise ConflictError(f"no card {uid} on this bench (cards: {', '.join(self._cards)})")
        with self._lock:
            try:
                servo.max()  # onto the reader
                self._sleep(self._card_hold_s)
            finally:
                servo.min()  # and away again
        return {"uid": uid.upper()}

    def close(self) -> None:
        """Unplug every EV, clear every fault, release the pins. Idempotent."""
        devices, self._devices = self._devices, []
        for device in reversed(devices):
            if isinstance(device, OutputDevice):
                device.off()  # EV unplugged, fault cleared
            device.close()

    # -- internals ---------------------------------------------------------------------------

    def _switch(self, connector_id: int, change: Callable[[_Connector], None]) -> JsonObject:
        with self._lock:
            c = self._get(connector_id)
            change(c)
            self._sleep(self._settle_s)  # the relay settles and the EVSE reacts
            return self._state(c)

    def _get(self, connector_id: int) -> _Connector:
        try:
            return self._connectors[connector_id]
        except KeyError:
            raise UnknownConnectorError(f"no connector {connector_id}") from None

    def _state(self, c: _Connector) -> JsonObject:
        plugged = bool(c.plug.value)
        return {
            "id": c.id,
            "ev": {"plugged": plugged, "state": ("C" if c.ready.value else "B") if plugged
                   else "A"},
            "pilot": None,  # not measured on this bench; a CP voltage tap could tell
            "contactor": {"relay_closed": bool(c.coil_tap.is_active),
                          "feedback_closed": bool(c.load_tap.is_active)},
            "faults": _on(c.faults),
        }

    def _connector(self, c: Mapping[str, Any]) -> _Connector:
        return _Connector(
            int(c["id"]), self._relay(c["plug_relay"]), self._relay(c["ready_relay"]),
            self._tap(c["coil_tap"]), self._tap(c["load_tap"]),
            {name: self._relay(pin) for name, pin in c.get("faults", {}).items()},
        )

    def _relay(self, pin: int) -> Any:
        return self._keep(OutputDevice(pin, active_high=self._active_high, initial_value=False,
                                       pin_factory=self._factory))

    def _tap(self, pin: int) -> Any:
        return self._keep(DigitalInputDevice(pin, pull_up=None, active_state=True,
                                             pin_factory=self._factory))

    def _servo(self, pin: int) -> Any:
        servo = self._keep(Servo(pin, pin_factory=self._factory))
        servo.min()
        return servo

    def _keep(self, device: Any) -> Any:
        self._devices.append(device)
        return device


def _on(relays: Mapping[str, Any]) -> list[str]:
    return sorted(name for name, relay in relays.items() if relay.value)


def _factory(name: object) -> Factory | None:
    if name is None:
        return None
    from hal.gpio import make_pin_factory  # evsim may import hal, never agent

    factory: Factory | None = make_pin_factory(str(name))
    return factory
