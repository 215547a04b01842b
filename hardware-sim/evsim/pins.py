"""gpiozero pins wired to the simulated world: the charger's end of :mod:`evsim.pin_bus`.

:class:`WorldPinFactory` is a gpiozero ``MockFactory`` whose pins also travel over the pin
bus. gpiozero builds it by name (entry point ``evsim``: ``GPIOZERO_PIN_FACTORY=evsim`` or the
agent's ``gpio.pin_factory = "evsim"``) with no arguments, so it finds the world through the
environment: ``EVSIM_PIN_BUS=host:port`` (default ``127.0.0.1:8401``).

Contract:

- Output pins always work locally first; the bus is best effort and never blocks or raises
  in the caller (opening a relay must never fail). Changes are queued to a sender thread.
- Input pins are driven by the world from the bus's reader thread, with ``drive_high`` /
  ``drive_low``, so gpiozero callbacks fire on that thread as on a real Pi's factory.
- Without a world the factory keeps working as a plain mock and reconnects in the background;
  on every (re)connect it sends all output states and receives all input levels.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import socket
import threading
from typing import Any

from gpiozero.pins.mock import MockFactory, MockPWMPin

from evsim.pin_bus import PinBusError, format_out, parse_line

logger = logging.getLogger(__name__)

DEFAULT_PIN_BUS = "127.0.0.1:8401"
ENV_PIN_BUS = "EVSIM_PIN_BUS"
RETRY_MIN_S = 0.2
RETRY_MAX_S = 2.0


class WorldPin(MockPWMPin):  # type: ignore[misc]  # gpiozero is untyped
    """A mock pin (PWM-capable) that reports its output level to the world."""

    @property
    def bcm(self) -> int:
        return int(self.info.name[4:])  # "GPIO17" -> 17

    def _set_state(self, value: Any) -> None:
        super()._set_state(value)
        self.factory._output_changed(self)

    def _set_function(self, value: Any) -> None:
        was_output = self._function == "output"
        super()._set_function(value)
        if value == "input":
            if was_output:
                self.factory._output_released(self)
            self._apply_world_level()

    def _set_pull(self, value: Any) -> None:
        super()._set_pull(value)
        self._apply_world_level()  # the world's wire overrides the pull resistor

    def _apply_world_level(self) -> None:
        level = self.factory.world_level(self.bcm)
        if level is not None and self._function == "input":
            if level:
                self.drive_high()
            else:
                self.drive_low()


class WorldPinFactory(MockFactory):  # type: ignore[misc]
    """A MockFactory whose pins are connected to the world over the pin bus.

    ``address`` ("host:port") overrides ``EVSIM_PIN_BUS``; gpiozero passes nothing.
    """

    def __init__(self, address: str | None = None) -> None:
        super().__init__(pin_class=WorldPin)
        text = address or os.environ.get(ENV_PIN_BUS) or DEFAULT_PIN_BUS
        host, _, port = text.rpartition(":")
        if not port.isdigit():
            raise ValueError(f"{ENV_PIN_BUS}={text!r} is not host:port")
        self._address = (host or "127.0.0.1", int(port))
        self._world_levels: dict[int, bool] = {}
        self._outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._connected = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="evsim-pin-bus", daemon=True)
        self._thread.start()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float | None = None) -> bool:
        """Block until the world is reachable; True if it is."""
        return self._connected.wait(timeout)

    def world_level(self, bcm: int) -> bool | None:
        """The level the world last drove on input pin ``bcm``, or None if it never did."""
        return self._world_levels.get(bcm)

    def close(self) -> None:
        """Release every pin (the world sees them float), then leave the bus. Idempotent."""
        super().close()
        if not self._stopping.is_set():
            self._stopping.set()
            self._outbox.put(None)
            self._thread.join(timeout=1.0)

    # -- called by WorldPin -------------------------------------------------------------------

    def _output_changed(self, pin: WorldPin) -> None:
        self._outbox.put(format_out(pin.bcm, float(pin.state)))

    def _output_released(self, pin: WorldPin) -> None:
        self._outbox.put(format_out(pin.bcm, None))

    # -- the link ----------------------------------------------------------------------------

    def _run(self) -> None:
        delay = RETRY_MIN_S
        warned = False
        while not self._stopping.is_set():
            try:
                sock = socket.create_connection(self._address, timeout=2.0)
            except OSError as exc:
                if not warned:
                    logger.warning("pin bus %s:%s unreachable (%s); pins work locally, retrying",
                                   *self._address, exc)
                    warned = True
                self._stopping.wait(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            logger.info("pin bus connected to %s:%s", *self._address)
            warned, delay = False, RETRY_MIN_S
            self._serve(sock)
            if not self._stopping.is_set():
                logger.warning("pin bus %s:%s lost; retrying", *self._address)

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(None)
        lost = threading.Event()
        reader = threading.Thread(
            target=self._read, args=(sock, lost), name="evsim-pin-bus-in", daemon=True
        )
        try:
            self._drain_outbox()
            sock.sendall(b"".join(self._output_lines()))
            self._connected.set()
            reader.start()
            self._write(sock, lost)
        except OSError as exc:
            logger.debug("pin bus write failed: %s", exc)
        finally:
            self._connected.clear()
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
            if reader.is_alive():
                reader.join(timeout=1.0)

    def _write(self, sock: socket.socket, lost: threading.Event) -> None:
        while not lost.is_set():
            try:
                line = self._outbox.get(timeout=0.2)
            except queue.Empty:
                if self._stopping.is_set():
                    return
                continue
            if line is None:  # close(): flush what is queued, then leave
                sock.sendall(b"".join(self._drain_outbox()))
                return
            sock.sendall(line)

    def _read(self, sock: socket.socket, lost: threading.Event) -> None:
        try:
            with sock.makefile("rb") as lines:
                for line in lines:
                    self._handle(line)
        except (OSError, ValueError) as exc:
            logger.debug("pin bus read ended: %s", exc)
        finally:
            lost.set()

    def _handle(self, line: bytes) -> None:
        try:
            verb, bcm, level = parse_line(line)
        except PinBusError as exc:
            logger.warning("%s", exc)
            return
        if verb != "IN" or level is None:
            logger.warning("ignoring %r from the world", line)
            return
        self._world_levels[bcm] = level >= 0.5
        for pin in list(self.pins.values()):
            if isinstance(pin, WorldPin) and pin.bcm == bcm:
                pin._apply_world_level()

    def _drain_outbox(self) -> list[bytes]:
        drained: list[bytes] = []
        with contextlib.suppress(queue.Empty):
            while True:
                line = self._outbox.get_nowait()
                if line is not None:
                    drained.append(line)
        return drained

    def _output_lines(self) -> list[bytes]:
        return [
            format_out(pin.bcm, float(pin.state))
            for pin in list(self.pins.values())
            if isinstance(pin, WorldPin) and pin.function == "output"
        ]
