"""The drivers named in the configuration, built and owned in one place.

Drivers are imported lazily, so a laptop without a Pi's libraries can still check a config.
One gpiozero pin factory serves every GPIO device of the agent (gpiozero keeps per-factory
pin reservations, so two devices on one pin are caught), and :meth:`Hardware.close` releases
everything: the GPIO devices (contactors start and end open), the factory and the buses.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from agent.config import Config, ConnectorConfig
from agent.runtime import ConnectorHardware
from hal.roles import TokenReader

log = logging.getLogger(__name__)

_UNSET = object()


class Hardware:
    """Builds and owns the drivers named in the configuration."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._buses: dict[str, Any] = {}
        self._factory: Any = _UNSET
        self._closables: list[Any] = []

    @property
    def pin_factory(self) -> Any:
        """The agent's one gpiozero pin factory (None: gpiozero's default)."""
        if self._factory is _UNSET:
            from hal.gpio import make_pin_factory

            self._factory = make_pin_factory(self._config.gpio.pin_factory)
        return self._factory

    def bus(self, name: str) -> Any:
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
        from hal.interlock import SafetyInterlock
        from hal.meter_maps import register_map
        from hal.meter_modbus import ModbusEnergyMeter
        from hal.pilot_evse_board import EvseBoardPilot

        contactor = GpioContactor(
            c.contactor.pin,
            active_high=c.contactor.active_high,
            feedback_pin=c.contactor.feedback_pin,
            feedback_active_high=c.contactor.feedback_active_high,
            pin_factory=self.pin_factory,
        )
        self._closables.append(contactor)
        interlock = SafetyInterlock(contactor)
        pilot = EvseBoardPilot(self.bus(c.pilot.bus), c.pilot.device_id, c.pilot.poll_interval)
        meter = ModbusEnergyMeter(self.bus(c.meter.bus), c.meter.device_id,
                                  register_map(c.meter.driver.replace("-", "_")))
        return ConnectorHardware(interlock, pilot, meter)

    def connectors(self) -> dict[int, ConnectorHardware]:
        return {c.id: self.connector(c) for c in self._config.connectors}

    def reader(self, on_failure: Callable[[BaseException | None], None] | None = None,
               ) -> TokenReader | None:
        """The token reader; ``on_failure(error)`` when it is lost, ``(None)`` when back."""
        r = self._config.reader
        if r.driver == "none":
            return None
        from hal.reader_rdm6300 import Rdm6300Reader

        assert r.port is not None
        return Rdm6300Reader(r.port, r.baudrate, r.id_format,  # type: ignore[arg-type]
                             on_failure=on_failure)

    def close(self) -> None:
        """Release every device; safe to call twice. Contactors open as they close."""
        closables, self._closables = self._closables, []
        for device in closables:
            with contextlib.suppress(Exception):
                device.close()
        for bus in self._buses.values():
            bus.close()
        self._buses = {}
        factory, self._factory = self._factory, _UNSET
        if factory is not _UNSET and factory is not None:
            with contextlib.suppress(Exception):
                factory.close()
