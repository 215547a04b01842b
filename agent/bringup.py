"""Bring-up checks an installer runs on the real charger, one hardware role at a time.

::

    evse-agent bringup relay  [--connector N] [--yes]  close the contactor ~1 s, compare feedback
    evse-agent bringup meter  [--connector N]          every value of the map, read twice
    evse-agent bringup reader [--timeout S]            wait for a card and print its UID
    evse-agent bringup pilot  [--connector N]          pilot state, offered current; no switching
    evse-agent bringup lock   [--connector N]          lock, check the feedback, unlock

:func:`check` builds only the devices of its role from the configuration (through
:class:`agent.hardware.Hardware`), talks to them as the agent would, prints what it saw on
``Options.out`` and returns an exit status: :data:`EXIT_OK`, :data:`EXIT_FAILED` (the device
did not pass; the message on ``Options.err`` says what to look at) or :data:`EXIT_CONFIG` (the
configuration does not allow the check). Every device is released, the contactor open,
however the check ends. Stop the agent first: both would talk to the same pins and buses.

Errors::

    BringupError
     +-- CheckFailed       the device did not answer or failed the check   -> EXIT_FAILED
     +-- NotConfigured     no such connector, or the role is not configured -> EXIT_CONFIG
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from agent.config import BusConfig, Config, ConnectorConfig
from hal.errors import ConfigurationError, DeviceError, LockError
from hal.roles import ConnectorLock, MeterReading, PilotState

if TYPE_CHECKING:
    from agent.hardware import Hardware
    from hal.meter_maps import Register, RegisterMap
    from hal.modbus_bus import ModbusBus

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
ROLES = ("relay", "meter", "reader", "pilot", "lock")
GPIO_CHIP = Path("/dev/gpiochip0")
SIMULATED_PIN_FACTORIES = ("mock", "evsim")
PILOT_FIRST_READ_S = 2.0
CENTIAMPS = 0x80  # EVSE board register 2005: currents in 0.01 A
# The openWB EVSE board's registers (hardware.md §1.5a); 1007 is listed by openWB_lite only.
BOARD_REGISTERS = {
    1000: "configured current (A; 0 = no charging)",
    1001: "current signalled by PWM (A)",
    1002: "vehicle state (1 A, 2 B, 3 C, 4 D, 5 failure)",
    1003: "cable (PP) limit (A)",
    1004: "turn-off bit",
    1005: "firmware version",
    1006: "EVSE status (1 steady 12 V, 2 PWM on, 3 off)",
    1007: "RCD status (unconfirmed)",
    2000: "current after boot (A)",
    2001: "Modbus enabled",
    2002: "minimum current (A)",
    2003: "analog input",
    2004: "current after button (A)",
    2005: "config bits (0x80: currents in 0.01 A)",
    2006: "current sharing mode",
    2007: "PP detection",
}
READER_HINTS = {
    "rdm6300": "the module's TX to the Pi's RX and a common ground (5 V modules: level-shift "
               "TX), 9600 Bd, the serial console disabled on that UART (raspi-config), and a "
               "125 kHz EM4100 card (13.56 MHz cards are not seen)",
    "pn532": "TX/RX crossed, the module's switches set to HSU (UART), 115200 Bd, the serial "
             "console disabled on that UART, and a 13.56 MHz ISO 14443A card",
}


class BringupError(Exception):
    """Root of the errors that end a check; ``str()`` is the message for the installer."""

    exit_status = EXIT_FAILED


class CheckFailed(BringupError):
    """The device did not answer, or its answer did not pass the check."""


class NotConfigured(BringupError):
    """The configuration does not allow the check (no such connector, role not configured)."""

    exit_status = EXIT_CONFIG


def ask(prompt: str) -> bool:
    """Ask on the terminal; only ``yes`` confirms. No terminal (EOF) is a no."""
    try:
        return input(f"{prompt} Type yes to go on: ").strip().lower() == "yes"
    except EOFError:
        return False


@dataclass(frozen=True, kw_only=True)
class Options:
    """How a check runs. The delays suit real relays; tests shorten them."""

    connector: int = 1
    yes: bool = False  # relay: switch without asking
    timeout: float = 30.0  # reader: how long to wait for a card
    hold: float = 1.0  # relay: how long the contactor stays closed
    settle: float = 0.5  # relay/lock: how long contacts may take to follow
    meter_gap: float = 1.0  # meter: time between the two reads
    confirm: Callable[[str], bool] = ask
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)


def run(role: str, config: Config, options: Options | None = None) -> int:
    """:func:`check` in a new event loop; the command line calls this."""
    return asyncio.run(check(role, config, options or Options()))


async def check(role: str, config: Config, options: Options | None = None) -> int:
    """Run the check of ``role`` and return its exit status (never raises for a device)."""
    from agent.hardware import Hardware  # lazily: it pulls in the driver libraries

    options = options or Options()
    if role not in _CHECKS:
        print(f"{role}: unknown role; choose one of {', '.join(ROLES)}", file=options.err)
        return EXIT_CONFIG
    hardware = Hardware(config)
    session = _Session(config, hardware, options)
    try:
        await _CHECKS[role](session)
    except BringupError as exc:
        print(f"{role}: FAILED: {exc}", file=options.err, flush=True)
        return exc.exit_status
    except ConfigurationError as exc:
        print(f"{role}: configuration: {exc}", file=options.err, flush=True)
        return EXIT_CONFIG
    except Exception as exc:  # an installer gets a message, not a traceback
        print(f"{role}: FAILED: {type(exc).__name__}: {exc}", file=options.err, flush=True)
        return EXIT_FAILED
    finally:
        hardware.close()  # opens the contactor and releases pins and buses
    print(f"{role}: OK", file=options.out, flush=True)
    return EXIT_OK


@dataclass
class _Session:
    config: Config
    hardware: Hardware
    options: Options

    def say(self, text: str) -> None:
        print(text, file=self.options.out, flush=True)

    def connector(self) -> ConnectorConfig:
        wanted = self.options.connector
        for c in self.config.connectors:
            if c.id == wanted:
                return c
        known = ", ".join(str(c.id) for c in self.config.connectors)
        raise NotConfigured(f"no connector {wanted} in the configuration (configured: {known})")

    def bus(self, name: str) -> ModbusBus:
        """The Modbus line ``name``, after checking its serial port can be opened."""
        b = self.config.bus(name)
        if b.type == "rtu" and b.port is not None:
            check_serial_port(b.port, f"bus {name!r}")
        bus: ModbusBus = self.hardware.bus(name)
        return bus

    @contextlib.contextmanager
    def gpio(self) -> Iterator[None]:
        """Turn a failure to set up GPIO into what the installer has to do about it."""
        check_gpio_access(self.config.gpio.pin_factory)
        try:
            yield
        except (ConfigurationError, BringupError):
            raise
        except Exception as exc:
            raise CheckFailed(gpio_problem(exc)) from exc

    async def modbus(self, request: Awaitable[Any], bus: str, device_id: int, what: str) -> Any:
        """Await a request to ``what`` on ``bus``; a failure becomes a wiring hint."""
        try:
            return await request
        except DeviceError as exc:
            raise CheckFailed(modbus_problem(exc, self.config.bus(bus), device_id, what)) from exc


# --- relay -------------------------------------------------------------------------------------


async def check_relay(session: _Session) -> None:
    """Close the contactor for ``hold`` seconds after confirmation; feedback must follow."""
    c = session.connector()
    await _refuse_with_ev(session, c)
    with session.gpio():
        # The check switches the bare contactor on purpose: the interlock would (rightly)
        # refuse to close it without an EV in state C. Hardware.close() opens it again.
        contactor = session.hardware.connector(c).interlock.contactor
    before = contactor.feedback_closed
    session.say(f"connector {c.id}: relay on GPIO {c.contactor.pin}, feedback "
                f"{_feedback_source(c)}: {_position(before)}")
    if before:
        raise CheckFailed("the feedback says closed while the relay is off: a welded contactor, "
                          "or connector.contactor.feedback_active_high is the wrong way round")
    prompt = (f"This closes the contactor of connector {c.id} for {session.options.hold:g} s: "
              "its outlet or cable will be live.")
    if not (session.options.yes or session.options.confirm(prompt)):
        raise CheckFailed("not confirmed (give --yes to skip the question); nothing was switched")
    closed, opened = await _pulse(contactor.set_closed, lambda: contactor.feedback_closed,
                                  session.options)
    session.say(f"relay closed: feedback {_position(closed)}; relay open again: feedback "
                f"{_position(opened)}")
    _judge_feedback(c, closed, opened)
    if closed is None:
        session.say("no feedback input configured: listen for the contactor's click")
    else:
        session.say("feedback agreed with the relay: open, closed, open")


async def _pulse(switch: Callable[[bool], None], feedback: Callable[[], bool | None],
                 options: Options) -> tuple[bool | None, bool | None]:
    """Close for ``hold`` s, read feedback, open (always), read feedback after ``settle`` s."""
    try:
        switch(True)
        await asyncio.sleep(options.hold)
        closed = feedback()
    finally:
        switch(False)
    await asyncio.sleep(options.settle)
    return closed, feedback()


def _judge_feedback(c: ConnectorConfig, closed: bool | None, opened: bool | None) -> None:
    if closed is False:
        raise CheckFailed(f"the contactor did not close (feedback stayed open): check the coil "
                          f"supply and the relay board on GPIO {c.contactor.pin} (active_high = "
                          f"{str(c.contactor.active_high).lower()}), or the feedback wiring")
    if opened:
        raise CheckFailed("the feedback still says closed after the relay opened: the contactor "
                          "may be welded; do not use the charger until it is checked")


async def _refuse_with_ev(session: _Session, c: ConnectorConfig) -> None:
    """Refuse while an EV is connected; where the pilot cannot be read, say so and go on."""
    if c.pilot.driver != "evse-board":
        session.say("make sure no EV is connected: this check does not read the pilot")
        return
    from hal.errors import PilotError
    from hal.pilot_evse_board import REG_VEHICLE_STATE, VEHICLE_STATES

    bus = session.bus(_board_bus(c))
    try:
        (code,) = await bus.aread_holding_registers(c.pilot.device_id, REG_VEHICLE_STATE, 1,
                                                    error=PilotError)
    except PilotError:
        session.say("the EVSE board does not answer, so the pilot is unknown: make sure no EV "
                    "is connected (`evse-agent bringup pilot` checks the board)")
        return
    if (state := VEHICLE_STATES.get(code)) is not None and state.plugged:
        raise CheckFailed(f"an EV is connected (pilot {state.value}): unplug it first; this "
                          "check must not switch power into a car")


def _board_bus(c: ConnectorConfig) -> str:
    if c.pilot.bus is None:  # the configuration's validation requires it for evse-board
        raise NotConfigured(f"connector[{c.id}].pilot.bus is not set")
    return c.pilot.bus


def _feedback_source(c: ConnectorConfig) -> str:
    pin = c.contactor.feedback_pin
    return "not configured" if pin is None else f"on GPIO {pin}"


def _position(closed: bool | None) -> str:
    return {True: "closed", False: "open", None: "n/a"}[closed]


# --- meter -------------------------------------------------------------------------------------


async def check_meter(session: _Session) -> None:
    """Read every value of the register map twice; the energy register must not go back."""
    from hal.meter_maps import register_map
    from hal.meter_modbus import ModbusEnergyMeter

    c = session.connector()
    m = c.meter
    # The bare driver, not Hardware.meter(): the installer sees what the meter says, before
    # the agent's plausibility filter would retry or discard it.
    regmap = register_map(m.driver.replace("-", "_"))
    meter = ModbusEnergyMeter(session.bus(m.bus), m.device_id, regmap)
    session.say(f"connector {c.id}: {regmap.description or regmap.name}, Modbus id "
                f"{m.device_id} on bus {m.bus!r} ({_describe_bus(session.config.bus(m.bus))})")
    readings: list[MeterReading] = []
    for n in (1, 2):
        if n == 2:
            await asyncio.sleep(session.options.meter_gap)
        reading = await session.modbus(meter.read(), m.bus, m.device_id, "the meter")
        session.say(f"read {n}:")
        for line in meter_lines(regmap, reading):
            session.say(f"  {line}")
        readings.append(reading)
    check_energy_order(readings[0].energy_wh, readings[1].energy_wh)
    session.say(f"energy register did not go backwards ({readings[0].energy_wh:.1f} Wh -> "
                f"{readings[1].energy_wh:.1f} Wh)")


def check_energy_order(first_wh: float, second_wh: float) -> None:
    """A meter's import register never decreases; if it does, the map or the meter is wrong."""
    if second_wh < first_wh:
        raise CheckFailed(f"the energy register went backwards ({first_wh:.1f} Wh, then "
                          f"{second_wh:.1f} Wh): wrong meter model (word order, scaling) in "
                          "connector.meter.driver, or a faulty meter")


def meter_lines(regmap: RegisterMap, reading: MeterReading) -> list[str]:
    """One line per value the map gives: name, value, unit and where it was read."""
    rows: list[tuple[str, Register | None, float | None, str]] = [
        ("import energy", regmap.energy, reading.energy_wh, "Wh"),
        ("power", regmap.power, reading.power_w, "W"),
        ("frequency", regmap.frequency, reading.frequency_hz, "Hz"),
    ]
    for name, phases, values, unit in (("voltage", regmap.voltage, reading.voltage_v, "V"),
                                       ("current", regmap.current, reading.current_a, "A")):
        for i, reg in enumerate(phases or ()):
            rows.append((f"{name} L{i + 1}", reg, None if values is None else values[i], unit))
    return [_meter_line(regmap, *row) for row in rows if row[1] is not None]


def _meter_line(regmap: RegisterMap, name: str, reg: Register | None, value: float | None,
                unit: str) -> str:
    assert reg is not None
    shown = "n/a" if value is None else f"{value:.3f}"
    order = ", low word first" if reg.word_order == "little" else ""
    return (f"{name:<14} {shown:>14} {unit:<3} (FC{regmap.function_code:02d} "
            f"{reg.address:#06x} {reg.datatype}{order})")


# --- pilot -------------------------------------------------------------------------------------


async def check_pilot(session: _Session) -> None:
    """Show the pilot state and the offered current. Writes nothing, closes nothing."""
    c = session.connector()
    if c.pilot.driver == "evse-board":
        state = await _board_pilot(session, c)
    else:
        state = await _driver_pilot(session, c)
    if state.is_error:
        raise CheckFailed(f"pilot {state.value}: the EVSE reports a pilot error (CP shorted to "
                          "PE, diode missing, or the EVSE board in its failure state)")


async def _board_pilot(session: _Session, c: ConnectorConfig) -> PilotState:
    from hal.errors import PilotError
    from hal.pilot_evse_board import VEHICLE_STATES

    p, name = c.pilot, _board_bus(c)
    bus = session.bus(name)
    session.say(f"connector {c.id}: EVSE board, Modbus id {p.device_id} on bus {name!r} "
                f"({_describe_bus(session.config.bus(name))})")
    values: dict[int, int] = {}
    for start in (1000, 2000):
        read = bus.aread_holding_registers(p.device_id, start, 8, error=PilotError)
        block = await session.modbus(read, name, p.device_id, "the EVSE board")
        values.update(zip(range(start, start + 8), block, strict=True))
    for address, value in values.items():
        session.say(f"  {address}  {value:>5}  {BOARD_REGISTERS[address]}")
    state = VEHICLE_STATES.get(values[1002])
    if state is None:
        raise CheckFailed(f"vehicle state {values[1002]} is not one the openWB board uses: "
                          "is this an openWB EVSE DIN/WB board at that Modbus id?")
    scale = 0.01 if values[2005] & CENTIAMPS else 1.0  # FW >= 18 may count in 0.01 A
    session.say(f"pilot {state.value}, offered {values[1001] * scale:g} A (configured "
                f"{values[1000] * scale:g} A)")
    return state


async def _driver_pilot(session: _Session, c: ConnectorConfig) -> PilotState:
    """A pilot driver the board registers do not describe: start it and read its state."""
    with session.gpio():
        pilot = session.hardware.pilot(c)
    seen = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_change(_state: PilotState) -> None:  # on the driver's thread
        loop.call_soon_threadsafe(seen.set)

    try:
        await pilot.start(on_change)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(seen.wait(), PILOT_FIRST_READ_S)
        state = pilot.state
        session.say(f"connector {c.id}: {c.pilot.driver} pilot {state.value}")
        for name in ("offered_current", "duty_ns", "diode_seen"):  # what the driver can tell
            if (value := getattr(pilot, name, None)) is not None:
                session.say(f"  {name}: {value}")
        return state
    finally:
        await pilot.aclose()


# --- reader ------------------------------------------------------------------------------------


async def check_reader(session: _Session) -> None:
    """Wait up to ``timeout`` seconds for a card and print its UID."""
    r = session.config.reader
    if r.driver == "none":
        raise NotConfigured('no token reader configured ([reader] driver = "none")')
    if r.port is not None:
        check_serial_port(r.port, f"the {r.driver} reader")
    loop = asyncio.get_running_loop()
    outcome: asyncio.Future[str] = loop.create_future()

    def settle(setter: Callable[[Any], None], value: object) -> None:
        if not outcome.done():
            setter(value)

    def on_failure(error: BaseException | None) -> None:  # on the reader's thread
        if error is not None:
            loop.call_soon_threadsafe(settle, outcome.set_exception,
                                      CheckFailed(serial_problem(error, r.port or "", r.driver)))

    def on_token(uid: str) -> None:  # on the reader's thread
        loop.call_soon_threadsafe(settle, outcome.set_result, uid)

    reader = session.hardware.reader(on_failure=on_failure)
    if reader is None:
        raise NotConfigured("this configuration builds no token reader")
    await reader.start(on_token)
    try:
        session.say(f"{r.driver} on {r.port}: hold a card to the reader "
                    f"(waiting {session.options.timeout:g} s)")
        try:
            uid = await asyncio.wait_for(outcome, session.options.timeout)
        except TimeoutError:
            raise CheckFailed(f"no card seen in {session.options.timeout:g} s: check "
                              f"{READER_HINTS.get(r.driver, 'the wiring and baud rate')}") from None
    finally:
        await reader.aclose()
    session.say(f"card {uid} (idTag as the agent sends it)")


# --- lock --------------------------------------------------------------------------------------


async def check_lock(session: _Session) -> None:
    """Lock, check the feedback, unlock, check again (where a lock is configured)."""
    c = session.connector()
    with session.gpio():
        lock = session.hardware.lock(c)
    if lock is None:
        raise NotConfigured(f"connector {c.id} has no lock configured (a fixed cable needs none)")
    session.say(f"connector {c.id}: lock motor on GPIO {_lock_pins(c)}")
    await exercise_lock(lock, session.say)  # Hardware.close() stops the motor


async def exercise_lock(lock: ConnectorLock, say: Callable[[str], None]) -> None:
    """Lock then unlock ``lock``; a move that the feedback does not confirm fails the check."""
    say(f"lock feedback: {_lock_position(lock.locked)}")
    for move, name in ((lock.lock, "lock"), (lock.unlock, "unlock")):
        try:
            await move()
        except LockError as exc:
            raise CheckFailed(f"{name}: {exc}: check the motor wiring (lock and unlock outputs "
                              "swapped?), its supply and the feedback contact") from exc
        say(f"{name}ed: feedback {_lock_position(lock.locked)}")
    if lock.locked is None:
        say("no lock feedback configured: watch the lock pin move")


def _lock_pins(c: ConnectorConfig) -> str:
    k = c.lock
    assert k is not None
    feedback = "none" if k.feedback_pin is None else f"GPIO {k.feedback_pin}"
    return f"{k.pin} (lock) / {k.unlock_pin} (unlock), feedback {feedback}"


def _lock_position(locked: bool | None) -> str:
    return {True: "locked", False: "unlocked", None: "n/a"}[locked]


# --- what to tell the installer ----------------------------------------------------------------


def check_serial_port(port: str, what: str) -> None:
    """Fail with what to do when a serial device path is missing or may not be opened."""
    if "://" in port:
        return
    if not os.path.exists(port):
        raise CheckFailed(f"{what}: {port} does not exist: is the USB adapter plugged in, or the "
                          "UART enabled (dtoverlay, raspi-config)? ls -l /dev/serial* "
                          "/dev/ttyUSB* /dev/ttyAMA* lists what there is")
    if not os.access(port, os.R_OK | os.W_OK):
        raise CheckFailed(_serial_permission(what, port))


def check_gpio_access(pin_factory: str | None) -> None:
    """Fail before touching GPIO when /dev/gpiochip0 exists but this user may not open it."""
    if pin_factory in SIMULATED_PIN_FACTORIES:
        return
    if GPIO_CHIP.exists() and not os.access(GPIO_CHIP, os.R_OK | os.W_OK):
        raise CheckFailed(_gpio_permission(str(GPIO_CHIP)))


def gpio_problem(exc: BaseException) -> str:
    """What to do about an error raised while setting up a GPIO device."""
    text = str(exc)
    if isinstance(exc, PermissionError) or "permission" in text.lower():
        return _gpio_permission(getattr(exc, "filename", None) or str(GPIO_CHIP))
    if "gpiochip" in text or "Unable to load any default pin factory" in text:
        return (f"GPIO: {text}: no usable GPIO chip. On a Raspberry Pi check that {GPIO_CHIP} "
                "exists and the user is in the gpio group; elsewhere set [gpio] pin_factory")
    if "busy" in text.lower() or "in use" in text.lower():
        return (f"GPIO: {text}: a pin is in use, probably by the running agent: stop it first "
                "(sudo systemctl stop evse-agent)")
    return f"GPIO: {type(exc).__name__}: {text}"


def modbus_problem(exc: BaseException, bus: BusConfig, device_id: int, what: str) -> str:
    """What to check when ``what`` on ``bus`` failed a Modbus request."""
    from hal.modbus_bus import failure_kind

    where = f"{what} (Modbus id {device_id} on bus {bus.name!r}, {_describe_bus(bus)})"
    kind = failure_kind(exc)
    if kind == "no-answer":
        if bus.type == "tcp":
            return f"{where} does not answer: check the gateway's serial settings and the id"
        return (f"{where} does not answer (Modbus timeout): check the RS-485 wiring (A to A, "
                "B to B; ABB and Carlo Gavazzi label them the other way round, so try swapping), "
                "the baud rate and parity set on the device, and its device id")
    if kind == "no-connection":
        return f"{where}: cannot open the line: {_cause(exc)}"
    if kind == "refused":
        return (f"{where} answered with a Modbus exception: another device has that id, or "
                f"the configured model does not match the device ({exc})")
    return f"{where}: {exc}"


def serial_problem(exc: BaseException, port: str, driver: str) -> str:
    """What to do about the reader's port failing."""
    cause = exc.__cause__ or exc
    number = getattr(cause, "errno", None)
    text = str(exc)
    if number == errno.EACCES or "Permission denied" in text:
        return _serial_permission(f"the {driver} reader", port)
    if number == errno.ENOENT or "No such file" in text:
        return f"the {driver} reader: {port} does not exist: is the reader plugged in?"
    return f"the {driver} reader on {port}: {text}"


def _gpio_permission(path: str) -> str:
    return (f"permission denied on {path}: add the user to the gpio group (sudo usermod -aG "
            "gpio $USER), then log out and in again")


def _serial_permission(what: str, port: str) -> str:
    return (f"{what}: permission denied on {port}: add the user to the dialout group (sudo "
            "usermod -aG dialout $USER), then log out and in again")


def _describe_bus(b: BusConfig) -> str:
    if b.type == "tcp":
        return f"Modbus TCP {b.host}:{b.tcp_port}"
    return f"{b.port} {b.baudrate} 8{b.parity}{b.stopbits}"


def _cause(exc: BaseException) -> str:
    return str(exc.__cause__ or exc)


Check = Callable[[_Session], Awaitable[None]]
_CHECKS: dict[str, Check] = {
    "relay": check_relay,
    "meter": check_meter,
    "reader": check_reader,
    "pilot": check_pilot,
    "lock": check_lock,
}
