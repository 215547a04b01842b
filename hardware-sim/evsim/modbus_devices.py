"""Modbus device emulators (energy meters, the openWB EVSE board) and the bus that serves them.

Each emulator is plain attributes the simulated world sets (``meter.power_w = 11000``) and a
pymodbus simulator device whose ``action`` callback encodes those attributes into registers on
every request, so a driver always reads the live value. Meters are encoded with the same
register maps the driver decodes with (:mod:`hal.meter_maps`).

Fault knobs on every emulator: ``offline`` (the device stays silent, the client times out, as
on a real RS-485 bus) and ``exception`` (the device answers with Modbus exception 4).

:func:`serve_bus` puts several devices on one server, i.e. one RS-485 line:

- ``"rtu-tcp"``: RTU frames over TCP; clients use ``socket://host:port`` (``client_port``);
- ``"tcp"``: Modbus TCP (MBAP); clients use ``host``/``port``;
- ``"pty"``: RTU on a pseudo-terminal pair; clients open the tty path ``client_port``.

A request for a device id nobody emulates goes unanswered, like on a real bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tty
from collections.abc import Sequence
from typing import Literal, Protocol

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from hal.meter_maps import Register, RegisterMap, register_map
from hal.modbus_bus import ModbusBus

logger = logging.getLogger(__name__)

Transport = Literal["rtu-tcp", "tcp", "pty"]
_READS = {3, 4}


class ModbusDeviceEmulator(Protocol):
    """What :func:`serve_bus` needs from an emulator."""

    device_id: int

    def sim_device(self) -> SimDevice: ...


class _FaultKnobs:
    offline: bool = False
    exception: bool = False

    def _fault(self) -> ExcCodes | None:
        if self.offline:
            # With ignore_missing_devices the server sends nothing: the client times out.
            raise NoSuchIdException("emulated device is offline")
        return ExcCodes.DEVICE_FAILURE if self.exception else None


class MeterEmulator(_FaultKnobs):
    """An energy meter of the model ``register_map_name`` (see hal.meter_maps.REGISTER_MAPS)."""

    def __init__(self, register_map_name: str = "sdm630", device_id: int = 2) -> None:
        self.register_map: RegisterMap = register_map(register_map_name)
        self.device_id = device_id
        self.energy_kwh = 0.0
        self.power_w = 0.0
        self.voltage_v: tuple[float, float, float] = (230.0, 230.0, 230.0)
        self.current_a: tuple[float, float, float] = (0.0, 0.0, 0.0)
        self.frequency_hz = 50.0
        self.offline = False
        self.exception = False
        self.requests = 0

    @property
    def register_energy_wh(self) -> float:
        """The import energy as the register holds it (float32 or scaled integer), in Wh:
        what the agent reads, and what a person would read off the meter's display."""
        energy = self.register_map.energy
        decoded = energy.decode(energy.encode(self.energy_kwh * 1000.0))
        return float(decoded) if decoded is not None else 0.0

    def registers(self) -> dict[int, int]:
        """The register image of the current attribute values, address -> word."""
        m = self.register_map
        values: list[tuple[Register | None, float]] = [
            (m.energy, self.energy_kwh * 1000.0),
            (m.power, self.power_w),
            (m.frequency, self.frequency_hz),
        ]
        for phases, readings in ((m.voltage, self.voltage_v), (m.current, self.current_a)):
            if phases is not None:
                values.extend(zip(phases, readings, strict=True))
        image: dict[int, int] = {}
        for reg, value in values:
            if reg is not None:
                for offset, word in enumerate(reg.encode(value)):
                    image[reg.address + offset] = word
        return image

    def sim_device(self) -> SimDevice:
        blocks = [
            SimData(address, count=count, datatype=DataType.REGISTERS)
            for address, count in self.register_map.blocks()
        ]
        return SimDevice(self.device_id, simdata=blocks, action=self._action)

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        self.requests += 1
        if fault := self._fault():
            return fault
        if set_values is not None or function_code != self.register_map.function_code:
            return ExcCodes.ILLEGAL_ADDRESS
        for reg_address, word in self.registers().items():
            registers[reg_address - start_address] = word
        return None


class EvseBoardEmulator(_FaultKnobs):
    """The openWB EVSE DIN/WB board (hardware.md §1.5a).

    The world sets ``vehicle_state`` (1 A, 2 B, 3 C, 4 D, 5 failure); the agent writes
    ``configured_current`` through register 1000, and the world reads it here.
    """

    FIRMWARE = 18
    _WRITABLE = frozenset({1000, 1004, *range(2000, 2008)})

    def __init__(self, device_id: int = 1) -> None:
        self.device_id = device_id
        self.vehicle_state = 1
        self.configured_current = 0
        self.pp_limit_a = 32
        self.offline = False
        self.exception = False
        self.writes: list[tuple[int, list[int]]] = []

    def registers(self) -> dict[int, int]:
        """Registers 1000-1007 from the attributes (the 2000s hold whatever was written)."""
        pwm = self.configured_current >= 6
        return {
            1000: self.configured_current,
            1001: self.configured_current if pwm else 0,
            1002: self.vehicle_state,
            1003: self.pp_limit_a,
            1005: self.FIRMWARE,
            1006: 2 if pwm else 1,
            1007: 0,
        }

    def sim_device(self) -> SimDevice:
        return SimDevice(
            self.device_id,
            simdata=[
                SimData(1000, count=8, datatype=DataType.REGISTERS),
                SimData(2000, values=[0, 1, 6, 0, 0, 0, 0, 0], datatype=DataType.REGISTERS),
            ],
            action=self._action,
        )

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if fault := self._fault():
            return fault
        if function_code == 4:
            return ExcCodes.ILLEGAL_ADDRESS
        if set_values is not None:
            return self._write(address, [int(v) for v in set_values])
        for reg_address, word in self.registers().items():
            registers[reg_address - start_address] = word
        return None

    def _write(self, address: int, values: list[int]) -> ExcCodes | None:
        if any(a not in self._WRITABLE for a in range(address, address + len(values))):
            return ExcCodes.ILLEGAL_ADDRESS
        self.writes.append((address, values))
        if address == 1000:
            self.configured_current = values[0]
        return None


class BusServer:
    """A running emulated bus. ``client_port`` is the serial port/URL for RTU clients."""

    def __init__(
        self,
        transport: Transport,
        server: ModbusTcpServer | ModbusSerialServer,
        *,
        host: str | None = None,
        port: int | None = None,
        client_port: str | None = None,
        bridge: _PtyBridge | None = None,
    ) -> None:
        self.transport = transport
        self.host = host
        self.port = port
        self.client_port = client_port
        self._server = server
        self._bridge = bridge

    def client_bus(self, timeout: float = 0.2, retries: int = 0) -> ModbusBus:
        """A new :class:`hal.modbus_bus.ModbusBus` connected the way a driver would be."""
        if self.transport == "tcp":
            assert self.host is not None and self.port is not None
            return ModbusBus.tcp(self.host, self.port, timeout=timeout, retries=retries)
        assert self.client_port is not None
        return ModbusBus.rtu(self.client_port, timeout=timeout, retries=retries)

    async def close(self) -> None:
        """Stop serving and release sockets/ptys. Idempotent."""
        await self._server.shutdown()  # type: ignore[no-untyped-call]
        if self._bridge is not None:
            self._bridge.close()
            self._bridge = None


class _PtyBridge:
    """Two pty pairs whose master sides are joined: a pure-Python ``socat pty pty``."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._fds: list[int] = []
        (m1, s1), (m2, s2) = os.openpty(), os.openpty()
        self._fds = [m1, s1, m2, s2]
        for fd in (s1, s2):
            tty.setraw(fd)  # ETX (0x03) etc. must pass untouched; we keep the slaves open
        for fd in (m1, m2):
            os.set_blocking(fd, False)
        self.server_tty, self.client_tty = os.ttyname(s1), os.ttyname(s2)
        self._loop.add_reader(m1, self._pump, m1, m2)
        self._loop.add_reader(m2, self._pump, m2, m1)

    def _pump(self, src: int, dst: int) -> None:
        try:
            data = os.read(src, 4096)
            os.write(dst, data)
        except OSError as exc:
            logger.debug("pty bridge: %s", exc)

    def close(self) -> None:
        for fd in self._fds[0::2]:
            self._loop.remove_reader(fd)
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = []


async def _silent(*_args: object) -> ExcCodes | None:
    raise NoSuchIdException("no such device on this bus")


async def serve_bus(
    devices: Sequence[ModbusDeviceEmulator],
    *,
    transport: Transport,
    address: tuple[str, int] = ("127.0.0.1", 0),
    baudrate: int = 9600,
) -> BusServer:
    """Serve ``devices`` on one emulated line; port 0 in ``address`` picks a free port."""
    sims = [d.sim_device() for d in devices]
    # Device id 0 catches every other id and stays silent, like an empty bus address. Its
    # registers span the whole address space: the simulator only calls actions for valid ones.
    whole = SimData(0, count=0x10000, datatype=DataType.REGISTERS)
    sims.append(SimDevice(0, simdata=[whole], action=_silent))
    if transport == "pty":
        bridge = _PtyBridge()
        serial_server = ModbusSerialServer(
            sims,
            framer=FramerType.RTU,
            port=bridge.server_tty,
            baudrate=baudrate,
            ignore_missing_devices=True,
        )
        await serial_server.serve_forever(background=True)
        return BusServer(transport, serial_server, client_port=bridge.client_tty, bridge=bridge)
    framer = FramerType.RTU if transport == "rtu-tcp" else FramerType.SOCKET
    if transport not in ("rtu-tcp", "tcp"):
        raise ValueError(f"unknown transport {transport!r}")
    tcp_server = ModbusTcpServer(sims, framer=framer, address=address, ignore_missing_devices=True)
    await tcp_server.serve_forever(background=True)
    host, port = tcp_server.transport.sockets[0].getsockname()[:2]  # type: ignore[attr-defined]
    url = f"socket://{host}:{port}" if transport == "rtu-tcp" else None
    return BusServer(transport, tcp_server, host=host, port=port, client_port=url)
