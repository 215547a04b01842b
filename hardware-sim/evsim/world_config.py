"""The simulated site's configuration: dataclasses, built in code or loaded from a small TOML.

::

    site = "SIM-0001"                         # the charger id this world is wired to
    state_file = "/tmp/evse-sim/world.json"   # optional: the world's state survives restarts
    reader = "rdm6300"                        # the token reader module: "rdm6300" or "pn532"
    reader_link = "/tmp/evse-sim/reader"      # symlink to the reader's pty ("" = none)

    [bench]
    listen = "127.0.0.1:8400"
    [pin_bus]
    listen = "127.0.0.1:8401"
    [bus]
    transport = "rtu-tcp"                     # "rtu-tcp", "tcp" or "pty"
    listen = "127.0.0.1:8402"                 # ignored for "pty"
    link = ""                                 # for "pty": symlink to the bus tty

    tamper_pin = 7                            # optional: the enclosure's tamper switch
    pwm_root = "/tmp/evse-sim/pwm"            # the sysfs PWM tree of pilot = "pwm" connectors

    [[connectors]]
    id = 1                                    # everything else defaults from the id
    pilot = "evse-board"                      # or "pwm": PWM pwm_chip/pwm_channel + MCP3008 input

Connector N defaults to EVSE board id 2N-1, meter id 2N and the relay/feedback pins in
:data:`DEFAULT_PINS`; connector 1 also has the reference board's RCD trip input (BCM 26) and a
connector lock (outputs 20/21, feedback 16). Port 0 means "any free port"; the servers report
what they bound. Fault names for the bench: :data:`CONNECTOR_FAULT_NAMES`,
:data:`STATION_FAULT_NAMES` (hardware-sim/README.md).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

ContactorFault = Literal["welded", "stuck_open"]
CONTACTOR_FAULTS: tuple[str, ...] = ("welded", "stuck_open")
BUS_TRANSPORTS: tuple[str, ...] = ("rtu-tcp", "tcp", "pty")
READER_MODELS: tuple[str, ...] = ("rdm6300", "pn532")  # the agent's [reader] driver names
PILOT_MODELS: tuple[str, ...] = ("evse-board", "pwm")  # the agent's [connector.pilot] drivers

# Faults the bench can switch on and off (POST /api/connectors/{id}/fault). The openWB EVSE
# board reports a single "failure" vehicle state (5) for CP errors, so pilot_e, pilot_f and
# diode_failure all look the same on its Modbus registers.
CONNECTOR_FAULT_NAMES: tuple[str, ...] = (
    "meter_offline", "meter_garbage", "meter_implausible", "contactor_welded",
    "contactor_stuck_open", "pilot_e", "pilot_f", "diode_failure", "evse_board_offline",
    "lock_failure", "rcd_trip",
)
# connector 0, the whole site: the reader's cable pulled, the enclosure opened (tamper_pin)
STATION_FAULT_NAMES: tuple[str, ...] = ("reader_unplugged", "tamper")
PILOT_FAULT_NAMES: frozenset[str] = frozenset({"pilot_e", "pilot_f", "diode_failure"})

# BCM (relay, feedback) pins per connector id, as wired on the reference board.
DEFAULT_PINS: dict[int, tuple[int, int]] = {1: (17, 27), 2: (22, 23), 3: (24, 25), 4: (5, 6)}
# BCM RCD trip input, and (lock motor, unlock motor, lock feedback) pins, per connector id.
DEFAULT_RCD_PINS: dict[int, int] = {1: 26}
DEFAULT_LOCK_PINS: dict[int, tuple[int, int, int]] = {1: (20, 21, 16)}
_PIN_FIELDS = ("relay_pin", "feedback_pin", "rcd_pin", "lock_pin", "unlock_pin",
               "lock_feedback_pin", "phase_pin", "phase_feedback_pin")


DEFAULT_SITE = "SIM-0001"  # examples/sim.toml's charger.id


class WorldConfigError(ValueError):
    """The world configuration cannot be used; the message names the setting."""


@dataclass(frozen=True)
class Address:
    """A loopback TCP listen address; port 0 asks the OS for a free port."""

    host: str = "127.0.0.1"
    port: int = 0

    @classmethod
    def parse(cls, text: str) -> Address:
        host, sep, port = text.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise WorldConfigError(f"address {text!r} is not HOST:PORT")
        return cls(host, int(port))

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass
class ConnectorConfig:
    """One connector's wiring and the EV that will be plugged into it.

    ``relay_active_high``/``feedback_active_high`` say which pin level means "closed", to
    match an agent configured for active-low relay boards or pulled-up feedback contacts.
    ``feedback_pin`` None means no auxiliary contact is wired.

    ``rcd_pin`` is the residual-current device's trip contact, an input the world drives to
    ``rcd_active_high`` while tripped. ``lock_pin``/``unlock_pin`` are the charger's lock motor
    outputs and ``lock_feedback_pin`` reads ``lock_feedback_active_high`` while locked. None
    means not wired (a fixed cable has no lock).

    ``phase_pin`` drives a 1<->3 phase relay that connects L2 and L3 while energized
    (``phase_active_high``); without it all ``phases`` are always connected.
    ``phase_feedback_pin`` reads ``phase_feedback_active_high`` while L2/L3 are connected.

    ``pilot`` is who generates the control pilot: the EVSE board on the Modbus bus, or
    (``"pwm"``) the charger itself, through sysfs PWM channel ``pwm_chip``/``pwm_channel``
    (under ``WorldConfig.pwm_root``), reading the wire back through input ``adc_channel`` of
    an MCP3008 on SPI0 CE0 (default: channel id - 1 of both).
    """

    id: int
    relay_pin: int
    feedback_pin: int | None
    evse_board_id: int
    meter_id: int
    meter_model: str = "sdm630"
    phases: int = 3
    initial_energy_kwh: float = 1234.5
    ev_max_current: float = 32.0
    relay_active_high: bool = True
    feedback_active_high: bool = True
    contactor_fault: ContactorFault | None = None
    rcd_pin: int | None = None
    rcd_active_high: bool = True
    lock_pin: int | None = None
    unlock_pin: int | None = None
    lock_feedback_pin: int | None = None
    lock_active_high: bool = True
    lock_feedback_active_high: bool = True
    phase_pin: int | None = None
    phase_active_high: bool = True
    phase_feedback_pin: int | None = None
    phase_feedback_active_high: bool = True
    pilot: str = "evse-board"
    pwm_chip: int = 0
    pwm_channel: int = 0
    adc_channel: int = 0

    @property
    def has_lock(self) -> bool:
        return self.lock_pin is not None and self.unlock_pin is not None

    def pins(self) -> dict[str, int]:
        """Every wired pin by setting name."""
        wired = {name: getattr(self, name) for name in _PIN_FIELDS}
        return {name: pin for name, pin in wired.items() if pin is not None}

    @classmethod
    def for_id(cls, connector_id: int, **overrides: Any) -> ConnectorConfig:
        """Connector ``connector_id`` with the default ids and pins, then ``overrides``."""
        relay, feedback = DEFAULT_PINS.get(connector_id, (None, None))
        lock, unlock, lock_feedback = DEFAULT_LOCK_PINS.get(connector_id, (None, None, None))
        values: dict[str, Any] = {
            "relay_pin": relay,
            "feedback_pin": feedback,
            "evse_board_id": 2 * connector_id - 1,
            "meter_id": 2 * connector_id,
            "rcd_pin": DEFAULT_RCD_PINS.get(connector_id),
            "lock_pin": lock,
            "unlock_pin": unlock,
            "lock_feedback_pin": lock_feedback,
            "pwm_channel": connector_id - 1,
            "adc_channel": connector_id - 1,
        }
        values.update(overrides)
        if values["relay_pin"] is None:
            raise WorldConfigError(f"connector {connector_id}: relay_pin has no default; set it")
        config = cls(id=connector_id, **values)
        config.validate()
        return config

    def validate(self) -> None:
        for name in ("relay_pin", "evse_board_id", "meter_id"):
            if not _is_int(getattr(self, name)):
                raise WorldConfigError(f"connector {self.id}: {name} must be an integer")
        for name in _PIN_FIELDS[1:]:
            pin = getattr(self, name)
            if pin is not None and not _is_int(pin):
                raise WorldConfigError(f"connector {self.id}: {name} must be an integer or false")
        if (self.lock_pin is None) != (self.unlock_pin is None):
            raise WorldConfigError(f"connector {self.id}: lock_pin and unlock_pin go together")
        if self.lock_feedback_pin is not None and not self.has_lock:
            raise WorldConfigError(f"connector {self.id}: lock_feedback_pin needs lock_pin")
        if self.phase_feedback_pin is not None and self.phase_pin is None:
            raise WorldConfigError(f"connector {self.id}: phase_feedback_pin needs phase_pin")
        if self.phase_pin is not None and self.phases != 3:
            raise WorldConfigError(f"connector {self.id}: phase_pin needs phases = 3")
        if self.phases not in (1, 3):
            raise WorldConfigError(f"connector {self.id}: phases must be 1 or 3")
        if self.pilot not in PILOT_MODELS:
            raise WorldConfigError(f"connector {self.id}: pilot must be one of "
                                   f"{', '.join(PILOT_MODELS)}")
        if self.pilot == "pwm":  # an EVSE board's pilot never reads these
            for name, top in (("pwm_chip", 7), ("pwm_channel", 3), ("adc_channel", 7)):
                value = getattr(self, name)
                if not _is_int(value) or not 0 <= value <= top:
                    raise WorldConfigError(f"connector {self.id}: {name} must be 0..{top}")
        if self.contactor_fault is not None and self.contactor_fault not in CONTACTOR_FAULTS:
            raise WorldConfigError(f"connector {self.id}: contactor_fault must be one of "
                                   f"{', '.join(CONTACTOR_FAULTS)} or absent")


@dataclass
class WorldConfig:
    """Everything :class:`evsim.world_server.WorldServer` starts.

    The defaults match examples/sim-world.toml and the agent's examples/sim.toml.
    ``site`` is the world's identity: the charger id (``charger.id``) it is wired to. The pin
    bus announces it, and an agent with another id refuses to run against this world.
    ``tamper_pin`` is the enclosure's tamper switch, an input the world drives to
    ``tamper_active_high`` while the enclosure is open (the reference board has none: None).
    ``reader`` is the token reader module on the reader's pty, one of :data:`READER_MODELS`.
    ``pwm_root`` is the directory of the simulated sysfs PWM class (the agent's
    ``[connector.pilot] pwm_root``); required when a connector has ``pilot = "pwm"``.
    """

    site: str = DEFAULT_SITE

    bench: Address = field(default_factory=lambda: Address("127.0.0.1", 8400))
    pin_bus: Address = field(default_factory=lambda: Address("127.0.0.1", 8401))
    bus_transport: str = "rtu-tcp"
    bus: Address = field(default_factory=lambda: Address("127.0.0.1", 8402))
    bus_link: Path | None = None
    reader: str = "rdm6300"
    reader_link: Path | None = Path("/tmp/evse-sim/reader")
    state_file: Path | None = None
    connectors: list[ConnectorConfig] = field(default_factory=lambda: [ConnectorConfig.for_id(1)])
    tick_s: float = 0.1
    tamper_pin: int | None = None
    tamper_active_high: bool = True
    pwm_root: Path | None = None

    def validate(self) -> None:
        if not self.site or not self.site.isprintable() or any(c.isspace() for c in self.site):
            raise WorldConfigError(f"site must be a charger id without spaces, not {self.site!r}")
        if self.bus_transport not in BUS_TRANSPORTS:
            raise WorldConfigError(f"bus.transport must be one of {', '.join(BUS_TRANSPORTS)}")
        if self.reader not in READER_MODELS:
            raise WorldConfigError(f"reader must be one of {', '.join(READER_MODELS)}")
        ids = [c.id for c in self.connectors]
        if not ids or len(set(ids)) != len(ids):
            raise WorldConfigError("connectors: ids must be present and unique")
        for connector in self.connectors:
            connector.validate()
        self._validate_pwm_pilots()
        if self.tamper_pin is not None and not _is_int(self.tamper_pin):
            raise WorldConfigError("tamper_pin must be an integer or false")
        used: dict[int, str] = {} if self.tamper_pin is None else {self.tamper_pin: "tamper_pin"}
        for connector in self.connectors:
            for name, pin in connector.pins().items():
                where = f"connector {connector.id} {name}"
                if pin in used:
                    raise WorldConfigError(f"{where}: GPIO{pin} is already used by {used[pin]}")
                used[pin] = where

    def _validate_pwm_pilots(self) -> None:
        pwm = [c for c in self.connectors if c.pilot == "pwm"]
        if pwm and self.pwm_root is None:
            raise WorldConfigError(f"connector {pwm[0].id}: pilot = \"pwm\" needs pwm_root")
        outputs = {(c.pwm_chip, c.pwm_channel) for c in pwm}
        inputs = {c.adc_channel for c in pwm}
        if len(outputs) != len(pwm) or len(inputs) != len(pwm):
            raise WorldConfigError("connectors: each PWM pilot needs its own pwm_chip/"
                                   "pwm_channel and adc_channel")


def load_world_config(path: Path) -> WorldConfig:
    """Read a world TOML; raises :class:`WorldConfigError` naming the bad setting."""
    with path.open("rb") as file:
        try:
            data = tomllib.load(file)
        except tomllib.TOMLDecodeError as exc:
            raise WorldConfigError(f"{path}: {exc}") from exc
    return world_config_from_dict(data)


def world_config_from_dict(data: dict[str, Any]) -> WorldConfig:
    bench, pin_bus, bus = data.get("bench", {}), data.get("pin_bus", {}), data.get("bus", {})
    config = WorldConfig(
        site=str(data.get("site", DEFAULT_SITE)),
        bench=Address.parse(bench.get("listen", "127.0.0.1:8400")),
        pin_bus=Address.parse(pin_bus.get("listen", "127.0.0.1:8401")),
        bus_transport=bus.get("transport", "rtu-tcp"),
        bus=Address.parse(bus.get("listen", "127.0.0.1:8402")),
        bus_link=_optional_path(bus.get("link")),
        reader=data.get("reader", "rdm6300"),
        reader_link=_optional_path(data.get("reader_link", "/tmp/evse-sim/reader")),
        state_file=_optional_path(data.get("state_file")),
        connectors=[_connector(entry) for entry in data.get("connectors", [{"id": 1}])],
        tamper_pin=None if data.get("tamper_pin", False) is False else data["tamper_pin"],
        tamper_active_high=data.get("tamper_active_high", True),
        pwm_root=_optional_path(data.get("pwm_root")),
    )
    config.validate()
    return config


def _connector(entry: dict[str, Any]) -> ConnectorConfig:
    known = {f.name for f in fields(ConnectorConfig)}
    unknown = sorted(set(entry) - known)
    if unknown:
        raise WorldConfigError(f"connectors: unknown setting(s) {', '.join(unknown)}")
    if not isinstance(entry.get("id"), int):
        raise WorldConfigError("connectors: every connector needs an integer id")
    rest = {k: v for k, v in entry.items() if k != "id"}
    for name in _PIN_FIELDS[1:]:
        if rest.get(name) is False:  # TOML has no null: false means "not wired"
            rest[name] = None
    try:
        return ConnectorConfig.for_id(entry["id"], **rest)
    except TypeError as exc:
        raise WorldConfigError(f"connector {entry['id']}: {exc}") from exc


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _optional_path(value: str | None) -> Path | None:
    return Path(value) if value else None
