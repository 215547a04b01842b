"""RDM6300 125 kHz RFID reader on a serial port (role: TokenReader).

A daemon thread reads the port, feeds :class:`hal.rdm6300.Rdm6300Parser` and reports each
presentation once: the module repeats its frame while the card stays in the field, so the same
card seen again within ``repeat_window`` seconds of its previous frame is the same presentation.

A serial error (reader unplugged, USB adapter reset) is logged and reported through
``on_failure(exc)``; the port is reopened every ``reopen_interval`` seconds until it works,
then ``on_failure(None)`` says the reader is back. The agent never has to restart for it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import serial

from hal.callbacks import RepeatFilter, call_safely
from hal.errors import ConfigurationError, ReaderError
from hal.rdm6300 import IdFormat, Rdm6300Parser
from hal.roles import TokenCallback

logger = logging.getLogger(__name__)

FailureCallback = Callable[[BaseException | None], None]
# How often an idle thread wakes to look at its stop flag on a port whose pending read cannot
# be cancelled (a pyserial URL such as socket://). On a device or pty path the read blocks
# until a card or aclose() (pyserial's cancel_read): each wake-up costs CPU for nothing,
# which shows in the idle figure (docs/performance.md).
READ_TIMEOUT = 1.0


class Rdm6300Reader:
    """An RDM6300 on ``port`` (a device path, a pty path or a pyserial URL)."""

    def __init__(
        self,
        port: str,
        baudrate: int = 9600,
        id_format: IdFormat = "hex",
        repeat_window: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        on_failure: FailureCallback | None = None,
        reopen_interval: float = 1.0,
    ) -> None:
        if repeat_window < 0 or reopen_interval <= 0:
            raise ConfigurationError("need repeat_window >= 0 and reopen_interval > 0")
        self._port_name = port
        self._baudrate = baudrate
        self._parser = Rdm6300Parser(id_format)
        self._on_failure = on_failure
        self._reopen_interval = reopen_interval
        self._on_token: TokenCallback | None = None
        self._port: Any = None  # serial.Serial (pyserial is untyped)
        self._repeats = RepeatFilter(repeat_window, clock)
        self._failed = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def is_open(self) -> bool:
        """True while the serial port is open (frames written now will be read)."""
        return self._port is not None

    async def start(self, on_token: TokenCallback) -> None:
        """Open the port and start the reading thread.

        If the port cannot be opened now, the failure is reported and the thread keeps
        trying; start() itself does not raise for it. When start() returns with
        :attr:`is_open` true, the port is open and its input buffer already flushed.
        """
        if self._thread is not None or self._closed:
            raise RuntimeError("Rdm6300Reader.start() called twice or after aclose()")
        self._on_token = on_token
        await asyncio.to_thread(self._try_open)
        self._thread = threading.Thread(target=self._run, name="rdm6300", daemon=True)
        self._thread.start()

    async def aclose(self) -> None:
        """Stop the thread and close the port. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._cancel_read()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
        self._close_port()

    def _cancel_read(self) -> None:
        """Wake the thread out of a pending read (posix ports only; others time out)."""
        cancel = getattr(self._port, "cancel_read", None)
        if cancel is not None:
            try:
                cancel()
            except (serial.SerialException, OSError) as exc:
                logger.debug("cancelling the read on %s: %s", self._port_name, exc)

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._port is None and not self._try_open():
                self._stop.wait(self._reopen_interval)
                continue
            try:
                data = self._port.read(max(1, self._port.in_waiting))
            except (serial.SerialException, OSError) as exc:
                self._close_port()
                self._report_failure(ReaderError(f"RDM6300 on {self._port_name}: {exc}"))
                self._stop.wait(self._reopen_interval)
                continue
            for uid in self._parser.feed(data):
                self._presented(uid)

    def _try_open(self) -> bool:
        try:
            port = serial.serial_for_url(
                self._port_name, baudrate=self._baudrate, timeout=READ_TIMEOUT
            )
            if hasattr(port, "cancel_read"):
                port.timeout = None  # aclose() cancels the read
            self._port = port
        except (serial.SerialException, OSError, ValueError) as exc:
            self._report_failure(ReaderError(f"RDM6300 on {self._port_name}: {exc}"))
            return False
        self._parser.reset()
        if self._failed:
            self._failed = False
            logger.info("RDM6300 on %s is back", self._port_name)
            self._call(self._on_failure, None)
        return True

    def _close_port(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError) as exc:
                logger.debug("closing %s: %s", self._port_name, exc)

    def _report_failure(self, exc: ReaderError) -> None:
        if self._failed:
            return
        self._failed = True
        logger.error("%s", exc)
        self._call(self._on_failure, exc)

    def _presented(self, uid: str) -> None:
        if not self._repeats.fresh(uid):
            return
        logger.info("RDM6300: card %s", uid)
        self._call(self._on_token, uid)

    def _call(self, callback: Callable[..., None] | None, arg: object) -> None:
        call_safely(callback, arg, logger, "RDM6300")
