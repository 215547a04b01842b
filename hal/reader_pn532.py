"""PN532 13.56 MHz NFC reader over HSU/UART (role: TokenReader).

A daemon thread wakes the chip (0x55 preamble), configures it (SAMConfiguration normal mode,
MaxRetries so a poll without a card returns at once), checks it is a PN532
(GetFirmwareVersion), then polls InListPassiveTarget every ``poll_interval`` seconds. A card
held in the field answers every poll; the same UID seen again within ``repeat_window`` seconds
of its last sighting is the same presentation, so each presentation is reported once.

Failure: a serial error (adapter unplugged), or ``failure_threshold`` commands in a row without
an answer (module hung or unpowered), is logged and reported through ``on_failure(exc)``; the
port is reopened and the chip woken again every ``reopen_interval`` seconds until it answers,
then ``on_failure(None)``. The agent never restarts for it. Frames: :mod:`hal.pn532`.
"""

from __future__ import annotations

import asyncio
import logging
import termios
import threading
import time
from collections.abc import Callable
from typing import Any

import serial

from hal import pn532
from hal.callbacks import RepeatFilter, call_safely
from hal.errors import ConfigurationError, ReaderError
from hal.roles import TokenCallback

logger = logging.getLogger(__name__)

FailureCallback = Callable[[BaseException | None], None]
# pyserial lets termios.error (not an OSError) through from flushes of a vanished pty/adapter.
PORT_ERRORS = (serial.SerialException, OSError, termios.error)
READ_TIMEOUT = 0.02  # one serial read; also how often a waiting thread sees its stop flag
PASSIVE_ACTIVATION_RETRIES = 0x02


class Pn532Reader:
    """A PN532 in HSU mode on ``port`` (a device path, a pty path or a pyserial URL)."""

    def __init__(
        self,
        port: str,
        baudrate: int = 115200,
        byte_order: pn532.ByteOrder = "as-read",
        *,
        poll_interval: float = 0.2,
        repeat_window: float = 1.0,
        response_timeout: float = 0.5,
        failure_threshold: int = 2,
        reopen_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        on_failure: FailureCallback | None = None,
    ) -> None:
        if byte_order not in pn532.BYTE_ORDERS:
            raise ConfigurationError(f"byte_order must be one of {pn532.BYTE_ORDERS}")
        if min(poll_interval, repeat_window) < 0 or min(response_timeout, reopen_interval) <= 0:
            raise ConfigurationError("need intervals >= 0 and timeouts > 0")
        if failure_threshold < 1:
            raise ConfigurationError("failure_threshold must be >= 1")
        self._port_name = port
        self._baudrate = baudrate
        self._byte_order: pn532.ByteOrder = byte_order
        self._poll_interval = poll_interval
        self._response_timeout = response_timeout
        self._failure_threshold = failure_threshold
        self._reopen_interval = reopen_interval
        self._on_failure = on_failure
        self._on_token: TokenCallback | None = None
        self._parser = pn532.Pn532Parser()
        self._port: Any = None  # serial.Serial (pyserial is untyped)
        self._ready = False
        self._misses = 0
        self._failed = False
        self._repeats = RepeatFilter(repeat_window, clock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.firmware: pn532.FirmwareVersion | None = None

    @property
    def is_open(self) -> bool:
        """True while the port is open and the chip configured (cards are being read)."""
        return self._ready

    async def start(self, on_token: TokenCallback) -> None:
        """Open the port, configure the chip and start polling.

        If the reader does not answer now, the failure is reported and the thread keeps
        trying; start() itself does not raise for it.
        """
        if self._thread is not None or self._closed:
            raise RuntimeError("Pn532Reader.start() called twice or after aclose()")
        self._on_token = on_token
        await asyncio.to_thread(self._connect)
        self._thread = threading.Thread(target=self._run, name="pn532", daemon=True)
        self._thread.start()

    async def aclose(self) -> None:
        """Stop the thread and close the port. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
        self._close_port()

    # -- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._ready and not self._connect():
                self._stop.wait(self._reopen_interval)
                continue
            self._poll_once()
            self._stop.wait(self._poll_interval)

    def _poll_once(self) -> None:
        try:
            answer = self._command(
                pn532.IN_LIST_PASSIVE_TARGET, pn532.in_list_passive_target_params()
            )
            uid = pn532.parse_passive_target(answer)
        except (ReaderError, ValueError) as exc:  # before OSError: ReaderError is one
            if self._stop.is_set():
                return
            self._misses += 1
            logger.warning("PN532 on %s: %s", self._port_name, exc)
            if self._misses >= self._failure_threshold:
                self._lost(ReaderError(f"PN532 on {self._port_name} stopped answering: {exc}"))
            return
        except PORT_ERRORS as exc:
            self._lost(ReaderError(f"PN532 on {self._port_name}: {exc}"))
            return
        self._misses = 0
        if uid is not None:
            self._presented(pn532.format_uid(uid, self._byte_order))

    def _connect(self) -> bool:
        """Open the port if needed, wake and configure the chip; report the outcome."""
        try:
            if self._port is None:
                self._port = serial.serial_for_url(
                    self._port_name, baudrate=self._baudrate, timeout=READ_TIMEOUT
                )
            self._port.write(pn532.WAKEUP)
            self._command(pn532.SAM_CONFIGURATION, pn532.sam_configuration_params())
            self.firmware = pn532.parse_firmware_version(
                self._command(pn532.GET_FIRMWARE_VERSION)
            )
            if self.firmware.ic != pn532.IC_PN532:
                raise ReaderError(f"not a PN532: {self.firmware}")
            self._command(
                pn532.RF_CONFIGURATION, pn532.max_retries_params(PASSIVE_ACTIVATION_RETRIES)
            )
        except (*PORT_ERRORS, ValueError) as exc:
            self._lost(ReaderError(f"PN532 on {self._port_name}: {exc}"))
            return False
        self._ready, self._misses = True, 0
        logger.info("PN532 on %s ready: %s", self._port_name, self.firmware)
        if self._failed:
            self._failed = False
            logger.info("PN532 on %s is back", self._port_name)
            self._call(self._on_failure, None)
        return True

    def _command(self, command: int, params: bytes = b"") -> bytes:
        """Send one command; the response's parameters (after its code) or ReaderError."""
        port = self._port
        port.reset_input_buffer()
        self._parser.reset()
        port.write(pn532.command_frame(command, params))
        deadline = time.monotonic() + self._response_timeout
        while time.monotonic() < deadline and not self._stop.is_set():
            for frame in self._parser.feed(port.read(max(1, port.in_waiting))):
                if isinstance(frame, pn532.ErrorFrame):
                    raise ReaderError(f"PN532 refused command 0x{command:02X}")
                if isinstance(frame, pn532.Nack):
                    raise ReaderError(f"PN532 asked for command 0x{command:02X} again")
                if (
                    isinstance(frame, pn532.DataFrame)
                    and frame.tfi == pn532.TFI_PN532
                    and frame.code == command + 1
                ):
                    return frame.payload[1:]
        raise ReaderError(f"no answer to command 0x{command:02X} within {self._response_timeout} s")

    def _lost(self, exc: ReaderError) -> None:
        self._ready = False
        self._close_port()
        if self._failed:
            return
        self._failed = True
        logger.error("%s", exc)
        self._call(self._on_failure, exc)

    def _close_port(self) -> None:
        self._ready = False
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except PORT_ERRORS as exc:
                logger.debug("closing %s: %s", self._port_name, exc)

    def _presented(self, uid: str) -> None:
        if not self._repeats.fresh(uid):
            return
        logger.info("PN532: card %s", uid)
        self._call(self._on_token, uid)

    def _call(self, callback: Callable[..., None] | None, arg: object) -> None:
        call_safely(callback, arg, logger, "PN532")
