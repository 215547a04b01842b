"""The local limit against the whole agent: the sessions API's connector routes, the status
socket's ``limit`` request (``evse-agent limit``) and ``status --json``; the simulated EV's
draw follows the offer, a pause keeps the transaction, and a limit or a pause survives a
restart of the agent process, ordered or kill -9 (docs/smart-charging.md)."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agent import cli
from agent.config import parse_config
from agent.status_server import fetch_status
from evsim.site import SimSite, SiteOptions, free_port
from tests.integration.conformance.helpers import VALID, booted, charging, status

from .agent_process import AgentProcess
from .conftest import Bench, RunningAgent
from .test_sessions_api import READ, Client, api_toml
from .test_sessions_webhooks import until_answers


@pytest.fixture
def site_options() -> SiteOptions:
    return SiteOptions(sample_interval=1, extra_toml=api_toml(free_port()))


def offering(amps: float) -> Any:
    return lambda s: s["offered_current_a"] == amps


async def test_api_limit_pause_and_resume(site: SimSite, bench: Bench,
                                          agent: RunningAgent) -> None:
    api = Client(agent)
    await booted(site)
    transaction_id = await charging(site, bench)
    await bench.until_connector(offering(16), within=10)

    code, view = await api.call("PUT", "/api/v1/connectors/1/limit",
                                body={"amps": 10, "source": "hems"})
    assert code == 200 and (view["limit_amps"], view["limit_source"]) == (10, "local:hems")
    await bench.until_connector(offering(10), within=10)
    await bench.until_connector(
        lambda s: all(abs(a - 10) < 0.5 for a in s["meter"]["current_a"]), within=10)
    code, listed = await api.call("GET", "/api/v1/connectors", token=READ)
    assert code == 200
    (one,) = listed["connectors"]
    assert (one["status"], one["offered_current"], one["limit_source"]) \
        == ("Charging", 10, "local:hems")

    code, _ = await api.call("POST", "/api/v1/connectors/1/pause")
    assert code == 200
    await status(site, "SuspendedEVSE")
    await bench.until_relay(False, within=15)
    code, _ = await api.call("POST", "/api/v1/connectors/1/resume")
    assert code == 200
    await status(site, "Charging", within=15)
    assert not site.csms.calls("StopTransaction")
    assert site.csms.transactions[transaction_id].meter_stop is None

    code, view = await api.call("DELETE", "/api/v1/connectors/1/limit")
    assert code == 200 and view["limit_source"] == "hardware"


async def test_api_limit_refusals(site: SimSite, bench: Bench, agent: RunningAgent) -> None:
    api = Client(agent)
    await booted(site)
    code, _ = await api.call("PUT", "/api/v1/connectors/1/limit", token=READ, body={"amps": 8})
    assert code == 403
    code, _ = await api.call("PUT", "/api/v1/connectors/9/limit", body={"amps": 8})
    assert code == 404
    code, body = await api.call("PUT", "/api/v1/connectors/1/limit", body={"amps": 100})
    assert code == 400 and "amps" in body["error"]["details"]
    code, body = await api.call("PUT", "/api/v1/connectors/1/limit",
                                body={"amps": 8, "source": "bad source"})
    assert code == 400


async def test_cli_limit_over_the_status_socket(site: SimSite, bench: Bench,
                                                agent: RunningAgent) -> None:
    await booted(site)
    await charging(site, bench)
    socket = str(agent.status_socket)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = await asyncio.to_thread(cli.main, ["limit", "1", "8", "--source", "solar",
                                                  "--socket", socket])
    assert code == 0 and "limit 8 A (local:solar)" in out.getvalue()
    await bench.until_connector(offering(8), within=10)
    document = await asyncio.to_thread(fetch_status, socket)
    (one,) = document["connectors"]
    assert (one["offered_current"], one["limit_amps"], one["limit_source"]) \
        == (8, 8, "local:solar")
    with contextlib.redirect_stdout(io.StringIO()):
        assert await asyncio.to_thread(cli.main, ["limit", "1", "pause", "--socket", socket]) \
            == 0
    await status(site, "SuspendedEVSE")
    with contextlib.redirect_stderr(io.StringIO()):
        assert await asyncio.to_thread(cli.main, ["limit", "7", "8", "--socket", socket]) == 2


@contextlib.asynccontextmanager
async def agent_process_with_api(site: SimSite) -> AsyncIterator[tuple[AgentProcess, Client]]:
    """The agent as a child process (it can be killed) with a client of its API, both ready
    and the charger booted; stopped at the end, its log printed for a failing test."""
    config = parse_config(site.agent_config())
    assert config.api is not None
    api = Client(port=config.api.port)
    agent = AgentProcess(site)
    await agent.start()
    try:
        await until_answers(api)
        await booted(site)
        yield agent, api
    finally:
        await agent.stop()
        print(agent.tail())
    assert site.csms.violations == [], "the CSMS saw frames that break the OCPP 1.6 schemas"


async def restarted(agent: AgentProcess, api: Client, cut: str) -> None:
    """Stop the agent process (``systemctl restart``: SIGTERM; a crash: kill -9), start it
    again and wait until it is registered with the CSMS again and answers its API."""
    boots = len(agent.site.csms.calls("BootNotification"))
    if cut == "SIGTERM":
        assert await agent.terminate(within=20) == 0
    else:
        await agent.kill()
    await agent.start()
    await until_answers(api)
    await agent.site.csms.wait_for_action("BootNotification", count=boots + 1, within=20)


@pytest.mark.slow
@pytest.mark.parametrize(("cut", "change", "amps"), [
    ("SIGTERM", ("PUT", "/api/v1/connectors/1/limit", {"amps": 10, "source": "hems"}), 10),
    ("kill -9", ("PUT", "/api/v1/connectors/1/limit", {"amps": 10, "source": "hems"}), 10),
    ("kill -9", ("POST", "/api/v1/connectors/1/pause?source=hems", None), 0),
])
async def test_a_local_limit_survives_a_restart_of_the_agent_process(
        site: SimSite, bench: Bench, cut: str, change: tuple[str, str, Any],
        amps: float) -> None:
    """A home energy manager capped the charger at 10 A (or paused it); the agent restarts:
    the limit is still in force (GET /api/v1/connectors) and an EV that charges afterwards is
    offered 10 A on the pilot and draws 10 A (or stays paused, SuspendedEVSE, contactor
    open) until the limit is cleared."""
    async with agent_process_with_api(site) as (agent, api):
        method, path, body = change
        code, view = await api.call(method, path, body=body)
        assert code == 200 and view["local_limit"] == {"amps": amps, "source": "hems"}
        await restarted(agent, api, cut)

        code, listed = await api.call("GET", "/api/v1/connectors", token=READ)
        assert code == 200
        (one,) = listed["connectors"]
        assert (one["limit_amps"], one["limit_source"], one["local_limit"]) == (
            amps, "local:hems", {"amps": amps, "source": "hems"})
        await bench("plug", 1)
        await status(site, "Preparing")
        await bench("ev_state", 1, "C")
        await bench("present_card", VALID)
        if amps:
            await status(site, "Charging")
            await bench.until_connector(offering(amps), within=10)
            await bench.until_connector(
                lambda s: all(abs(a - amps) < 0.5 for a in s["meter"]["current_a"]),
                within=10)
        else:
            await site.csms.wait_for_action("StartTransaction")
            await status(site, "SuspendedEVSE")
            await asyncio.sleep(2)  # the EV asks all along: the contactor stays open
            assert not await bench.relay_closed()
            assert (await bench.connector())["offered_current_a"] == 0
        code, view = await api.call("DELETE", "/api/v1/connectors/1/limit")
        assert code == 200 and view["local_limit"] is None
        await bench.until_connector(offering(16), within=15)
        await status(site, "Charging", within=15)


async def test_cli_phases_without_a_phase_relay_is_a_one_line_refusal(
        site: SimSite, agent: RunningAgent) -> None:
    await booted(site)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = await asyncio.to_thread(cli.main, ["phases", "1", "--socket",
                                                  str(agent.status_socket)])
    assert (code, out.getvalue(), err.getvalue()) == (
        2, "", "evse-agent: connector 1 has no phase switch (no [connector.phase_switch] "
               "in the configuration)\n")
    (one,) = (await asyncio.to_thread(fetch_status, str(agent.status_socket)))["connectors"]
    assert (one["phase_switch"], one["phase_request"]) == (False, None)
