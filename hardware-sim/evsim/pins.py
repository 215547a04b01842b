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
- Hardware SPI (gpiozero's ``MCP3008(port=…, device=…)``) is an MCP3008 whose inputs the
  world describes over the pin bus (:mod:`evsim.mcp3008`): the pilot wire of a PWM pilot.
- Every world announces its site (the charger id it is wired to) first. After
  :meth:`WorldPinFactory.claim_site` the factory only drives a world of that site: another
  world's pin bus is left at once, before any output is sent.
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

from evsim.mcp3008 import WorldSpi, WorldSpiShared
from evsim.pilot_wire import AdcInput, AdcKey
from evsim.pin_bus import ADC, PinBusError, format_out, parse_adc, parse_line, parse_site

logger = logging.getLogger(__name__)

DEFAULT_PIN_BUS = "127.0.0.1:8401"
ENV_PIN_BUS = "EVSIM_PIN_BUS"
RETRY_MIN_S = 0.2
RETRY_MAX_S = 2.0
SITE_WAIT_S = 2.0  # how long a connected world may take to announce its site


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
        self._adc_inputs: dict[AdcKey, AdcInput] = {}
        self._outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._connected = threading.Event()
        self._stopping = threading.Event()
        self._expected_site: str | None = None
        self._site: str | None = None  # what the last world reached announced
        self._announced = threading.Event()
        self._sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._run, name="evsim-pin-bus", daemon=True)
        self._thread.start()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float | None = None) -> bool:
        """Block until the world is reachable; True if it is."""
        return self._connected.wait(timeout)

    def claim_site(self, site: str) -> None:
        """Drive only a world whose site is ``site``; leave a world of another site now."""
        self._expected_site = site
        sock = self._sock
        if sock is not None and self._site not in (None, site):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def world_site(self, timeout: float) -> str | None:
        """The site the world on the pin bus announced, waiting up to ``timeout`` seconds for
        the first connection attempt; None when no world answered."""
        self._announced.wait(timeout)
        return self._site

    def world_level(self, bcm: int) -> bool | None:
        """The level the world last drove on input pin ``bcm``, or None if it never did."""
        return self._world_levels.get(bcm)

    def adc_input(self, key: AdcKey) -> AdcInput | None:
        """What the world last put on ADC input ``key`` (SPI port, device, channel), or None."""
        return self._adc_inputs.get(key)

    def _get_spi_class(self, shared: bool, hardware: bool) -> Any:
        if hardware:
            return WorldSpiShared if shared else WorldSpi
        return super()._get_spi_class(shared, hardware)

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
                self._announced.set()  # nobody there to announce anything
                if not warned:
                    logger.warning("pin bus %s:%s unreachable (%s); pins work locally, retrying",
                                   *self._address, exc)
                    warned = True
                self._stopping.wait(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            first = self._greeting(sock)
            if first is None:  # a world of another site: do not touch it, look again later
                sock.close()
                self._stopping.wait(RETRY_MAX_S)
                continue
            logger.info("pin bus connected to %s:%s (site %s)", *self._address, self._site)
            warned, delay = False, RETRY_MIN_S
            self._serve(sock, first)
            if not self._stopping.is_set():
                logger.warning("pin bus %s:%s lost; retrying", *self._address)

    def _greeting(self, sock: socket.socket) -> list[bytes] | None:
        """Read the world's SITE line: the lines to handle next, or None for a wrong site."""
        sock.settimeout(SITE_WAIT_S)
        line = b""
        with contextlib.suppress(OSError):
            while not line.endswith(b"\n") and len(line) < 256:  # one byte at a time: the
                byte = sock.recv(1)                                # rest is the reader's
                if not byte:
                    break
                line += byte
        site = parse_site(line)
        if site is None:
            return [line] if line else []  # a world too old to announce itself
        self._site = site
        self._announced.set()
        expected = self._expected_site
        if expected is not None and site != expected:
            logger.error("pin bus %s:%s is the simulated site %r, not this charger's %r "
                         "(another evsim world holds its ports?): not driving its pins",
                         *self._address, site, expected)
            return None
        return []

    def _serve(self, sock: socket.socket, first: list[bytes]) -> None:
        sock.settimeout(None)
        for line in first:
            self._handle(line)
        lost = threading.Event()
        reader = threading.Thread(
            target=self._read, args=(sock, lost), name="evsim-pin-bus-in", daemon=True
        )
        self._sock = sock
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
            self._sock = None
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
            if reader.is_alive():
                reader.join(timeout=1.0)

    def _write(self, sock: socket.socket, lost: threading.Event) -> None:
        # Blocks without a timeout (no idle wake-ups in the agent's process): the reader puts
        # an empty line when the connection is lost, close() puts None.
        while not lost.is_set():
            line = self._outbox.get()
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
            self._outbox.put(b"")  # wake the writer

    def _handle(self, line: bytes) -> None:
        if line.startswith(ADC):
            try:
                key, wire = parse_adc(line)
            except PinBusError as exc:
                logger.warning("%s", exc)
                return
            self._adc_inputs[key] = wire
            return
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
