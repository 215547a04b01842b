"""Modbus RTU framing of register reads (FC03, FC04): the request's bytes, the answer's checks.

No I/O and no pymodbus: :class:`hal.modbus_bus.ModbusBus` sends what :func:`read_request`
builds and hands what comes back to :func:`answer_length` and :func:`registers`. It exists
because a pilot poll is one such read every few tens of milliseconds, and going through
pymodbus' transaction layer costs several times the CPU of the read itself (docs/performance.md).

Frames (Modbus over serial line V1.02, §2.5; application protocol V1.1b3, §6.3-6.4), CRC low
byte first::

    request    id | fc | address hi lo | count hi lo | crc lo hi          8 bytes
    answer     id | fc | byte count = 2 x count | registers (hi lo) ... | crc lo hi
    exception  id | fc + 0x80 | exception code | crc lo hi               5 bytes
"""

from __future__ import annotations

import functools
import struct

READ_HOLDING_REGISTERS = 0x03
READ_INPUT_REGISTERS = 0x04
HEAD = 3  # id, function code, byte count (or exception code): enough to know the length
MAX_READ_COUNT = 125  # §6.3: 1..125 registers per read


class FrameError(ValueError):
    """The bytes read are not the answer to the request: wrong device, function, length or
    CRC. The line is out of step; the caller should drop and reopen it."""


class ExceptionAnswer(Exception):
    """The device answered with a Modbus exception (the line itself is fine)."""

    def __init__(self, code: int) -> None:
        super().__init__(f"exception code {code}")
        self.code = code


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16(data: bytes) -> int:
    """The Modbus CRC-16 (polynomial 0xA001 reflected, initial 0xFFFF) of ``data``."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc


@functools.lru_cache(maxsize=256)
def read_request(device_id: int, function: int, address: int, count: int) -> bytes:
    """The 8-byte request; cached, since a poll sends the same bytes every time."""
    if function not in (READ_HOLDING_REGISTERS, READ_INPUT_REGISTERS):
        raise ValueError(f"not a register read: function {function}")
    if not 1 <= count <= MAX_READ_COUNT or not 0 <= address <= 0xFFFF:
        raise ValueError(f"cannot read {count} registers from {address}")
    body = struct.pack(">BBHH", device_id, function, address, count)
    return body + struct.pack("<H", crc16(body))


def answer_length(request: bytes, head: bytes) -> int:
    """The whole answer's length in bytes, from its first :data:`HEAD` bytes."""
    if len(head) < HEAD or head[0] != request[0]:
        raise FrameError(f"answer starts {head.hex()}, not from device {request[0]}")
    if head[1] == request[1] | 0x80:
        return HEAD + 2
    expected = 2 * int.from_bytes(request[4:6], "big")
    if head[1] != request[1] or head[2] != expected:
        raise FrameError(f"answer starts {head.hex()}, expected function {request[1]} "
                         f"with {expected} bytes")
    return HEAD + expected + 2


def registers(request: bytes, answer: bytes) -> list[int]:
    """The register values of a complete ``answer`` to ``request``.

    Raises :class:`FrameError` for a frame that does not fit the request or fails its CRC,
    :class:`ExceptionAnswer` for a well-formed exception response.
    """
    length = answer_length(request, answer[:HEAD])
    if len(answer) != length:
        raise FrameError(f"answer of {len(answer)} bytes, expected {length}")
    if crc16(answer[:-2]) != int.from_bytes(answer[-2:], "little"):
        raise FrameError(f"CRC error in {answer.hex()}")
    if answer[1] & 0x80:
        raise ExceptionAnswer(answer[2])
    data = answer[HEAD:-2]
    return list(struct.unpack(f">{len(data) // 2}H", data))
