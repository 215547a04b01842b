"""The drivers named in the configuration, built and owned in one place.

Drivers are imported lazily, so a laptop without a Pi's libraries can still check a config.
One gpiozero pin factory serves every GPIO device of the agent (gpiozero keeps per-factory
pin reservations, so two devices on one pin are caught), and :meth:`Hardware.close` releases
everything: the GPIO devices (contactors start and end open), the factory and the buses.

Drivers that notice their own failure (a lost EVSE board or pilot ADC, a tripped RCD) report
it through :attr:`Hardware.on_device_failure` ``(connector id, OCPP error code, error or
None when it recovered)``, on the driver's thread; the composition root sets it. An RCD trip
opens the contactors it guards right there, through their interlocks, before anything else.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from agent.config import Config, ConnectorConfig, RcdConfig
from agent.core.types import ErrorCode
from agent.runtime import ConnectorHardware
from hal.errors import DeviceError
from hal.interlock import SafetyInterlock
from hal.roles import (
    ConnectorLock,
    ControlPilot,
    EnergyMeter,
    Indicator,
    PhaseSwitch,
    TokenReader,
)

log = logging.getLogger(__name__)

_UNSET = object()
FailureSink = Callable[[int, str, BaseException | None], None]
PLAUSIBILITY_ATTEMPTS = 2  # reads per sample; MeterHealth counts failed samples on top


class Hardware:
    """Builds and owns the drivers named in the configuration."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._buses: dict[str, Any] = {}
        self._factory: Any = _UNSET
        self._closables: list[Any] = []
        self._rcds: list[tuple[int, Any]] = []  # (connector id, 0 = all; GpioRcdInput)
        self.on_device_failure: FailureSink | None = None

    @property
    def pin_factory(self) -> Any:
        """The agent's one gpiozero pin factory (None: gpiozero's default)."""
        if self._factory is _UNSET:
            from hal.gpio import claim_site, make_pin_factory

            self._factory = make_pin_factory(self._config.gpio.pin_factory)
            claim_site(self._factory, self._config.charger.id)  # simulation: our world only
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

        contactor = GpioContactor(
            c.contactor.pin,
            active_high=c.contactor.active_high,
            feedback_pin=c.contactor.feedback_pin,
            feedback_active_high=c.contactor.feedback_active_high,
            pin_factory=self.pin_factory,
        )
        self._closables.append(contactor)
        interlock = SafetyInterlock(contactor)
        if c.rcd is not None:
            self._watch_rcd(c.rcd, c.id, [interlock])
        return ConnectorHardware(interlock, self.pilot(c), self.meter(c), self.lock(c),
                                 phase_switch=self.phase_switch(c))

    def connectors(self) -> dict[int, ConnectorHardware]:
        built = {c.id: self.connector(c) for c in self._config.connectors}
        if self._config.rcd is not None:  # one RCD for the whole charger
            self._watch_rcd(self._config.rcd, 0, [hw.interlock for hw in built.values()])
        return built

    def pilot(self, c: ConnectorConfig) -> ControlPilot:
        """The connector's control pilot; a lost board or ADC is reported as InternalError
        (see agent.core.faults.PILOT_LOST)."""
        failed = self._reporter(c.id, ErrorCode.INTERNAL_ERROR.value)
        p = c.pilot
        if p.driver == "pwm":
            return self._pwm_pilot(c, failed)
        from hal.pilot_evse_board import EvseBoardPilot

        assert p.bus is not None
        return EvseBoardPilot(self.bus(p.bus), p.device_id, p.poll_interval, on_failure=failed)

    def _pwm_pilot(self, c: ConnectorConfig,
                   failed: Callable[[BaseException | None], None]) -> ControlPilot:
        from hal.gpio import mcp3008
        from hal.pilot_classifier import PilotClassifier, PilotThresholds
        from hal.pilot_pwm import PilotAdc, PwmPilot
        from hal.pwm_sysfs import SysfsPwm

        p = c.pilot
        thresholds = PilotThresholds(
            a_b=p.threshold_a_b, b_c=p.threshold_b_c, c_d=p.threshold_c_d, d_e=p.threshold_d_e,
            e_f=p.threshold_e_f, diode_low=p.diode_low, hysteresis=p.hysteresis)
        adc = mcp3008(p.adc_channel, port=p.adc_port, device=p.adc_device,
                      pin_factory=self.pin_factory)
        pwm = SysfsPwm(p.pwm_chip, p.pwm_channel, inverted=p.pwm_inverted, root=p.pwm_root)
        return PwmPilot(pwm,
                        PilotAdc(adc, low_v=p.adc_low_v, high_v=p.adc_high_v),
                        classifier=PilotClassifier(thresholds), interval=p.poll_interval,
                        on_failure=failed)

    def meter(self, c: ConnectorConfig) -> EnergyMeter:
        """The connector's meter, behind the plausibility check unless it is switched off."""
        from hal.meter_maps import register_map
        from hal.meter_modbus import ModbusEnergyMeter

        meter: EnergyMeter = ModbusEnergyMeter(self.bus(c.meter.bus), c.meter.device_id,
                                               register_map(c.meter.driver.replace("-", "_")))
        if not c.meter.plausibility:
            return meter
        from hal.meter_plausibility import MeterLimits, PlausibleMeter

        limits = MeterLimits(phases=c.phases, max_current_a=float(c.max_current))
        return PlausibleMeter(meter, limits, attempts=PLAUSIBILITY_ATTEMPTS,
                              name=f"connector {c.id} meter")

    def lock(self, c: ConnectorConfig) -> ConnectorLock | None:
        """The connector's lock, or None for a fixed cable."""
        if c.lock is None:
            return None
        from hal.lock_gpio import GpioConnectorLock

        k = c.lock
        lock = GpioConnectorLock(k.pin, k.unlock_pin, k.feedback_pin, active_high=k.active_high,
                                 feedback_active_high=k.feedback_active_high, pulse_s=k.pulse,
                                 timeout_s=k.timeout, pin_factory=self.pin_factory)
        self._closables.append(lock)
        return lock

    def phase_switch(self, c: ConnectorConfig) -> PhaseSwitch | None:
        """The connector's 1<->3 phase relay, or None; it starts in its default phases."""
        if c.phase_switch is None:
            return None
        from hal.phase_switch_gpio import GpioPhaseSwitch

        k = c.phase_switch
        relay = GpioPhaseSwitch(k.pin, active_high=k.active_high,
                                default_phases=k.default_phases, feedback_pin=k.feedback_pin,
                                feedback_active_high=k.feedback_active_high,
                                pin_factory=self.pin_factory)
        self._closables.append(relay)
        return relay

    def indicator(self) -> Indicator | None:
        """The LEDs/buzzer of ``[indicator]``, or None."""
        i = self._config.indicator
        if i is None:
            return None
        from hal.indicator_gpio import GpioIndicator

        rgb = None
        if i.red_pin is not None and i.green_pin is not None and i.blue_pin is not None:
            rgb = (i.red_pin, i.green_pin, i.blue_pin)
        indicator = GpioIndicator(led_pin=i.led_pin, rgb_pins=rgb, buzzer_pin=i.buzzer_pin,
                                  active_high=i.active_high, pin_factory=self.pin_factory)
        self._closables.append(indicator)
        return indicator

    def watch_tamper(self, changed: Callable[[bool], None]) -> bool | None:
        """Watch ``[tamper]``'s switch: ``changed(opened)`` on gpiozero's thread at every
        edge. Returns whether the enclosure is open now, None without a tamper input."""
        t = self._config.tamper
        if t is None:
            return None
        from hal.tamper_gpio import GpioTamperInput

        switch = GpioTamperInput(t.pin, active_high=t.active_high,
                                 pin_factory=self.pin_factory)
        self._closables.append(switch)
        switch.watch(changed)
        return switch.opened

    def tripped(self) -> list[int]:
        """Connectors (0 = all) whose RCD is tripped now: reported once the core runs."""
        return [cid for cid, rcd in self._rcds if rcd.tripped]

    def _watch_rcd(self, r: RcdConfig, cid: int, interlocks: list[SafetyInterlock]) -> None:
        from hal.rcd_gpio import GpioRcdInput

        rcd = GpioRcdInput(r.pin, active_high=r.active_high, pin_factory=self.pin_factory)
        self._closables.append(rcd)
        report = self._reporter(cid, ErrorCode.GROUND_FAILURE.value)

        def changed(tripped: bool) -> None:  # gpiozero's thread: open first, then report
            for interlock in interlocks:
                interlock.trip(tripped)
            report(DeviceError("residual current device tripped") if tripped else None)

        rcd.watch(changed)
        if rcd.tripped:
            for interlock in interlocks:
                interlock.trip(True)
        self._rcds.append((cid, rcd))

    def _reporter(self, cid: int, code: str) -> Callable[[BaseException | None], None]:
        def failed(error: BaseException | None) -> None:
            sink = self.on_device_failure
            if sink is not None:
                sink(cid, code, error)

        return failed

    def reader(self, on_failure: Callable[[BaseException | None], None] | None = None,
               ) -> TokenReader | None:
        """The token reader; ``on_failure(error)`` when it is lost, ``(None)`` when back
        (default: ReaderFailure on connector 0 through :attr:`on_device_failure`)."""
        r = self._config.reader
        if r.driver == "none":
            return None
        on_failure = on_failure or self._reporter(0, ErrorCode.READER_FAILURE.value)
        assert r.port is not None
        if r.driver == "pn532":
            from hal.reader_pn532 import Pn532Reader

            return Pn532Reader(r.port, r.baudrate or 115200, r.byte_order,  # type: ignore[arg-type]
                               on_failure=on_failure)
        from hal.reader_rdm6300 import Rdm6300Reader

        return Rdm6300Reader(r.port, r.baudrate or 9600, r.id_format,  # type: ignore[arg-type]
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
        self._rcds = []
        factory, self._factory = self._factory, _UNSET
        if factory is not _UNSET and factory is not None:
            with contextlib.suppress(Exception):
                factory.close()
