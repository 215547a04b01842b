"""The pin bus: the wire between the charger's GPIO pins and the simulated world.

A line protocol over TCP (ASCII, one message per ``\\n``-terminated line)::

    charger -> world   OUT <bcm> <level>   an output pin changed: 0, 1, a PWM duty (0.26)
                                           or Z (released: the pin is an input again)
    world -> charger   IN <bcm> <0|1>      the world drives an input pin to this level
    world -> charger   SITE <id>           first on every connection: the world's identity,
                                           the charger id it is wired to (WorldConfig.site)
    world -> charger   ADC <port> <device> <channel> <high> <low> <pwm>
                                           MCP3008 input <channel> on SPI <port>.<device>
                                           reads <high> (0..1 of full scale) while the sysfs
                                           PWM channel in directory <pwm> is high, else <low>

On connect the world sends its SITE line; a charger that expects another site leaves without
driving anything. Then the charger sends every output pin it drives and the world sends the
level of every input pin and every ADC input it knows; after that each side sends changes
only. Messages are idempotent states, never edges, so repeating one is harmless. Malformed
lines are logged and skipped.

When a charger disconnects (killed, power cut) the world releases every pin it drove, as a
dead Pi drives nothing: the relays drop out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from evsim.pilot_wire import AdcInput, AdcKey
from evsim.world_config import DEFAULT_SITE, Address

if TYPE_CHECKING:  # the agent's pin factory (evsim.pins) imports this module, not the world
    from evsim.world import World

logger = logging.getLogger(__name__)


class PinBusError(ValueError):
    """A line that is not a pin bus message."""


def format_out(pin: int, level: float | None) -> bytes:
    """``OUT`` line for an output pin at ``level`` (None: released)."""
    if level is None:
        text = "Z"
    elif level in (0, 1):
        text = str(int(level))
    else:
        text = f"{level:.4f}"
    return f"OUT {pin} {text}\n".encode("ascii")


def format_in(pin: int, level: bool) -> bytes:
    return f"IN {pin} {int(level)}\n".encode("ascii")


SITE = b"SITE "


def format_site(site: str) -> bytes:
    return SITE + site.encode("ascii", errors="replace") + b"\n"


def parse_site(line: bytes) -> str | None:
    """The site a ``SITE`` line names, None for any other line."""
    if not line.startswith(SITE):
        return None
    return line[len(SITE):].decode("ascii", errors="replace").strip()


ADC = b"ADC "


def format_adc(key: AdcKey, wire: AdcInput) -> bytes:
    port, device, channel = key
    return (f"ADC {port} {device} {channel} {wire.high:.4f} {wire.low:.4f} {wire.pwm}\n"
            .encode())


def parse_adc(line: bytes) -> tuple[AdcKey, AdcInput]:
    """Split an ``ADC`` line; raises :class:`PinBusError` if malformed."""
    parts = line.decode("utf-8", errors="replace").rstrip("\r\n").split(" ", 6)
    if len(parts) != 7 or parts[0] != "ADC" or not all(p.isdigit() for p in parts[1:4]):
        raise PinBusError(f"not an ADC line: {line!r}")
    try:
        high, low = float(parts[4]), float(parts[5])
    except ValueError:
        raise PinBusError(f"bad level in {line!r}") from None
    if not (0.0 <= high <= 1.0 and 0.0 <= low <= 1.0) or not parts[6]:
        raise PinBusError(f"level out of range or no PWM in {line!r}")
    port, device, channel = (int(p) for p in parts[1:4])
    return (port, device, channel), AdcInput(high, low, parts[6])


def parse_line(line: bytes) -> tuple[str, int, float | None]:
    """Split a line into (verb, pin, level); raises :class:`PinBusError` if malformed."""
    parts = line.decode("ascii", errors="replace").split()
    if len(parts) != 3 or parts[0] not in ("IN", "OUT") or not parts[1].isdigit():
        raise PinBusError(f"not a pin bus line: {line!r}")
    verb, pin, text = parts[0], int(parts[1]), parts[2]
    if text == "Z" and verb == "OUT":
        return verb, pin, None
    try:
        level = float(text)
    except ValueError:
        raise PinBusError(f"bad level in {line!r}") from None
    if not 0.0 <= level <= 1.0:
        raise PinBusError(f"level out of range in {line!r}")
    return verb, pin, level


class PinBusServer:
    """The world's end of the pin bus. Serves any number of chargers on one TCP port."""

    def __init__(self, world: World, address: Address, site: str = DEFAULT_SITE) -> None:
        self.site = site
        self._world = world
        self._requested = address
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clients: set[asyncio.StreamWriter] = set()
        self._owners: dict[int, asyncio.StreamWriter] = {}

    @property
    def address(self) -> Address:
        """The address actually bound (the real port when 0 was asked for)."""
        if self._server is None:
            return self._requested
        host, port = self._server.sockets[0].getsockname()[:2]
        return Address(host, port)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(
            self._serve, self._requested.host, self._requested.port
        )
        self._world.add_input_listener(self._on_input)
        self._world.add_adc_listener(self._on_adc)
        logger.info("pin bus listening on %s", self.address)

    async def close(self) -> None:
        """Stop listening and drop every charger (their pins are released). Idempotent."""
        self._world.remove_input_listener(self._on_input)
        self._world.remove_adc_listener(self._on_adc)
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._clients):
            writer.close()
        await self._server.wait_closed()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        logger.info("charger connected to the pin bus from %s", peer)
        self._clients.add(writer)
        writer.write(format_site(self.site))
        for pin, level in sorted(self._world.input_levels().items()):
            writer.write(format_in(pin, level))
        for key, wire in sorted(self._world.adc_inputs().items(), key=lambda item: item[0]):
            writer.write(format_adc(key, wire))
        try:
            while line := await reader.readline():
                self._handle(line, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._drop(writer)
            logger.info("charger %s left the pin bus; its pins are released", peer)

    def _handle(self, line: bytes, writer: asyncio.StreamWriter) -> None:
        try:
            verb, pin, level = parse_line(line)
        except PinBusError as exc:
            logger.warning("%s", exc)
            return
        if verb != "OUT":
            logger.warning("ignoring %r from a charger", line)
            return
        self._owners[pin] = writer
        self._world.set_output(pin, level)
        self._schedule_tick()

    def _drop(self, writer: asyncio.StreamWriter) -> None:
        self._clients.discard(writer)
        for pin in [p for p, owner in self._owners.items() if owner is writer]:
            del self._owners[pin]
            self._world.set_output(pin, None)
        self._schedule_tick()
        writer.close()

    def _schedule_tick(self) -> None:
        due = self._world.next_event_at()
        if due is not None and self._loop is not None:
            delay = max(0.0, due - self._world.now()) + 0.001
            self._loop.call_later(delay, self._tick)

    def _tick(self) -> None:
        self._world.tick(self._world.now())

    def _on_input(self, pin: int, level: bool) -> None:
        # Called on whatever thread changed the world; writing belongs to the loop.
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._broadcast, pin, level)

    def _on_adc(self, key: AdcKey, wire: AdcInput) -> None:
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._send_all, format_adc(key, wire))

    def _broadcast(self, pin: int, level: bool) -> None:
        self._send_all(format_in(pin, level))

    def _send_all(self, line: bytes) -> None:
        for writer in list(self._clients):
            if not writer.is_closing():
                writer.write(line)
