"""The composition root: the one place that chooses implementations and wires them together.

``run(config)`` builds the drivers named in the configuration (imported lazily, so a laptop
without a Pi's libraries can still check a config), the core, the delivery layer and the link,
then runs until SIGTERM/SIGINT and shuts down in order: contactors open, transactions end by
policy, the backlog is given a last chance, the link closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import signal
import time
import uuid

from agent import clock
from agent.config import Config, ConnectorConfig
from agent.core.settings import Settings, core_keys
from agent.core.station import ConnectorConfig as CoreConnector
from agent.core.station import IdSource, Station, StationConfig
from agent.csms.link import Link, LinkSettings
from agent.outbox import Outbox
from agent.runtime import ConnectorHardware, Runtime
from hal.roles import TokenReader

log = logging.getLogger(__name__)

SHUTDOWN_DRAIN_SECONDS = 8.0


def station_config(config: Config) -> StationConfig:
    free = config.authorization.free_id_tag if config.authorization.mode == "free" else None
    return StationConfig(
        vendor=config.charger.vendor,
        model=config.charger.model,
        serial_number=config.charger.serial_number,
        firmware_version=config.charger.firmware_version,
        connectors=tuple(CoreConnector(c.id, float(c.max_current)) for c in config.connectors),
        free_vend_id_tag=free,
    )


def settings_from(config: Config) -> Settings:
    return Settings(core_keys(len(config.connectors)), config.ocpp.configuration_keys())


def id_source() -> IdSource:
    # Transaction refs must not repeat across restarts: seed them from the wall clock.
    counter = itertools.count(int(time.time() * 1000))
    return IdSource(next_ref=lambda: str(uuid.uuid4()), next_tx_ref=lambda: next(counter))


class Hardware:
    """Builds and owns the drivers named in the configuration."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._buses: dict[str, object] = {}

    def bus(self, name: str) -> object:
        from hal.modbus_bus import ModbusBus

        if name not in self._buses:
            b = self._config.bus(name)
            if b.type == "tcp":
                assert b.host is not None
                self._buses[name] = ModbusBus.tcp(b.host, b.tcp_port, b.timeout, b.retries)
            else:
                assert b.port is not None
                self._buses[name] = ModbusBus.rtu(
                    b.port, b.baudrate, b.parity, b.stopbits, b.timeout, b.retries
                )
        return self._buses[name]

    def connector(self, c: ConnectorConfig) -> ConnectorHardware:
        from hal.contactor_gpio import GpioContactor
        from hal.gpio import make_pin_factory
        from hal.interlock import SafetyInterlock
        from hal.meter_maps import register_map
        from hal.meter_modbus import ModbusEnergyMeter
        from hal.pilot_evse_board import EvseBoardPilot

        factory = make_pin_factory(self._config.gpio.pin_factory)
        contactor = GpioContactor(
            c.contactor.pin,
            active_high=c.contactor.active_high,
            feedback_pin=c.contactor.feedback_pin,
            feedback_active_high=c.contactor.feedback_active_high,
            pin_factory=factory,
        )
        interlock = SafetyInterlock(contactor)
        pilot = EvseBoardPilot(self.bus(c.pilot.bus), c.pilot.device_id,  # type: ignore[arg-type]
                               c.pilot.poll_interval)
        meter = ModbusEnergyMeter(self.bus(c.meter.bus), c.meter.device_id,  # type: ignore[arg-type]
                                  register_map(c.meter.driver.replace("-", "_")))
        return ConnectorHardware(interlock, pilot, meter)

    def reader(self) -> TokenReader | None:
        r = self._config.reader
        if r.driver == "none":
            return None
        from hal.reader_rdm6300 import Rdm6300Reader

        assert r.port is not None
        return Rdm6300Reader(r.port, r.baudrate, r.id_format)  # type: ignore[arg-type]

    def close(self) -> None:
        for bus in self._buses.values():
            bus.close()  # type: ignore[attr-defined]


def link_settings(config: Config) -> LinkSettings:
    c = config.csms
    return LinkSettings(
        url=c.url,
        charge_point_id=config.charger.id,
        password=c.password,
        call_timeout=c.call_timeout,
        reconnect_min=c.reconnect_min,
        reconnect_max=c.reconnect_max,
        ping_interval=float(c.ping_interval),
        use_proxy=c.use_proxy,
    )


def build(config: Config, hardware: Hardware) -> tuple[Runtime, Link]:
    station = Station(station_config(config), settings_from(config), id_source())
    devices = {c.id: hardware.connector(c) for c in config.connectors}
    link_holder: list[Link] = []

    def outbox(runtime: Runtime) -> Outbox:
        return Outbox(lambda ref, req, txid: link_holder[0].send(ref, req, txid),
                      runtime.post, station.settings, lambda: clock.now().mono)

    runtime = Runtime(station, devices, hardware.reader(), outbox)
    link = Link(link_settings(config), runtime.command, runtime.on_link_state, runtime.replied)
    link_holder.append(link)
    return runtime, link


async def serve(config: Config) -> None:
    """Run the agent until SIGTERM or SIGINT."""
    hardware = Hardware(config)
    try:
        runtime, link = build(config, hardware)
        await runtime.start()
        log.info("ready: %d connector(s), CSMS %s", len(config.connectors), config.csms_endpoint)
        link_task = asyncio.create_task(link.run())
        await _wait_for_stop_signal()
        log.info("stopping")
        await runtime.shutdown(SHUTDOWN_DRAIN_SECONDS)
        link_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await link_task
    finally:
        hardware.close()


async def _wait_for_stop_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def configure_logging(config: Config) -> None:
    logging.basicConfig(
        level=config.log.level,
        format="%(levelname)s %(name)s: %(message)s",
    )
    frames = logging.INFO if config.log.ocpp_frames else logging.WARNING
    logging.getLogger("agent.ocpp").setLevel(frames)
    logging.getLogger("pymodbus").setLevel(logging.WARNING)


def run(config: Config) -> int:
    configure_logging(config)
    asyncio.run(serve(config))
    return 0
