"""Runs a :class:`evsim.world.World` with all its wires: the Modbus bus, the token reader's pty
(an RDM6300 or a PN532, ``WorldConfig.reader``), the sysfs PWM tree of PWM pilots, the pin bus,
the bench API and the physics loop.

``async with WorldServer(config) as server:`` starts everything (ports 0 become real ports,
see the ``*_address`` properties) and stops it in reverse order, saving the world's state.
:func:`run_world` does the same until an event is set (the CLI sets it on SIGINT/SIGTERM).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from evsim.bench_api import BenchApi
from evsim.modbus_devices import BusServer, serve_bus
from evsim.pin_bus import PinBusServer
from evsim.pn532_emulator import Pn532Emulator
from evsim.pwm_sysfs_tree import PwmSysfsTree
from evsim.rdm6300_emulator import Rdm6300Emulator
from evsim.world import World
from evsim.world_config import Address, WorldConfig

logger = logging.getLogger(__name__)


class PortTaken(OSError):
    """A listen address of the world is held by another process (often another world)."""

    def __init__(self, what: str, table: str, address: Address) -> None:
        super().__init__(errno.EADDRINUSE, f"the {what} address {address} is already in use "
                         f"(another evsim world?): stop it, or set another [{table}] listen")


@contextlib.contextmanager
def _binding(what: str, table: str, address: Address) -> Iterator[None]:
    """Turn a failed listen on a taken ``address`` into :class:`PortTaken`. pymodbus reports
    a failed listen as a bare RuntimeError, so the address is probed to tell why."""
    try:
        yield
    except (OSError, RuntimeError) as exc:
        if getattr(exc, "errno", None) == errno.EADDRINUSE or _in_use(address):
            raise PortTaken(what, table, address) from exc
        raise


def _in_use(address: Address) -> bool:
    if address.port == 0:
        return False
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
        try:
            probe.bind((address.host, address.port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


class WorldServer:
    """The simulated site, served. Only valid between :meth:`start` and :meth:`close`."""

    def __init__(self, config: WorldConfig) -> None:
        config.validate()
        self.config = config
        self._stack = contextlib.AsyncExitStack()
        self._world: World | None = None
        self._bus: BusServer | None = None
        self._pin_bus: PinBusServer | None = None
        self._bench: BenchApi | None = None
        self._reader: Rdm6300Emulator | Pn532Emulator | None = None

    @property
    def world(self) -> World:
        assert self._world is not None, "WorldServer not started"
        return self._world

    @property
    def bench_url(self) -> str:
        assert self._bench is not None, "WorldServer not started"
        return self._bench.url

    @property
    def pin_bus_address(self) -> Address:
        assert self._pin_bus is not None, "WorldServer not started"
        return self._pin_bus.address

    @property
    def bus_port(self) -> str:
        """What the agent's Modbus client opens: ``socket://host:port``, a tty, or host:port."""
        assert self._bus is not None, "WorldServer not started"
        if self.config.bus_link is not None and self._bus.transport == "pty":
            return str(self.config.bus_link)
        return self._bus.client_port or f"{self._bus.host}:{self._bus.port}"

    @property
    def reader_port(self) -> str:
        """What the agent's token reader opens: the stable link if configured, else the pty."""
        assert self._reader is not None, "WorldServer not started"
        return str(self.config.reader_link or self._reader.port)

    async def start(self) -> None:
        """Start every wire; on failure, stop what already started and re-raise."""
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise

    async def _start(self) -> None:
        self._reader = Pn532Emulator() if self.config.reader == "pn532" else Rdm6300Emulator()
        self._stack.callback(self._reader.close)
        world = self._world = World(self.config, reader=self._reader, pwm=self._pwm_tree())
        self._stack.callback(world.save)
        bus = self.config.bus
        with _binding("Modbus bus", "bus", bus):
            self._bus = await serve_bus(
                world.devices(), transport=self.config.bus_transport,  # type: ignore[arg-type]
                address=(bus.host, bus.port),
            )
        self._stack.push_async_callback(self._bus.close)
        if self.config.bus_link is not None and self._bus.client_port is not None:
            self._link(self.config.bus_link, self._bus.client_port)
        if self.config.reader_link is not None:
            self._link(self.config.reader_link, self._reader.port)
            world.reader_link = str(self.config.reader_link)
        self._pin_bus = PinBusServer(world, self.config.pin_bus, self.config.site)
        with _binding("pin bus", "pin_bus", self.config.pin_bus):
            await self._pin_bus.start()
        self._stack.push_async_callback(self._pin_bus.close)
        with _binding("bench API", "bench", self.config.bench):
            self._bench = BenchApi(world, self.config.bench)
        self._bench.start()
        self._stack.push_async_callback(asyncio.to_thread, self._bench.close)
        physics = asyncio.create_task(self._physics(), name="evsim-physics")
        self._stack.push_async_callback(_cancel, physics)

    def _pwm_tree(self) -> PwmSysfsTree | None:
        channels = [(c.pwm_chip, c.pwm_channel) for c in self.config.connectors
                    if c.pilot == "pwm"]
        root = self.config.pwm_root
        return None if root is None or not channels else PwmSysfsTree(root, channels)

    async def close(self) -> None:
        """Stop everything in reverse order and save the world's state. Idempotent."""
        await self._stack.aclose()

    async def __aenter__(self) -> WorldServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def describe(self) -> dict[str, str]:
        """Where everything is, for humans and for the agent's config."""
        return {
            "bench": self.bench_url,
            "pin_bus": str(self.pin_bus_address),
            "bus": f"{self.config.bus_transport} {self.bus_port}",
            "reader": f"{self.config.reader} {self.reader_port}",
            "state_file": str(self.config.state_file or "-"),
        }

    async def _physics(self) -> None:
        while True:
            self.world.tick(time.monotonic())
            await asyncio.sleep(self.config.tick_s)

    def _link(self, link: Path, target: str) -> None:
        """Point ``link`` at ``target`` atomically, replacing a stale link; removed on close."""
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.exists() and not link.is_symlink():
            raise FileExistsError(f"{link} exists and is not a symlink")
        tmp = link.with_name(link.name + f".{os.getpid()}.new")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(target)
        os.replace(tmp, link)
        self._stack.callback(_unlink_if_points_to, link, target)


def _unlink_if_points_to(link: Path, target: str) -> None:
    # Another world may have taken the link over since; leave its link alone.
    with contextlib.suppress(OSError):
        if link.is_symlink() and os.readlink(link) == target:
            link.unlink()


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def run_world(config: WorldConfig, stop: asyncio.Event | None = None) -> None:
    """Serve the world until ``stop`` is set (forever without one), then shut it down."""
    async with WorldServer(config) as server:
        for name, where in server.describe().items():
            logger.info("%s: %s", name, where)
        await (stop or asyncio.Event()).wait()
