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

Register reads on an RTU line (FC03/FC04, the pilot poll and the meter) skip pymodbus'
transaction layer: :class:`_RtuReads` writes the request :mod:`hal.modbus_rtu` built on the
client's own connection and reads the answer's exact length. Same contract (timeout, retries,
errors), a fraction of the CPU, and on a serial port a blocking read instead of pymodbus'
``in_waiting`` polling every 4 character times. Writes and Modbus TCP still go through pymodbus.
"""

from __future__ import annotations

import asyncio
import logging
import select
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.client.base import ModbusBaseSyncClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.framer import FramerType
from pymodbus.pdu import ModbusPDU

from hal import modbus_rtu
from hal.errors import ConfigurationError, DeviceError

logger = logging.getLogger(__name__)

ErrorClass = type[DeviceError]
FailureKind = Literal["no-connection", "no-answer", "refused", "other"]
_SOCKET_URL = "socket://"
_EXCEPTION_RESPONSE = "exception response"
_Request = Callable[[ModbusBaseSyncClient], ModbusPDU]


class ModbusBus:
    """The single owner of one Modbus line. Thread-safe; every request is serialized.

    Build it with :meth:`rtu` or :meth:`tcp`. Drivers never close a shared bus; the
    composition root does, with :meth:`close`, after every driver on it has stopped.
    """

    def __init__(
        self, client: ModbusBaseSyncClient, name: str, *, rtu_reads: _RtuReads | None = None
    ) -> None:
        self._client = client
        self._name = name
        self._rtu_reads = rtu_reads
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
            return cls(tcp, f"rtu:{port}", rtu_reads=_RtuReads(timeout, retries))
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
        return cls(client, f"rtu:{port}", rtu_reads=_RtuReads(timeout, retries))

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
        if self._rtu_reads is not None:
            return self._rtu_read(modbus_rtu.READ_INPUT_REGISTERS, device_id, address, count, error)
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
        if self._rtu_reads is not None:
            return self._rtu_read(
                modbus_rtu.READ_HOLDING_REGISTERS, device_id, address, count, error
            )
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

    def _rtu_read(
        self, function: int, device_id: int, address: int, count: int, error: ErrorClass
    ) -> list[int]:
        assert self._rtu_reads is not None
        try:
            request = modbus_rtu.read_request(device_id, function, address, count)
        except ValueError as exc:
            raise error(f"{self._name}: {exc}") from None
        with self._lock:
            if self._closed:
                raise error(f"{self._name} is closed")
            try:
                return self._rtu_reads.read(self._client, request)
            except modbus_rtu.ExceptionAnswer as exc:
                what = f"FC{function:02d} id={device_id} @{address}"
                raise error(f"{self._name} {what}: {_EXCEPTION_RESPONSE}, {exc}") from None
            except (modbus_rtu.FrameError, ModbusException, OSError) as exc:
                self._client.close()  # type: ignore[no-untyped-call]
                what = f"FC{function:02d} id={device_id} @{address}"
                logger.debug("%s %s failed: %s", self._name, what, exc)
                raise error(f"{self._name} {what}: {exc}") from exc

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
            raise error(f"{self._name} {what}: {_EXCEPTION_RESPONSE} {response}")
        return response


def failure_kind(error: BaseException) -> FailureKind:
    """What went wrong in a request that raised ``error`` (a :class:`ModbusBus` error).

    ``no-connection``: the port or host could not be opened; ``no-answer``: the device stayed
    silent (wiring, baud rate, device id); ``refused``: it answered with a Modbus exception.
    """
    cause = error.__cause__
    if isinstance(cause, ConnectionException):
        return "no-connection"
    if isinstance(cause, ModbusIOException):
        return "no-answer"
    if cause is None and _EXCEPTION_RESPONSE in str(error):
        return "refused"
    return "other"


class _RtuReads:
    """One register read on an RTU line, over the pymodbus client's open connection (a
    pyserial port, or a TCP socket carrying RTU frames). Call with the bus's lock held.

    Like pymodbus: the request is sent up to ``retries + 1`` times while nothing comes back,
    each attempt waiting ``timeout`` for the whole answer. Raises what pymodbus would, so
    :func:`failure_kind` reads both paths alike: ConnectionException when the line cannot be
    opened or breaks, ModbusIOException when no answer came; :class:`modbus_rtu.FrameError`
    for a wrong or partial answer (the caller drops the connection, so the next request
    starts from a clean line), :class:`modbus_rtu.ExceptionAnswer` for an exception response.
    """

    def __init__(self, timeout: float, retries: int) -> None:
        self.timeout = timeout
        self.retries = retries

    def read(self, client: ModbusBaseSyncClient, request: bytes) -> list[int]:
        if not client.connect():
            raise ConnectionException("cannot open the line")
        try:
            return self._transact(client, request)
        except OSError as exc:
            raise ConnectionException(str(exc)) from exc

    def _transact(self, client: ModbusBaseSyncClient, request: bytes) -> list[int]:
        serial_port = isinstance(client, ModbusSerialClient)
        wire: Any = client.socket  # type: ignore[attr-defined]
        send = wire.write if serial_port else wire.sendall
        receive = self._from_serial if serial_port else self._from_socket
        if not serial_port and wire.gettimeout() != 0.0:
            wire.setblocking(False)  # select() below does the waiting
        # Ask for a whole normal answer at once: usually one read; an exception answer is
        # shorter and its length is known from the first HEAD bytes.
        normal = modbus_rtu.HEAD + 2 * int.from_bytes(request[4:6], "big") + 2
        for _ in range(self.retries + 1):
            send(request)
            deadline = time.monotonic() + self.timeout
            answer = receive(wire, b"", modbus_rtu.HEAD, normal, deadline)
            if answer:
                break
        else:
            raise ModbusIOException(f"no answer within {self.timeout} s")
        length = modbus_rtu.answer_length(request, answer[: modbus_rtu.HEAD])
        if len(answer) < length:
            answer = receive(wire, answer, length, length, deadline)
        return modbus_rtu.registers(request, answer)

    @staticmethod
    def _from_serial(port: Any, data: bytes, least: int, most: int, deadline: float) -> bytes:
        """``data`` plus what comes until there are ``least`` bytes (``most`` at most) or the
        deadline passed. pyserial's read() waits up to the port's timeout and returns early
        after a gap between bytes (pymodbus sets inter_byte_timeout), hence the loop."""
        while len(data) < least:
            chunk: bytes = port.read(most - len(data))
            data += chunk
            if not chunk or time.monotonic() >= deadline:
                break
        return data

    @staticmethod
    def _from_socket(sock: Any, data: bytes, least: int, most: int, deadline: float) -> bytes:
        """As :meth:`_from_serial`, on a non-blocking socket."""
        while len(data) < least:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([sock], [], [], left)[0]:
                break
            chunk: bytes = sock.recv(most - len(data))
            if not chunk:
                raise ConnectionError("closed by the other end")
            data += chunk
        return data


def _parse_socket_url(url: str) -> tuple[str, int]:
    host, sep, port = url[len(_SOCKET_URL) :].rstrip("/").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigurationError(f"expected socket://host:port, not {url!r}")
    return host.strip("[]"), int(port)


def _check_timing(timeout: float, retries: int) -> None:
    if timeout <= 0 or retries < 0:
        raise ConfigurationError(f"need timeout > 0 and retries >= 0, got {timeout}, {retries}")
