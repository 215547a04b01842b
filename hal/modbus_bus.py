"""One Modbus line (RS-485 RTU, RTU over a socket, or Modbus TCP) and its single owner.

Every device on a line (meter, EVSE board, ...) talks through the same :class:`ModbusBus`, which
serializes requests with a lock: a driver's polling thread calls the sync methods, asyncio code
awaits the ``a``-prefixed twins (run in a worker thread). This module is the only one that
touches pymodbus clients.

Errors: a timeout, a Modbus exception response, a broken or refused connection all raise the
:class:`hal.errors.DeviceError` subclass the caller passes as ``error`` (default DeviceError).
After a transport failure the connection is dropped and reopened by the next request, so a
reader unplugged and plugged back, or a restarted TCP gateway, recovers without intervention.

pymodbus facts this relies on (hardware.md §5, §10): ``device_id=`` (not ``slave=``); no answer
raises ModbusIOException after (retries + 1) x timeout; exception responses are *returned*
(``isError()``); the serial client's default baud rate is 19200, so it is always set here.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence

from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.client.base import ModbusBaseSyncClient
from pymodbus.exceptions import ModbusException
from pymodbus.framer import FramerType
from pymodbus.pdu import ModbusPDU

from hal.errors import ConfigurationError, DeviceError

logger = logging.getLogger(__name__)

ErrorClass = type[DeviceError]
_SOCKET_URL = "socket://"
_Request = Callable[[ModbusBaseSyncClient], ModbusPDU]


class ModbusBus:
    """The single owner of one Modbus line. Thread-safe; every request is serialized.

    Build it with :meth:`rtu` or :meth:`tcp`. Drivers never close a shared bus; the
    composition root does, with :meth:`close`, after every driver on it has stopped.
    """

    def __init__(self, client: ModbusBaseSyncClient, name: str) -> None:
        self._client = client
        self._name = name
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def rtu(
        cls,
        port: str,
        baudrate: int = 9600,
        parity: str = "N",
        stopbits: int = 1,
        timeout: float = 0.5,
        retries: int = 1,
        bytesize: int = 8,
    ) -> ModbusBus:
        """RTU over a serial device or pty path, or RTU frames over TCP with ``socket://host:port``.

        ``timeout`` bounds one whole response: at 9600 Bd a 100-register answer takes 0.22 s.
        """
        if parity not in ("N", "E", "O"):
            raise ConfigurationError(f"parity must be N, E or O, not {parity!r}")
        _check_timing(timeout, retries)
        if port.startswith(_SOCKET_URL):
            # pyserial's socket:// reports in_waiting as 0/1, so pymodbus' serial client would
            # read one byte per poll interval; its TCP client with the RTU framer reads blocks.
            host, tcp_port = _parse_socket_url(port)
            tcp = ModbusTcpClient(
                host, port=tcp_port, framer=FramerType.RTU, timeout=timeout, retries=retries
            )
            return cls(tcp, f"rtu:{port}")
        client = ModbusSerialClient(
            port,
            framer=FramerType.RTU,
            baudrate=baudrate,
            bytesize=bytesize,
            parity=parity,
            stopbits=stopbits,
            timeout=timeout,
            retries=retries,
        )
        return cls(client, f"rtu:{port}")

    @classmethod
    def tcp(cls, host: str, port: int = 502, timeout: float = 0.5, retries: int = 1) -> ModbusBus:
        """Modbus TCP (MBAP framing) to a device or gateway."""
        _check_timing(timeout, retries)
        client = ModbusTcpClient(host, port=port, timeout=timeout, retries=retries)
        return cls(client, f"tcp:{host}:{port}")

    @property
    def name(self) -> str:
        return self._name

    def read_input_registers(
        self, device_id: int, address: int, count: int, *, error: ErrorClass = DeviceError
    ) -> list[int]:
        """FC04: ``count`` input registers from ``address``; blocks up to (retries+1) x timeout."""
        return self._registers(
            lambda c: c.read_input_registers(address, count=count, device_id=device_id),
            count,
            f"FC04 id={device_id} @{address}",
            error,
        )

    def read_holding_registers(
        self, device_id: int, address: int, count: int, *, error: ErrorClass = DeviceError
    ) -> list[int]:
        """FC03: ``count`` holding registers from ``address``."""
        return self._registers(
            lambda c: c.read_holding_registers(address, count=count, device_id=device_id),
            count,
            f"FC03 id={device_id} @{address}",
            error,
        )

    def write_registers(
        self,
        device_id: int,
        address: int,
        values: Sequence[int],
        *,
        error: ErrorClass = DeviceError,
    ) -> None:
        """FC16: write ``values`` from ``address``; returns once the device acknowledged."""
        regs = list(values)
        self._execute(
            lambda c: c.write_registers(address, regs, device_id=device_id),
            f"FC16 id={device_id} @{address}",
            error,
        )

    async def aread_input_registers(
        self, device_id: int, address: int, count: int, *, error: ErrorClass = DeviceError
    ) -> list[int]:
        return await asyncio.to_thread(
            self.read_input_registers, device_id, address, count, error=error
        )

    async def aread_holding_registers(
        self, device_id: int, address: int, count: int, *, error: ErrorClass = DeviceError
    ) -> list[int]:
        return await asyncio.to_thread(
            self.read_holding_registers, device_id, address, count, error=error
        )

    async def awrite_registers(
        self,
        device_id: int,
        address: int,
        values: Sequence[int],
        *,
        error: ErrorClass = DeviceError,
    ) -> None:
        await asyncio.to_thread(self.write_registers, device_id, address, values, error=error)

    def close(self) -> None:
        """Close the connection; later requests raise. Idempotent."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._client.close()  # type: ignore[no-untyped-call]

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    def _registers(self, call: _Request, count: int, what: str, error: ErrorClass) -> list[int]:
        registers = list(self._execute(call, what, error).registers[:count])
        if len(registers) != count:
            raise error(f"{self._name} {what}: {len(registers)} registers, expected {count}")
        return registers

    def _execute(self, call: _Request, what: str, error: ErrorClass) -> ModbusPDU:
        with self._lock:
            if self._closed:
                raise error(f"{self._name} is closed")
            try:
                response = call(self._client)
            except (ModbusException, OSError) as exc:
                # Drop the link: the next request reconnects and starts from a clean buffer.
                self._client.close()  # type: ignore[no-untyped-call]
                logger.debug("%s %s failed: %s", self._name, what, exc)
                raise error(f"{self._name} {what}: {exc}") from exc
        if response.isError():
            raise error(f"{self._name} {what}: exception response {response}")
        return response


def _parse_socket_url(url: str) -> tuple[str, int]:
    host, sep, port = url[len(_SOCKET_URL) :].rstrip("/").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigurationError(f"expected socket://host:port, not {url!r}")
    return host.strip("[]"), int(port)


def _check_timing(timeout: float, retries: int) -> None:
    if timeout <= 0 or retries < 0:
        raise ConfigurationError(f"need timeout > 0 and retries >= 0, got {timeout}, {retries}")
