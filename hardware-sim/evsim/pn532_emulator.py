"""A PN532 NFC reader in HSU (UART) mode on a pseudo-terminal.

The reader driver opens :attr:`Pn532Emulator.port`, a stable symlink to the slave side of a raw
pty; a thread answers on the master side like the chip (hardware.md §3.2):

- asleep after power-up: everything is ignored until a wake-up byte (0x55) arrives;
- every host command frame is acknowledged (ACK), then answered: GetFirmwareVersion (PN532
  v1.6), SAMConfiguration, RFConfiguration, InListPassiveTarget (the presented card's UID, or
  no target); InListPassiveTarget before SAMConfiguration and unknown commands get the error
  frame;
- a card is in the field for ``hold_s`` seconds after :meth:`present` (or until
  :meth:`remove`) and is reported on every poll meanwhile, as a real card held still.

Fault knobs: :meth:`unplug` removes the pty (the driver's port fails, as with a USB adapter
pulled out) and :meth:`replug` brings a new, sleeping chip back behind the same path;
``silent = True`` keeps the port but the chip answers nothing (hung or unpowered module).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import shutil
import tempfile
import threading
import time
import tty

from hal.pn532 import (
    ACK,
    ERROR_FRAME,
    GET_FIRMWARE_VERSION,
    IN_LIST_PASSIVE_TARGET,
    RF_CONFIGURATION,
    SAM_CONFIGURATION,
    TFI_HOST,
    DataFrame,
    Pn532Parser,
    response_frame,
    target_response,
)

logger = logging.getLogger(__name__)

FIRMWARE = bytes([0x32, 0x01, 0x06, 0x07])  # IC PN532, version 1.6, support ISO 14443 A/B + 18092
WAKEUP_BYTE = 0x55


class Pn532Emulator:
    """One emulated module; :attr:`port` is the path the driver opens."""

    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="evsim-pn532-")
        self.port = os.path.join(self._dir, "ttyPN532")
        self.silent = False
        self.commands: list[int] = []  # command codes answered, oldest first
        self._lock = threading.Lock()
        self._card: bytes | None = None
        self._card_until: float | None = None
        self._master: int | None = None
        self._slave: int | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.replug()

    @property
    def plugged(self) -> bool:
        return self._master is not None

    # -- cards --------------------------------------------------------------------------------

    def present(self, card_id: int, hold_s: float = 1.0) -> None:
        """Hold a card with the 4-byte UID ``card_id`` (big-endian) in the field."""
        self.present_uid(card_id.to_bytes(4, "big"), hold_s)

    def present_uid(self, uid: bytes, hold_s: float | None = 1.0) -> None:
        """Hold a card with ``uid`` (4, 7 or 10 bytes) in the field; None = until removed."""
        target_response(uid)  # validates the length
        if self._master is None:
            raise RuntimeError("the emulated PN532 is unplugged")
        with self._lock:
            self._card = bytes(uid)
            self._card_until = None if hold_s is None else time.monotonic() + hold_s

    def remove(self) -> None:
        """Take the card out of the field."""
        with self._lock:
            self._card = self._card_until = None

    def card_in_field(self) -> bytes | None:
        with self._lock:
            if self._card_until is not None and time.monotonic() >= self._card_until:
                self._card = self._card_until = None
            return self._card

    # -- plugging -----------------------------------------------------------------------------

    def unplug(self) -> None:
        """Remove the device: the driver's port fails and the path disappears."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.port)
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None

    def replug(self) -> None:
        """Plug a new, sleeping chip in behind the same :attr:`port`. No-op when plugged."""
        if self._master is not None:
            return
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, args=(master, self._stop), name="evsim-pn532", daemon=True
        )
        self._thread.start()
        link = self.port + ".new"
        os.symlink(os.ttyname(slave), link)
        os.replace(link, self.port)

    def close(self) -> None:
        """Unplug and remove the temporary directory. Idempotent."""
        self.unplug()
        shutil.rmtree(self._dir, ignore_errors=True)

    # -- the chip -----------------------------------------------------------------------------

    def _serve(self, master: int, stop: threading.Event) -> None:
        chip = _Chip(self)
        while not stop.is_set():
            ready, _, _ = select.select([master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(master, 4096)
            except BlockingIOError:
                continue
            except OSError:  # nobody has the slave open (EIO): wait for the driver
                stop.wait(0.02)
                continue
            answer = chip.receive(data)
            if answer:
                _write_all(master, answer)


class _Chip:
    """The protocol state of one power cycle: asleep, awake, SAM configured."""

    def __init__(self, emulator: Pn532Emulator) -> None:
        self._emulator = emulator
        self._parser = Pn532Parser()
        self._awake = False
        self._sam_configured = False

    def receive(self, data: bytes) -> bytes:
        if self._emulator.silent:
            return b""
        if not self._awake:
            wake = data.find(WAKEUP_BYTE)
            if wake < 0:
                return b""
            self._awake = True
            data = data[wake:]
        out = bytearray()
        for frame in self._parser.feed(data):
            if isinstance(frame, DataFrame) and frame.tfi == TFI_HOST and frame.code is not None:
                out += ACK + self._answer(frame.code, frame.payload[1:])
        return bytes(out)

    def _answer(self, command: int, params: bytes) -> bytes:
        self._emulator.commands.append(command)
        if command == GET_FIRMWARE_VERSION:
            return response_frame(command, FIRMWARE)
        if command == SAM_CONFIGURATION:
            self._sam_configured = True
            return response_frame(command)
        if command == RF_CONFIGURATION:
            return response_frame(command)
        if command == IN_LIST_PASSIVE_TARGET and self._sam_configured:
            return response_frame(command, target_response(self._emulator.card_in_field()))
        logger.debug("PN532 emulator: error frame for command 0x%02X", command)
        return ERROR_FRAME


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    deadline = time.monotonic() + 1.0
    while view and time.monotonic() < deadline:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            time.sleep(0.001)
        except OSError:
            return
