"""Fixtures for whole-agent tests: a simulated site on loopback and the agent running in it.

The agent runs in the test's event loop with its real drivers; the world's devices speak
Modbus RTU, RDM6300 frames on a pty and the pin bus, and the CSMS validates every frame.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from agent.app import Agent
from agent.config import parse_config
from evsim.bench_client import BenchClient
from evsim.site import SimSite, SiteOptions


class Bench:
    """The bench control API, called off the event loop."""

    def __init__(self, url: str) -> None:
        self.client = BenchClient(url)

    async def __call__(self, verb: str, *args: Any) -> Any:
        return await asyncio.to_thread(getattr(self.client, verb), *args)

    async def connector(self, connector_id: int = 1) -> dict[str, Any]:
        state: dict[str, Any] = await asyncio.to_thread(self.client.connector, connector_id)
        return state

    async def relay_closed(self, connector_id: int = 1) -> bool:
        return bool((await self.connector(connector_id))["contactor"]["relay_closed"])

    async def until_relay(self, closed: bool, connector_id: int = 1, within: float = 5.0) -> None:
        """Wait for the world to see the relay in the given position (it crosses the pin bus)."""
        await self.until_connector(lambda s: s["contactor"]["relay_closed"] is closed,
                                   connector_id, within, f"relay never became {closed}")

    async def until_connector(self, wanted: Callable[[dict[str, Any]], bool],
                              connector_id: int = 1, within: float = 5.0,
                              what: str = "condition not met") -> dict[str, Any]:
        """Wait for the world's view of the connector to satisfy ``wanted``: what the agent
        does to its pins reaches the world over the pin bus, a moment later."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not wanted(state := await self.connector(connector_id)):
            if loop.time() > deadline:
                raise TimeoutError(f"connector {connector_id}: {what} within {within} s: {state}")
            await asyncio.sleep(0.02)
        return state


class RunningAgent(Agent):
    """The agent exactly as ``evse-agent run`` wires it, on the test's event loop."""

    def __init__(self, site: SimSite) -> None:
        super().__init__(parse_config(site.agent_config(), "site"), drain_seconds=5.0)


async def wait_status(site: SimSite, status: str, connector_id: int = 1) -> None:
    """Wait for the last StatusNotification of the connector at the OCPP 1.6 CSMS."""
    await site.csms.wait_for(lambda: site.csms.last_status(connector_id) == status)


def assert_no_violations(site: SimSite) -> None:
    """Every frame both ways kept to the schemas of the site's OCPP version."""
    assert site.server.violations == [], "the CSMS saw frames that break the OCPP schemas"
    assert site.server.sent_violations == [], "the CSMS sent frames that break them"


@pytest.fixture
def site_options() -> SiteOptions:
    return SiteOptions(sample_interval=1)


@pytest.fixture
async def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
               site_options: SiteOptions) -> AsyncIterator[SimSite]:
    async with SimSite(tmp_path, site_options) as running:
        monkeypatch.setenv("EVSIM_PIN_BUS", running.pin_bus)
        yield running


@pytest.fixture
def bench(site: SimSite) -> Bench:
    return Bench(site.bench_url)


@pytest.fixture
async def agent(site: SimSite) -> AsyncIterator[RunningAgent]:
    running = RunningAgent(site)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()
    assert_no_violations(site)


@pytest.fixture
async def start_agent(site: SimSite) -> AsyncIterator[Any]:
    """For tests that prepare the CSMS first: ``agent = await start_agent()``."""
    started: list[RunningAgent] = []

    async def start() -> RunningAgent:
        running = RunningAgent(site)
        await running.start()
        started.append(running)
        return running

    yield start
    for running in started:
        await running.stop()
    assert_no_violations(site)
