"""The composition root: the one place that chooses implementations and wires them together.

``run(config)`` opens the state store, builds the drivers named in the configuration (imported
lazily, so a laptop without a Pi's libraries can still check a config), the core, the delivery
layer and the link; settles the transactions a crash left open (:mod:`agent.recovery`); then
runs until SIGTERM/SIGINT and shuts down in order: contactors open, transactions end by
policy, the backlog is given a last chance, the link closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import signal
import uuid

from agent import clock
from agent.config import Config, ConnectorConfig
from agent.core.settings import SettingError, Settings, core_keys
from agent.core.station import ConnectorConfig as CoreConnector
from agent.core.station import IdSource, Station, StationConfig
from agent.csms.link import Link, LinkSettings
from agent.outbox import Outbox
from agent.recovery import DEFAULT_POLICY, recover
from agent.runtime import ConnectorHardware, Runtime
from agent.store import Store, StoreError, StorePersistence
from hal.roles import TokenReader

log = logging.getLogger(__name__)

SHUTDOWN_DRAIN_SECONDS = 8.0
EXIT_STORE_FAILED = 74  # sysexits EX_IOERR


def station_config(config: Config) -> StationConfig:
    free = config.authorization.free_id_tag if config.authorization.mode == "free" else None
    return StationConfig(
        vendor=config.charger.vendor,
        model=config.charger.model,
        serial_number=config.charger.serial_number,
        firmware_version=config.charger.firmware_version,
        connectors=tuple(CoreConnector(c.id, float(c.max_current)) for c in config.connectors),
        free_vend_id_tag=free,
        authorize_timeout=config.authorization.authorize_timeout,
    )


def settings_from(config: Config, store: Store | None = None) -> Settings:
    """The file's seeds, overridden by the values the CSMS set (kept in ``store``)."""
    settings = Settings(core_keys(len(config.connectors)), config.ocpp.configuration_keys())
    for name, value in (store.settings() if store is not None else {}).items():
        try:
            if settings.is_readonly(name):
                raise SettingError("read-only key")
            settings.restore(name, value)
        except (KeyError, SettingError) as error:
            problem = error.args[0] if isinstance(error, SettingError) else "unknown key"
            log.warning("state store: ignoring configuration %s = %r: %s", name, value, problem)
    return settings


def id_source(store: Store) -> IdSource:
    # Transaction refs must not repeat across restarts (the journal maps each to a CSMS
    # transactionId): continue after the highest one the store has seen.
    counter = itertools.count(store.max_tx_ref() + 1)
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


def build(config: Config, hardware: Hardware, store: Store | None = None,
          devices: dict[int, ConnectorHardware] | None = None) -> tuple[Runtime, Link]:
    """Wire the agent. Without ``store``, the one in ``charger.state_dir`` is opened (and
    closed when the process ends); without ``devices``, the connectors' drivers are built.
    The outbox takes up the journal here: recover before. Raises StoreError."""
    store = store if store is not None else Store.open(config.charger.state_dir)
    station = Station(station_config(config), settings_from(config, store), id_source(store))
    if devices is None:
        devices = {c.id: hardware.connector(c) for c in config.connectors}
    link_holder: list[Link] = []

    def outbox(runtime: Runtime) -> Outbox:
        return Outbox(lambda ref, req, txid: link_holder[0].send(ref, req, txid),
                      runtime.post, station.settings, lambda: clock.now().mono, store,
                      wall=lambda: clock.now().utc.timestamp())

    persistence = StorePersistence(store)
    station.restore_availability(persistence.load_availability())
    station.restore_authorization(persistence.load_cache(), *persistence.load_local_list())
    runtime = Runtime(station, devices, hardware.reader(), outbox, persistence)
    link = Link(link_settings(config), runtime.command, runtime.on_link_state, runtime.replied)
    link_holder.append(link)
    return runtime, link


async def serve(config: Config) -> None:
    """Run the agent until SIGTERM or SIGINT. Raises StoreError when the store is unusable."""
    store = Store.open(config.charger.state_dir)
    hardware = Hardware(config)
    try:
        devices = {c.id: hardware.connector(c) for c in config.connectors}  # contactors open
        # Before the core, the outbox and the link: what a crash left open is settled, its
        # StopTransaction journaled behind the messages still pending (agent.recovery).
        await recover(store, {cid: hw.meter for cid, hw in devices.items()}, DEFAULT_POLICY)
        runtime, link = build(config, hardware, store, devices)
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
        store.close()


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
    try:
        asyncio.run(serve(config))
    except StoreError as error:
        log.critical("%s", error)  # never run without the journal: it would lose transactions
        return EXIT_STORE_FAILED
    return 0
