"""Fault verbs of the bench API change what the emulators answer on the real wires.

Each fault is switched on and off through the bench API (twice each way: idempotent) while a
real HAL driver talks to the simulated world over the Modbus bus, the pin bus or the reader's
pseudo-terminal, exactly as the agent would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from evsim import cli
from evsim.bench_client import BenchClient, BenchError
from evsim.pins import WorldPinFactory
from evsim.world_config import Address, ConnectorConfig, WorldConfig
from evsim.world_server import WorldServer
from hal.contactor_gpio import GpioContactor
from hal.errors import LockError, MeterError, ReaderError
from hal.gpio import digital_input
from hal.lock_gpio import GpioConnectorLock
from hal.meter_maps import register_map
from hal.meter_modbus import ModbusEnergyMeter
from hal.meter_plausibility import PlausibleMeter
from hal.modbus_bus import ModbusBus
from hal.pilot_evse_board import EvseBoardPilot
from hal.reader_rdm6300 import Rdm6300Reader
from hal.roles import PilotState
from tests.contract.recorder import Recorder

T = TypeVar("T")
ANY_PORT = Address("127.0.0.1", 0)


async def eventually(probe: Callable[[], T], within: float = 5.0) -> T:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = await asyncio.to_thread(probe)
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {within} s (last: {value!r})")
        await asyncio.sleep(0.02)


async def call(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.to_thread(fn, *args)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[WorldServer]:
    config = WorldConfig(
        bench=ANY_PORT, pin_bus=ANY_PORT, bus=ANY_PORT, reader_link=tmp_path / "reader",
        connectors=[ConnectorConfig.for_id(1), ConnectorConfig.for_id(2)],
    )
    async with WorldServer(config) as running:
        yield running


@pytest.fixture
def bench(server: WorldServer) -> BenchClient:
    return BenchClient(server.bench_url)


@pytest.fixture
def bus(server: WorldServer) -> Iterator[ModbusBus]:
    bus = ModbusBus.rtu(server.bus_port, timeout=0.2, retries=0)
    yield bus
    bus.close()


@pytest.fixture
def pins(server: WorldServer) -> Iterator[WorldPinFactory]:
    factory = WorldPinFactory(str(server.pin_bus_address))
    yield factory
    factory.close()


async def switch(bench: BenchClient, connector: int, fault: str, active: bool) -> dict[str, Any]:
    """Apply the fault verb twice: the second time must change nothing and still succeed."""
    first = await call(bench.fault, connector, fault, active)
    again = await call(bench.fault, connector, fault, active)
    assert again["faults"] == first["faults"]
    assert (fault in first["faults"]) is active
    return first


def sdm630(bus: ModbusBus) -> ModbusEnergyMeter:
    return ModbusEnergyMeter(bus, 2, register_map("sdm630"))


# -- state and errors --------------------------------------------------------------------------


async def test_state_lists_active_faults(bench: BenchClient) -> None:
    state = await call(bench.state)
    assert state["faults"] == []
    assert all(c["faults"] == [] for c in state["connectors"])
    await switch(bench, 1, "meter_offline", True)
    await switch(bench, 1, "pilot_e", True)
    await switch(bench, 0, "reader_unplugged", True)
    state = await call(bench.state)
    assert state["faults"] == ["reader_unplugged"]
    assert state["reader"]["plugged"] is False
    assert state["connectors"][0]["faults"] == ["meter_offline", "pilot_e"]
    assert state["connectors"][1]["faults"] == []
    await switch(bench, 1, "pilot_e", False)
    await switch(bench, 0, "reader_unplugged", False)
    assert (await call(bench.state))["faults"] == []


@pytest.mark.parametrize(
    ("connector", "body", "status", "field"),
    [
        (1, {"fault": "gremlins", "active": True}, 400, "fault"),
        (1, {"fault": "meter_offline", "active": "yes"}, 400, "active"),
        (1, {"fault": "meter_offline"}, 400, "active"),
        (1, {"fault": "reader_unplugged", "active": True}, 400, "fault"),
        (0, {"fault": "meter_offline", "active": True}, 400, "fault"),
        (9, {"fault": "meter_offline", "active": True}, 404, None),
        (2, {"fault": "lock_failure", "active": True}, 409, None),  # connector 2: no lock
        (2, {"fault": "rcd_trip", "active": True}, 409, None),  # nor an RCD input
    ],
)
async def test_bad_fault_requests(
    bench: BenchClient, connector: int, body: dict[str, Any], status: int, field: str | None
) -> None:
    with pytest.raises(BenchError) as refused:
        await call(bench._request, "POST", f"/api/connectors/{connector}/fault", body)
    assert (refused.value.status, refused.value.field) == (status, field)


async def test_welded_and_stuck_open_exclude_each_other(bench: BenchClient) -> None:
    await switch(bench, 1, "contactor_welded", True)
    with pytest.raises(BenchError) as refused:
        await call(bench.fault, 1, "contactor_stuck_open", True)
    assert refused.value.status == 409
    await switch(bench, 1, "contactor_stuck_open", False)  # not active: a no-op
    assert (await call(bench.connector, 1))["contactor"]["fault"] == "welded"
    await switch(bench, 1, "contactor_welded", False)
    assert (await call(bench.connector, 1))["contactor"]["fault"] is None


async def test_cli_switches_faults(server: WorldServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert await call(cli.main, ["bench", "--url", server.bench_url, "fault", "1",
                                 "meter_garbage", "on"]) == 0
    assert json.loads(capsys.readouterr().out)["faults"] == ["meter_garbage"]
    assert await call(cli.main, ["bench", "--url", server.bench_url, "fault", "1",
                                 "meter_garbage", "off"]) == 0
    assert json.loads(capsys.readouterr().out)["faults"] == []


# -- the meter ---------------------------------------------------------------------------------


async def test_meter_offline_makes_reads_fail_until_cleared(
    bench: BenchClient, bus: ModbusBus
) -> None:
    meter = sdm630(bus)
    assert (await meter.read()).energy_wh == pytest.approx(1_234_500.0)
    await switch(bench, 1, "meter_offline", True)
    with pytest.raises(MeterError):
        await meter.read()
    other = ModbusEnergyMeter(bus, 4, register_map("sdm630"))  # connector 2's meter answers
    assert (await other.read()).energy_wh > 0
    await switch(bench, 1, "meter_offline", False)
    assert (await meter.read()).energy_wh == pytest.approx(1_234_500.0)


async def test_meter_garbage_answers_with_modbus_exceptions(
    bench: BenchClient, bus: ModbusBus
) -> None:
    meter = sdm630(bus)
    await switch(bench, 1, "meter_garbage", True)
    with pytest.raises(MeterError):
        await meter.read()
    await switch(bench, 1, "meter_garbage", False)
    await meter.read()


async def test_meter_implausible_is_caught_by_the_plausibility_checks(
    bench: BenchClient, bus: ModbusBus
) -> None:
    meter = PlausibleMeter(sdm630(bus), retry_delay=0.01)
    good = await meter.read()
    await switch(bench, 1, "meter_implausible", True)
    raw = await sdm630(bus).read()  # the wire carries it; the plain driver cannot tell
    assert raw.voltage_v == (0.0, 0.0, 0.0) and raw.energy_wh < good.energy_wh
    with pytest.raises(MeterError, match="3 bad reads in a row"):
        await meter.read()
    await switch(bench, 1, "meter_implausible", False)
    assert (await meter.read()).energy_wh == pytest.approx(good.energy_wh)


# -- the contactor -----------------------------------------------------------------------------


@pytest.fixture
async def contactor(pins: WorldPinFactory) -> AsyncIterator[GpioContactor]:
    driver = GpioContactor(17, feedback_pin=27, pin_factory=pins)
    await eventually(lambda: pins.connected)
    yield driver
    driver.close()


async def test_welded_contactor_keeps_the_feedback_closed(
    bench: BenchClient, contactor: GpioContactor
) -> None:
    contactor.set_closed(True)
    await eventually(lambda: contactor.feedback_closed)
    await switch(bench, 1, "contactor_welded", True)
    contactor.set_closed(False)
    await eventually(lambda: not bench.connector(1)["contactor"]["relay_closed"])
    await asyncio.sleep(0.2)  # far beyond the contacts' 20 ms
    assert contactor.feedback_closed is True
    await switch(bench, 1, "contactor_welded", False)
    await eventually(lambda: contactor.feedback_closed is False)


async def test_stuck_open_contactor_never_closes(
    bench: BenchClient, contactor: GpioContactor
) -> None:
    await switch(bench, 1, "contactor_stuck_open", True)
    contactor.set_closed(True)
    await eventually(lambda: bench.connector(1)["contactor"]["relay_closed"])
    await asyncio.sleep(0.2)
    assert contactor.feedback_closed is False
    await switch(bench, 1, "contactor_stuck_open", False)
    await eventually(lambda: contactor.feedback_closed)


# -- the pilot (EVSE board) ---------------------------------------------------------------------


@pytest.fixture
async def pilot(bus: ModbusBus) -> AsyncIterator[tuple[EvseBoardPilot, Recorder[PilotState],
                                                       Recorder[BaseException | None]]]:
    states: Recorder[PilotState] = Recorder()
    failures: Recorder[BaseException | None] = Recorder()
    driver = EvseBoardPilot(bus, 1, poll_interval=0.02, failure_threshold=2,
                            on_failure=failures)
    await driver.start(states)
    yield driver, states, failures
    await driver.aclose()


@pytest.mark.parametrize("fault", ["pilot_e", "pilot_f", "diode_failure"])
async def test_pilot_faults_show_as_board_failure(
    bench: BenchClient, pilot: Any, fault: str
) -> None:
    _, states, _ = pilot
    await call(bench.plug, 1)
    await states.until(lambda v: v[-1:] == [PilotState.B])
    answer = await switch(bench, 1, fault, True)
    assert answer["pilot"] == "F"
    await states.until(lambda v: v[-1:] == [PilotState.F])
    await switch(bench, 1, fault, False)
    await states.until(lambda v: v[-1:] == [PilotState.B])


async def test_evse_board_offline_is_a_lost_pilot(bench: BenchClient, pilot: Any) -> None:
    _, states, failures = pilot
    await states.until_value(PilotState.A)
    await switch(bench, 1, "evse_board_offline", True)
    await states.until(lambda v: v[-1:] == [PilotState.E])
    await failures.until(lambda v: len(v) == 1)
    await switch(bench, 1, "evse_board_offline", False)
    await failures.until(lambda v: v[-1:] == [None])
    await states.until(lambda v: v[-1:] == [PilotState.A])


# -- the reader --------------------------------------------------------------------------------


async def test_reader_unplugged_is_a_reader_failure_until_replugged(
    server: WorldServer, bench: BenchClient
) -> None:
    tokens: Recorder[str] = Recorder()
    failures: Recorder[BaseException | None] = Recorder()
    reader = Rdm6300Reader(server.reader_port, on_failure=failures, reopen_interval=0.05)
    try:
        await reader.start(tokens)
        await switch(bench, 0, "reader_unplugged", True)
        assert isinstance((await failures.until(lambda v: len(v) == 1))[0], ReaderError)
        with pytest.raises(BenchError) as refused:
            await call(bench.present_card, "00A1B2C3")
        assert refused.value.status == 409
        await switch(bench, 0, "reader_unplugged", False)
        await failures.until(lambda v: v[-1:] == [None])
        await eventually(lambda: reader.is_open)
        await call(bench.present_card, "00A1B2C3")
        assert await tokens.until_value("00A1B2C3")
    finally:
        await reader.aclose()


# -- lock and RCD (pin bus) --------------------------------------------------------------------


async def test_lock_failure_makes_the_lock_time_out(
    bench: BenchClient, pins: WorldPinFactory
) -> None:
    lock = GpioConnectorLock(20, 21, 16, pulse_s=0.05, timeout_s=1.0, pin_factory=pins)
    try:
        await eventually(lambda: pins.connected)
        await lock.lock()
        assert lock.locked and (await call(bench.connector, 1))["lock"]["locked"]
        await switch(bench, 1, "lock_failure", True)
        with pytest.raises(LockError):
            await lock.unlock()
        assert (await call(bench.connector, 1))["lock"]["locked"] is True
        await switch(bench, 1, "lock_failure", False)
        await lock.unlock()
        assert lock.locked is False
    finally:
        lock.close()


async def test_rcd_trip_drives_the_input_and_cuts_the_power(
    server: WorldServer, bench: BenchClient, pins: WorldPinFactory
) -> None:
    rcd = digital_input(26, pin_factory=pins)
    relay = GpioContactor(17, pin_factory=pins)
    try:
        await eventually(lambda: pins.connected)
        assert not rcd.is_active
        await call(bench.plug, 1)
        await call(bench.ev_state, 1, "C")
        server.world.evse_board(1).configured_current = 16
        relay.set_closed(True)
        await eventually(lambda: bench.connector(1)["meter"]["power_w"] > 0)
        answer = await switch(bench, 1, "rcd_trip", True)
        assert answer["rcd"] == {"tripped": True}
        await eventually(lambda: rcd.is_active)
        await eventually(lambda: bench.connector(1)["meter"]["power_w"] == 0)
        await switch(bench, 1, "rcd_trip", False)
        await eventually(lambda: not rcd.is_active)
        await eventually(lambda: bench.connector(1)["meter"]["power_w"] > 0)
    finally:
        with contextlib.suppress(Exception):
            relay.close()
        rcd.close()
