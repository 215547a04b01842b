"""ModbusEnergyMeter against MeterEmulator over every emulated bus transport and every map."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from evsim.modbus_devices import BusServer, MeterEmulator, serve_bus
from hal.errors import MeterError
from hal.meter_maps import REGISTER_MAPS
from hal.meter_modbus import ModbusEnergyMeter
from hal.modbus_bus import ModbusBus
from hal.roles import EnergyMeter

MODELS = sorted(REGISTER_MAPS)
TRANSPORTS = ["rtu-tcp", "tcp", "pty"]


class Line:
    """One emulated bus with one meter of every model (ids 10, 11, ...)."""

    def __init__(self, server: BusServer, meters: dict[str, MeterEmulator]) -> None:
        self.server = server
        self.meters = meters
        self.bus = server.client_bus(timeout=0.2, retries=0)

    def meter(self, model: str) -> ModbusEnergyMeter:
        emulator = self.meters[model]
        return ModbusEnergyMeter(self.bus, emulator.device_id, emulator.register_map)


@pytest.fixture(params=TRANSPORTS)
async def line(request: pytest.FixtureRequest) -> AsyncIterator[Line]:
    meters = {m: MeterEmulator(m, device_id=10 + i) for i, m in enumerate(MODELS)}
    server = await serve_bus(list(meters.values()), transport=request.param)
    line = Line(server, meters)
    yield line
    line.bus.close()
    await server.close()


def set_world(emulator: MeterEmulator) -> None:
    emulator.energy_kwh = 1234.5
    emulator.power_w = 11040.0
    emulator.voltage_v = (230.1, 231.2, 229.9)
    emulator.current_a = (16.0, 15.5, 16.2)
    emulator.frequency_hz = 50.0


@pytest.mark.parametrize("model", MODELS)
async def test_values_round_trip(line: Line, model: str) -> None:
    emulator = line.meters[model]
    set_world(emulator)
    reading = await line.meter(model).read()
    assert reading.energy_wh == pytest.approx(1_234_500.0, rel=1e-6)
    assert reading.power_w == pytest.approx(11040.0, rel=1e-6)
    m = emulator.register_map
    if m.voltage is None:
        assert reading.voltage_v is None and reading.current_a is None
    elif m.voltage[1] is None:  # single phase
        assert reading.voltage_v == pytest.approx((230.1, 0.0, 0.0), abs=0.01)
        assert reading.current_a == pytest.approx((16.0, 0.0, 0.0), abs=0.01)
    else:
        assert reading.voltage_v == pytest.approx((230.1, 231.2, 229.9), abs=0.01)
        assert reading.current_a == pytest.approx((16.0, 15.5, 16.2), abs=0.01)
    if m.frequency is None:
        assert reading.frequency_hz is None
    else:
        assert reading.frequency_hz == pytest.approx(50.0, abs=0.01)


async def test_meter_satisfies_the_role(line: Line) -> None:
    assert isinstance(line.meter("sdm630"), EnergyMeter)


async def test_every_read_sees_live_values_in_few_requests(line: Line) -> None:
    emulator, meter = line.meters["sdm630"], line.meter("sdm630")
    emulator.energy_kwh = 1.0
    first = await meter.read()
    emulator.energy_kwh = 2.5
    before = emulator.requests
    second = await meter.read()
    assert (first.energy_wh, second.energy_wh) == pytest.approx((1000.0, 2500.0))
    assert emulator.requests - before == len(emulator.register_map.blocks()) == 2


async def test_offline_meter_raises_within_bounded_time_then_recovers(line: Line) -> None:
    emulator, meter = line.meters["sdm630"], line.meter("sdm630")
    emulator.offline = True
    started = time.monotonic()
    with pytest.raises(MeterError):
        await meter.read()
    assert time.monotonic() - started < 1.5
    emulator.offline = False
    emulator.energy_kwh = 7.0
    assert (await meter.read()).energy_wh == pytest.approx(7000.0)


async def test_exception_response_raises_meter_error(line: Line) -> None:
    line.meters["em340"].exception = True
    with pytest.raises(MeterError, match="exception"):
        await line.meter("em340").read()


async def test_other_meters_on_the_line_keep_working_when_one_is_offline(line: Line) -> None:
    line.meters["sdm630"].offline = True
    line.meters["abb_b23"].energy_kwh = 3.0
    with pytest.raises(MeterError):
        await line.meter("sdm630").read()
    assert (await line.meter("abb_b23").read()).energy_wh == pytest.approx(3000.0)


async def test_read_after_aclose_raises(line: Line) -> None:
    meter = line.meter("sdm120")
    await meter.aclose()
    await meter.aclose()
    with pytest.raises(MeterError):
        await meter.read()


async def test_closed_bus_raises_the_callers_error(line: Line) -> None:
    line.bus.close()
    line.bus.close()
    with pytest.raises(MeterError):
        await line.meter("sdm72").read()


async def test_unreachable_tcp_gateway_raises() -> None:
    bus = ModbusBus.tcp("127.0.0.1", 1, timeout=0.2, retries=0)
    try:
        with pytest.raises(MeterError):
            await ModbusEnergyMeter(bus, 1, REGISTER_MAPS["sdm630"]).read()
    finally:
        bus.close()
