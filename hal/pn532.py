"""PN532 NFC frames over HSU (UART): a sans-I/O encoder and incremental parser, and the
payloads the reader uses (hardware.md §3.2, PN532 user manual §6.2).

Frames::

    normal    00 00 FF LEN LCS TFI PD0..PDn DCS 00      LEN = 1 + n + 1 (TFI and data)
    extended  00 00 FF FF FF LENM LENL LCS TFI ... DCS 00
    ACK       00 00 FF 00 FF 00
    NACK      00 00 FF FF 00 00
    error     00 00 FF 01 FF 7F 81 00                   application-level error

LCS makes ``LEN + LCS`` zero mod 256, DCS makes ``TFI + data + DCS`` zero mod 256. TFI is D4
from the host, D5 from the PN532, whose response code is the command code + 1.

The parser takes bytes in chunks split anywhere, returns the frames they complete, and skips
anything else (wake-up bytes, postambles, noise, frames with a bad checksum), resynchronizing
on the next start code. It never raises on input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hal.errors import ConfigurationError

START = b"\x00\xff"
ACK = b"\x00\x00\xff\x00\xff\x00"
NACK = b"\x00\x00\xff\xff\x00\x00"
ERROR_FRAME = b"\x00\x00\xff\x01\xff\x7f\x81\x00"
# HSU wake-up: 0x55 0x55 then zeros for the oscillator to start (the Adafruit driver's run).
WAKEUP = b"\x55\x55" + b"\x00" * 15

TFI_HOST = 0xD4
TFI_PN532 = 0xD5
TFI_ERROR = 0x7F

GET_FIRMWARE_VERSION = 0x02
SAM_CONFIGURATION = 0x14
RF_CONFIGURATION = 0x32
IN_LIST_PASSIVE_TARGET = 0x4A

IC_PN532 = 0x32
BAUD_106_TYPE_A = 0x00
MAX_NORMAL_LEN = 255
MAX_UID_BYTES = 10  # ISO 14443-3 triple-size UID: 20 hex chars, the OCPP 1.6 idTag limit

ByteOrder = Literal["as-read", "reversed"]
BYTE_ORDERS: tuple[ByteOrder, ...] = ("as-read", "reversed")


@dataclass(frozen=True)
class Ack:
    """The PN532 (or the host) acknowledged the last frame."""


@dataclass(frozen=True)
class Nack:
    """The last frame must be sent again."""


@dataclass(frozen=True)
class ErrorFrame:
    """The PN532 found a syntax error in the last command."""


@dataclass(frozen=True)
class DataFrame:
    """An information frame: ``tfi`` (D4 host, D5 PN532) and the bytes after it."""

    tfi: int
    payload: bytes

    @property
    def code(self) -> int | None:
        """The command / response code, the first payload byte."""
        return self.payload[0] if self.payload else None


Frame = Ack | Nack | ErrorFrame | DataFrame


def _checksum(data: bytes) -> int:
    return -sum(data) & 0xFF


def encode_frame(tfi: int, data: bytes) -> bytes:
    """One information frame carrying ``tfi`` and ``data``; extended when over 254 bytes."""
    body = bytes([tfi]) + data
    length = len(body)
    if length <= MAX_NORMAL_LEN - 1:
        header = bytes([length, _checksum(bytes([length]))])
    elif length <= 0xFFFF:
        size = length.to_bytes(2, "big")
        header = b"\xff\xff" + size + bytes([_checksum(size)])
    else:
        raise ValueError(f"a PN532 frame carries at most 65535 bytes, not {length}")
    return b"\x00" + START + header + body + bytes([_checksum(body), 0x00])


def command_frame(command: int, params: bytes = b"") -> bytes:
    """A host -> PN532 command frame."""
    return encode_frame(TFI_HOST, bytes([command]) + params)


def response_frame(command: int, params: bytes = b"") -> bytes:
    """The PN532 -> host response frame to ``command`` (code ``command + 1``)."""
    return encode_frame(TFI_PN532, bytes([command + 1]) + params)


class Pn532Parser:
    """Incremental frame parser; keeps at most one partial frame between calls."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        """Consume ``data``; return the frames completed by it, in order."""
        self._buffer += data
        frames: list[Frame] = []
        while True:
            start = self._buffer.find(START)
            if start < 0:
                # Keep a trailing 0x00: it may be the first half of the next start code.
                del self._buffer[: max(0, len(self._buffer) - 1)]
                if self._buffer[:1] != b"\x00":
                    self._buffer.clear()
                return frames
            del self._buffer[:start]
            result = self._take_frame()
            if result is None:
                return frames  # wait for more bytes
            if isinstance(result, bool):
                del self._buffer[:1]  # not a frame after all: resync after this start code
                continue
            frames.append(result)

    def reset(self) -> None:
        """Forget a partial frame (after a timeout or a reopened port)."""
        self._buffer.clear()

    def _take_frame(self) -> Frame | bool | None:
        """The frame at the buffer's start code; None = incomplete, False = not a frame."""
        buf = self._buffer
        if len(buf) < 4:
            return None
        length, lcs = buf[2], buf[3]
        if (length, lcs) == (0x00, 0xFF):
            del buf[:4]
            return Ack()
        if (length, lcs) == (0xFF, 0x00):
            del buf[:4]
            return Nack()
        if (length, lcs) == (0xFF, 0xFF):
            return self._take_body(header=7, size_at=4)
        if (length + lcs) & 0xFF or length == 0:
            return False
        return self._take_body(header=4, size_at=None)

    def _take_body(self, *, header: int, size_at: int | None) -> Frame | bool | None:
        buf = self._buffer
        if size_at is not None:
            if len(buf) < header:
                return None
            size_bytes = bytes(buf[size_at : size_at + 2])
            if (sum(size_bytes) + buf[size_at + 2]) & 0xFF:
                return False
            length = int.from_bytes(size_bytes, "big")
            if length == 0:
                return False
        else:
            length = buf[2]
        if len(buf) < header + length + 1:
            return None
        body = bytes(buf[header : header + length])
        if (sum(body) + buf[header + length]) & 0xFF:
            return False
        del buf[: header + length + 1]
        if body == bytes([TFI_ERROR]):
            return ErrorFrame()
        return DataFrame(body[0], body[1:])


# -- payloads ----------------------------------------------------------------------------------


def sam_configuration_params(timeout_50ms: int = 0x14) -> bytes:
    """SAMConfiguration: normal mode (no SAM), ``timeout`` x 50 ms, IRQ pin used."""
    return bytes([0x01, timeout_50ms, 0x01])


def max_retries_params(passive_activation: int) -> bytes:
    """RFConfiguration item 5 (MaxRetries): ATR 0xFF, PSL 0x01, passive activation as given.

    A small ``passive_activation`` count makes InListPassiveTarget answer "no target"
    instead of waiting for a card forever (0xFF).
    """
    if not 0 <= passive_activation <= 0xFF:
        raise ValueError(f"retries must fit a byte, not {passive_activation}")
    return bytes([0x05, 0xFF, 0x01, passive_activation])


def in_list_passive_target_params() -> bytes:
    """One target, 106 kbps type A (ISO 14443-A / MIFARE)."""
    return bytes([0x01, BAUD_106_TYPE_A])


@dataclass(frozen=True)
class FirmwareVersion:
    ic: int
    version: int
    revision: int
    support: int

    def __str__(self) -> str:
        return f"PN5{self.ic:02X} v{self.version}.{self.revision}"


def parse_firmware_version(params: bytes) -> FirmwareVersion:
    """The GetFirmwareVersion response parameters (after the response code)."""
    if len(params) != 4:
        raise ValueError(f"firmware version needs 4 bytes, got {params.hex()}")
    return FirmwareVersion(*params)


def target_response(uid: bytes | None) -> bytes:
    """InListPassiveTarget response parameters for one type A target with ``uid``, or none."""
    if uid is None:
        return b"\x00"
    if not 1 <= len(uid) <= MAX_UID_BYTES:
        raise ValueError(f"a type A UID has 4, 7 or 10 bytes, not {len(uid)}")
    sens_res = b"\x00\x44" if len(uid) > 4 else b"\x00\x04"  # UID size bits
    sel_res = 0x00 if len(uid) > 4 else 0x08  # Ultralight-like / MIFARE Classic 1K-like
    return bytes([0x01, 0x01]) + sens_res + bytes([sel_res, len(uid)]) + uid


def parse_passive_target(params: bytes) -> bytes | None:
    """The UID of the first target in an InListPassiveTarget (106 kbps type A) response, or
    None when no target answered. Raises ValueError for a malformed response."""
    if not params:
        raise ValueError("empty InListPassiveTarget response")
    count = params[0]
    if count == 0:
        return None
    # NbTg | Tg | SENS_RES (2) | SEL_RES | NFCIDLength | NFCID1 ... [ATS]
    if count > 2 or len(params) < 6:
        raise ValueError(f"malformed InListPassiveTarget response {params.hex()}")
    uid_len = params[5]
    uid = params[6 : 6 + uid_len]
    if not 1 <= uid_len <= MAX_UID_BYTES or len(uid) != uid_len:
        raise ValueError(f"bad UID length in {params.hex()}")
    return uid


def format_uid(uid: bytes, byte_order: ByteOrder = "as-read") -> str:
    """The idTag for ``uid``: uppercase hex, no separators, in the order configured."""
    if byte_order not in BYTE_ORDERS:
        raise ConfigurationError(f"byte_order must be one of {BYTE_ORDERS}, not {byte_order!r}")
    ordered = uid if byte_order == "as-read" else uid[::-1]
    return ordered.hex().upper()
