"""The simulated world's identity: an agent drives only the world wired to its charger id, and
``evsim world`` says in one line which port another world already holds."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.app import Agent
from agent.config import parse_config
from evsim.pins import WorldPinFactory
from evsim.site import CHARGER_ID, SimSite, SiteOptions
from evsim.world_config import Address, WorldConfig
from evsim.world_server import WorldServer
from hal.errors import WrongSite
from hal.gpio import claim_site, digital_output
from tests.integration.agent_process import AgentProcess

RELAY = 17  # connector 1's relay in the default world
EVSIM = str(Path(sys.executable).with_name("evsim"))  # the console script


@pytest.fixture
async def world() -> AsyncIterator[WorldServer]:
    config = WorldConfig(site="SITE-A", bench=Address("127.0.0.1", 0),
                         pin_bus=Address("127.0.0.1", 0), bus=Address("127.0.0.1", 0),
                         bus_transport="tcp", reader_link=None)
    async with WorldServer(config) as server:
        yield server


async def relay_closed(server: WorldServer, within: float = 1.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if server.world.connector_state(1)["contactor"]["relay_closed"]:
            return True
        await asyncio.sleep(0.02)
    return False


async def test_a_factory_of_another_site_refuses_the_world_and_drives_nothing(
        world: WorldServer) -> None:
    factory = WorldPinFactory(str(world.pin_bus_address))
    try:
        with pytest.raises(WrongSite, match=r"site 'SITE-A', not this charger's 'SITE-B'"):
            await asyncio.to_thread(claim_site, factory, "SITE-B")
        relay = digital_output(RELAY, pin_factory=factory)
        relay.on()
        assert relay.value == 1  # locally the pin works, as without any world
        assert not await relay_closed(world)
    finally:
        await asyncio.to_thread(factory.close)


async def test_a_factory_of_the_same_site_drives_the_world(world: WorldServer) -> None:
    factory = WorldPinFactory(str(world.pin_bus_address))
    try:
        await asyncio.to_thread(claim_site, factory, "SITE-A")
        relay = digital_output(RELAY, pin_factory=factory)  # kept: gpiozero closes it when freed
        relay.on()
        assert await relay_closed(world)
    finally:
        await asyncio.to_thread(factory.close)


def test_without_a_world_the_check_lets_the_factory_keep_retrying() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        factory = WorldPinFactory(f"127.0.0.1:{holder.getsockname()[1]}")
        try:
            claim_site(factory, "SITE-A", timeout=2.0)  # no world answered: nothing to refuse
        finally:
            factory.close()


async def test_the_agent_refuses_to_run_against_another_chargers_world(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with SimSite(tmp_path, SiteOptions()) as site:
        monkeypatch.setenv("EVSIM_PIN_BUS", site.pin_bus)
        agent = AgentProcess(site)
        agent.config.write_text(agent.config.read_text().replace(
            f'id = "{CHARGER_ID}"', 'id = "SIM-0002"'))
        await agent.start()
        assert agent.process is not None
        code = await asyncio.wait_for(agent.process.wait(), 60)
        log = agent.logs[-1].read_text()
        assert code == 2, log
        assert f"the simulated world on the pin bus is site '{CHARGER_ID}', not this " \
            "charger's 'SIM-0002'" in log
        assert not site.world_server.world.connector_state(1)["contactor"]["relay_closed"]


async def test_an_agent_on_the_worlds_own_event_loop_checks_the_site_too(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests and the demo serve the world on the agent's loop: the site check must wait
    for the world's greeting off that loop, or it times out and lets any world through."""
    async with SimSite(tmp_path, SiteOptions()) as site:
        monkeypatch.setenv("EVSIM_PIN_BUS", site.pin_bus)
        config = parse_config(site.agent_config().replace(
            f'id = "{CHARGER_ID}"', 'id = "SIM-0002"'), "site")
        agent = Agent(config, drain_seconds=1.0)
        with pytest.raises(WrongSite, match=f"site '{CHARGER_ID}', not this charger's"):
            await agent.start()
        assert not site.world_server.world.connector_state(1)["contactor"]["relay_closed"]


async def test_evsim_world_names_the_taken_port_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        config = tmp_path / "world.toml"
        config.write_text(f'reader_link = ""\n[bench]\nlisten = "127.0.0.1:0"\n'
                          f'[pin_bus]\nlisten = "127.0.0.1:{port}"\n'
                          '[bus]\ntransport = "tcp"\nlisten = "127.0.0.1:0"\n')
        result = await asyncio.to_thread(
            subprocess.run, [EVSIM, "world", "--config", str(config),
                             "--log-level", "ERROR"],
            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"evsim world: the pin bus address 127.0.0.1:{port} is already in use (another "
        "evsim world?): stop it, or set another [pin_bus] listen")
