"""The link stays alive: a dead peer is found by WebSocket pings, and what was in flight is
resolved, not left hanging.

A TCP proxy on loopback sits between the agent and the CSMS. Cutting it "silently" (bytes are
swallowed, no FIN, no RST) is what a dead NAT, a pulled uplink or a frozen CSMS looks like to
the agent: the socket stays open and only the pings can tell.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from agent.app import Agent
from agent.config import parse_config
from agent.frame_log import EVENT
from evsim.site import SimSite, SiteOptions

from .conformance.helpers import booted, status
from .conftest import Bench

UNKNOWN = "0A0B0C0D"


class SilentProxy:
    """Forwards TCP both ways until ``cut()``; then swallows every byte in both directions."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self.cut_off = False
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    async def __aenter__(self) -> SilentProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def cut(self) -> None:
        self.cut_off = True

    def mend(self) -> None:
        self.cut_off = False

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut_off:  # a dead path: the connection never gets anywhere
            self._spawn(self._swallow(reader, writer))
            return
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        self._spawn(self._pump(reader, up_writer))
        self._spawn(self._pump(up_reader, writer))

    def _spawn(self, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                if not self.cut_off:
                    writer.write(data)
                    await writer.drain()
        with contextlib.suppress(ConnectionError, RuntimeError):
            writer.close()

    async def _swallow(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):
                pass
        writer.close()


@pytest.fixture
def site_options() -> SiteOptions:
    return SiteOptions(sample_interval=1, extra_ocpp="allow_offline_tx_for_unknown_id = true")


@pytest.fixture
async def proxied_agent(site: SimSite) -> AsyncIterator[tuple[Agent, SilentProxy]]:
    url = urlsplit(site.csms.url)
    assert url.hostname is not None and url.port is not None
    async with SilentProxy(url.hostname, url.port) as proxy:
        text = site.agent_config().replace(f":{url.port}/", f":{proxy.port}/")
        text = text.replace("[csms]\n", "[csms]\nping_interval = 1\n")
        agent = Agent(parse_config(text, "site"), drain_seconds=2.0)
        await agent.start()
        try:
            yield agent, proxy
        finally:
            await agent.stop()
    assert site.csms.violations == []


async def until(predicate: object, within: float = 15.0) -> None:
    """Poll ``predicate`` (a callable) until true; a generous bound so a hang fails."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():  # type: ignore[operator]
        if loop.time() > deadline:
            raise TimeoutError("condition never became true")
        await asyncio.sleep(0.05)


async def test_a_silent_peer_is_found_by_pings_and_the_link_comes_back(
    site: SimSite, proxied_agent: tuple[Agent, SilentProxy]
) -> None:
    agent, proxy = proxied_agent
    await booted(site)
    assert agent.link.up
    proxy.cut()
    await until(lambda: not agent.link.up)  # no FIN, no RST: only a missing pong tells
    statuses_before = len(site.csms.calls("StatusNotification"))
    proxy.mend()
    await until(lambda: agent.link.up)
    # Registered already: the agent reports its connectors again rather than re-booting.
    await site.csms.wait_for(
        lambda: len(site.csms.calls("StatusNotification")) > statuses_before)
    assert len(site.csms.calls("BootNotification")) == 1
    assert agent.frames is not None  # the message log tells the installer when it dropped
    events = [r.text for r in agent.frames.query() if r.direction == EVENT]
    assert events == ["link up", "link down", "link up"]


async def test_an_authorize_in_flight_when_the_link_dies_is_decided_offline(
    site: SimSite, bench: Bench, proxied_agent: tuple[Agent, SilentProxy]
) -> None:
    agent, proxy = proxied_agent
    await booted(site)
    await bench("plug", 1)
    await status(site, "Preparing")
    await bench("ev_state", 1, "C")
    proxy.cut()
    await bench("present_card", UNKNOWN)  # its Authorize goes into the void
    # The call is resolved when the pings find the dead link, well before the Authorize
    # timeout; AllowOfflineTxForUnknownId lets the session start offline.
    await bench.until_relay(True, within=15.0)
    assert not agent.link.up
    proxy.mend()
    await site.csms.wait_for(lambda: site.csms.calls("StartTransaction"), within=15.0)
    (start,) = site.csms.calls("StartTransaction")
    assert start.payload["idTag"] == UNKNOWN
