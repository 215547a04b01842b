"""RDM6300 (125 kHz EM4100) serial frames: a sans-I/O incremental parser and an encoder.

Frame (hardware.md §3.1), 14 bytes::

    0x02 | 10 ASCII hex: version byte + 32-bit card id | 2 ASCII hex: XOR of the 5 bytes | 0x03

The parser takes whatever bytes the UART delivers, in chunks split anywhere, and returns the
card ids of the valid frames it completes. Garbage, bad checksums, non-hex characters and
frames missing their STX or ETX are skipped; the parser resynchronizes on the next STX, so a
valid frame is never lost to the bytes around it. It does not debounce: the module repeats
the frame while a card is in the field and the reader decides what a presentation is.
"""

from __future__ import annotations

from functools import reduce
from typing import Literal

from hal.errors import ConfigurationError

STX = 0x02
ETX = 0x03
FRAME_LEN = 14
_HEX = frozenset(b"0123456789ABCDEFabcdef")

IdFormat = Literal["hex", "hex10", "decimal"]
ID_FORMATS: tuple[IdFormat, ...] = ("hex", "hex10", "decimal")


def encode_frame(version: int, card_id: int) -> bytes:
    """The 14-byte frame the module sends for a card (uppercase hex, as the module does)."""
    if not 0 <= version <= 0xFF or not 0 <= card_id <= 0xFFFF_FFFF:
        raise ValueError(f"version must fit 8 bits and card id 32 bits: {version}, {card_id}")
    data = bytes([version]) + card_id.to_bytes(4, "big")
    checksum = reduce(lambda a, b: a ^ b, data)
    return bytes([STX]) + f"{data.hex().upper()}{checksum:02X}".encode("ascii") + bytes([ETX])


def decode_frame(frame: bytes) -> tuple[int, int] | None:
    """``(version, card_id)`` of one complete 14-byte frame, or None if it is not valid."""
    if len(frame) != FRAME_LEN or frame[0] != STX or frame[-1] != ETX:
        return None
    body = frame[1:-1]
    if not all(b in _HEX for b in body):
        return None
    data = bytes.fromhex(body[:10].decode("ascii"))
    if reduce(lambda a, b: a ^ b, data) != int(body[10:], 16):
        return None
    return data[0], int.from_bytes(data[1:], "big")


def format_card_id(version: int, card_id: int, id_format: IdFormat) -> str:
    """The idTag text for a card: 8 hex chars, all 10 hex chars, or the 10-digit decimal."""
    if id_format == "hex":
        return f"{card_id:08X}"
    if id_format == "hex10":
        return f"{version:02X}{card_id:08X}"
    return f"{card_id:010d}"


class Rdm6300Parser:
    """Incremental frame parser; keeps at most one partial frame between calls."""

    def __init__(self, id_format: IdFormat = "hex") -> None:
        if id_format not in ID_FORMATS:
            raise ConfigurationError(f"id_format must be one of {ID_FORMATS}, not {id_format!r}")
        self._format: IdFormat = id_format
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[str]:
        """Consume ``data``; return the ids of the frames completed by it, in order."""
        self._buffer += data
        ids: list[str] = []
        while (start := self._buffer.find(STX)) >= 0:
            del self._buffer[:start]
            if not self._plausible_prefix():
                del self._buffer[:1]  # not a frame after all: resync on the next STX
                continue
            if len(self._buffer) < FRAME_LEN:
                return ids  # wait for the rest
            decoded = decode_frame(bytes(self._buffer[:FRAME_LEN]))
            if decoded is None:
                del self._buffer[:1]
                continue
            del self._buffer[:FRAME_LEN]
            ids.append(format_card_id(*decoded, self._format))
        self._buffer.clear()  # no STX anywhere: nothing worth keeping
        return ids

    def reset(self) -> None:
        """Forget a partial frame (after the port was reopened)."""
        self._buffer.clear()

    def _plausible_prefix(self) -> bool:
        """True while the bytes after STX can still become a frame (hex digits, then ETX)."""
        body = self._buffer[1 : FRAME_LEN - 1]
        if not all(b in _HEX for b in body):
            return False
        return len(self._buffer) < FRAME_LEN or self._buffer[FRAME_LEN - 1] == ETX
