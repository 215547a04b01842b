"""The agent's PwmPilot driver against a world whose connector 1 has a PWM pilot: the driver
writes the world's sysfs PWM tree and reads the pilot wire through gpiozero's MCP3008 on the
evsim pin factory (hardware SPI0 CE0 of the simulated Pi), as the agent does on a site."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from evsim.bench_client import BenchClient
from evsim.pins import WorldPinFactory
from evsim.world_config import Address, ConnectorConfig, WorldConfig, WorldConfigError
from evsim.world_server import WorldServer
from hal.gpio import mcp3008
from hal.pilot_pwm import PilotAdc, PwmPilot
from hal.pwm_sysfs import SysfsPwm
from hal.roles import PilotState
from tests.contract.recorder import Recorder

ANY_PORT = Address("127.0.0.1", 0)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[WorldServer]:
    config = WorldConfig(
        bench=ANY_PORT, pin_bus=ANY_PORT, bus=ANY_PORT, reader_link=None,
        pwm_root=tmp_path / "pwm", connectors=[ConnectorConfig.for_id(1, pilot="pwm")],
    )
    async with WorldServer(config) as running:
        yield running


@pytest.fixture
async def pins(server: WorldServer) -> AsyncIterator[WorldPinFactory]:
    factory = WorldPinFactory(str(server.pin_bus_address))
    assert await asyncio.to_thread(factory.wait_connected, 2.0)  # the world serves on this loop
    yield factory
    factory.close()


@pytest.fixture
async def pilot(server: WorldServer, pins: WorldPinFactory) -> AsyncIterator[PwmPilot]:
    assert server.config.pwm_root is not None
    driver = PwmPilot(SysfsPwm(0, 0, root=server.config.pwm_root),
                      PilotAdc(mcp3008(0, pin_factory=pins)), interval=0.02,
                      change_interval=0.0)
    yield driver
    await driver.aclose()


async def bench(server: WorldServer, verb: str, *args: Any) -> Any:
    return await asyncio.to_thread(getattr(BenchClient(server.bench_url), verb), *args)


async def until_state(server: WorldServer, wanted: Callable[[dict[str, Any]], bool],
                      within: float = 3.0) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + within
    while not wanted(state := await bench(server, "connector", 1)):
        assert asyncio.get_running_loop().time() < deadline, f"not reached: {state}"
        await asyncio.sleep(0.02)
    return state


async def test_the_driver_reads_the_ev_and_the_world_reads_the_offer(
    server: WorldServer, pilot: PwmPilot
) -> None:
    states: Recorder[PilotState] = Recorder()
    await pilot.start(states)
    assert await states.until_value(PilotState.A)
    await until_state(server, lambda s: s["pwm"] == {"enabled": True, "duty": 1.0})

    await bench(server, "plug", 1)
    assert await states.until_value(PilotState.B)
    await pilot.set_offered_current(10)
    state = await until_state(server, lambda s: s["offered_current_a"] > 0)
    assert state["offered_current_a"] == pytest.approx(10, abs=0.001)
    assert state["pwm"]["duty"] == pytest.approx(10 / 0.6 / 100, abs=1e-6)
    await bench(server, "ev_state", 1, "C")
    assert await states.until_value(PilotState.C)
    assert pilot.diode_seen

    await bench(server, "fault", 1, "pilot_e", True)
    assert await states.until_value(PilotState.E)
    await bench(server, "fault", 1, "pilot_e", False)
    await bench(server, "unplug", 1)
    await states.until(lambda values: values[-1:] == [PilotState.A])
    assert PilotState.F not in states.values  # no spurious F on any duty change


async def test_a_missing_diode_is_f_once_the_pwm_runs(
    server: WorldServer, pilot: PwmPilot
) -> None:
    states: Recorder[PilotState] = Recorder()
    await pilot.start(states)
    await bench(server, "fault", 1, "diode_failure", True)
    await bench(server, "plug", 1)
    assert await states.until_value(PilotState.B)  # 100 %: no low plateau to check yet
    await pilot.set_offered_current(16)
    assert await states.until_value(PilotState.F)
    assert not pilot.diode_seen


async def test_closing_the_driver_leaves_the_pilot_at_minus_12_v(
    server: WorldServer, pilot: PwmPilot
) -> None:
    await pilot.start(Recorder())
    await until_state(server, lambda s: s["pilot"] == "A")
    await pilot.aclose()
    state = await until_state(server, lambda s: s["pilot"] == "F")
    assert state["pwm"] == {"enabled": False, "duty": 0.0}


def test_a_pwm_pilot_needs_the_sysfs_tree_and_its_own_channels() -> None:
    with pytest.raises(WorldConfigError, match="pwm_root"):
        WorldConfig(connectors=[ConnectorConfig.for_id(1, pilot="pwm")]).validate()
    twins = [ConnectorConfig.for_id(i, pilot="pwm", adc_channel=0) for i in (1, 2)]
    with pytest.raises(WorldConfigError, match="its own"):
        WorldConfig(pwm_root=Path("/tmp/x"), connectors=twins).validate()
