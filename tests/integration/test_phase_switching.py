"""In the simulator: a power limit that fits one phase but not three switches the charging EV
to one phase through the phase relay (the EV paused and the contactor open meanwhile), the
meter then shows one phase drawn, and a higher limit switches back to three phases once the
minimum interval has passed: one transaction throughout, the relay never moved under load.
A local request switches it too, through the sessions API or ``evse-agent phases``, and
survives a kill -9 of the agent process."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
from typing import Any

import pytest
from ocpp.v16 import call

from agent import cli
from agent.status_server import fetch_status
from evsim.site import SimSite, SiteOptions, free_port
from tests.integration.conformance.helpers import booted, charging, status, until
from tests.integration.conformance.test_smart_charging import install, profile
from tests.integration.conftest import Bench, RunningAgent
from tests.integration.test_local_limit import agent_process_with_api, restarted
from tests.integration.test_sessions_api import READ, Client, api_toml

MIN_INTERVAL = 20  # s, the shortest the configuration allows is 10


@pytest.fixture
def site_options() -> SiteOptions:
    return SiteOptions(sample_interval=1, extra_toml=api_toml(free_port()),
                       phase_switch=f"settle = 2\nmin_interval = {MIN_INTERVAL}")


def on_phases(count: int, amps: float) -> Any:
    """The relay connects ``count`` phases and the EV draws about ``amps`` on each of them."""
    def check(state: dict[str, Any]) -> bool:
        drawn = state["meter"]["current_a"]
        wanted = [amps] * count + [0.0] * (3 - count)
        return (state["phases_connected"] == count
                and all(abs(a - w) < 1.0 for a, w in zip(drawn, wanted, strict=True)))
    return check


async def test_a_power_limit_for_one_phase_switches_and_a_higher_one_switches_back(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    keys = await site.csms.call(call.GetConfiguration(key=["ConnectorSwitch3to1PhaseSupported"]))
    assert keys.configuration_key[0]["value"] == "true"
    transaction_id = await charging(site, bench)
    await bench.until_connector(on_phases(3, 16), within=15, what="16 A on 3 phases")

    # 3,000 W: 4.3 A on three phases would pause; on one phase it is 13 A.
    assert await install(site, 0, profile(1, "TxDefaultProfile", [(0, 3000)],
                                          unit="W")) == "Accepted"
    await status(site, "SuspendedEVSE")
    await bench.until_connector(on_phases(1, 3000 / 230), within=30, what="13 A on L1 only")
    await status(site, "Charging", within=15)
    station = agent.runtime.station
    assert station.connectors[1].active_phases == 1
    relay = agent.runtime.hardware[1].phase_switch
    assert relay is not None
    await until(lambda: relay.feedback_phases == 1)  # the world's auxiliary contact agrees

    # 11,000 W: three phases again (15.9 A each), once MIN_INTERVAL has passed.
    assert await install(site, 0, profile(1, "TxDefaultProfile", [(0, 11000)],
                                          unit="W")) == "Accepted"
    await bench.until_connector(on_phases(3, 11000 / 690), within=MIN_INTERVAL + 30,
                                what="back on 3 phases")
    await status(site, "Charging", within=15)

    state = await bench.until_connector(lambda s: True)
    assert state["phase_switch"]["switched_under_load"] == 0
    assert not site.csms.calls("StopTransaction")
    assert len(site.csms.calls("StartTransaction")) == 1
    assert site.csms.transactions[transaction_id].meter_stop is None
    statuses = [s for cid, s, _ in site.csms.statuses if cid == 1]
    assert statuses.count("SuspendedEVSE") >= 2  # paused for each switch


async def test_a_local_request_through_the_api_switches_to_one_phase(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    api = Client(agent)
    await booted(site)
    transaction_id = await charging(site, bench)
    await bench.until_connector(on_phases(3, 16), within=15, what="16 A on 3 phases")
    code, _ = await api.call("PUT", "/api/v1/connectors/1/phases", body={"phases": 2})
    assert code == 400
    code, view = await api.call("PUT", "/api/v1/connectors/1/phases",
                                body={"phases": 1, "source": "hems"})
    assert code == 200 and view["phase_request"] == {"phases": 1, "source": "hems"}
    assert view["phase_switching"] is True
    await bench.until_connector(on_phases(1, 16), within=30, what="16 A on L1 only")
    code, listed = await api.call("GET", "/api/v1/connectors", token=READ)
    (one,) = listed["connectors"]
    assert (one["phases"], one["phase_switching"], one["status"]) == (1, False, "Charging")
    assert site.csms.transactions[transaction_id].meter_stop is None


@pytest.mark.slow
async def test_a_local_phase_request_survives_a_kill_9_of_the_agent_process(
    site: SimSite, bench: Bench
) -> None:
    """The relay starts at its default (three phases) in the new process; the kept request
    switches it to one phase again, and the next session charges on L1 only."""
    async with agent_process_with_api(site) as (agent, api):
        code, _ = await api.call("PUT", "/api/v1/connectors/1/phases",
                                 body={"phases": 1, "source": "hems"})
        assert code == 200
        await bench.until_connector(lambda s: s["phases_connected"] == 1, within=15)
        await restarted(agent, api, "kill -9")
        code, listed = await api.call("GET", "/api/v1/connectors", token=READ)
        (one,) = listed["connectors"]
        assert one["phase_request"] == {"phases": 1, "source": "hems"}
        await charging(site, bench)
        await bench.until_connector(on_phases(1, 16), within=30, what="16 A on L1 only")


async def phases_cli(*words: str) -> tuple[int, str, str]:
    """``evse-agent phases WORDS``: the exit status, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = await asyncio.to_thread(cli.main, ["phases", *words])
    return code, out.getvalue(), err.getvalue()


async def test_evse_agent_phases_switches_the_relay_and_auto_gives_it_back(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    socket = str(agent.status_socket)
    await booted(site)
    transaction_id = await charging(site, bench)
    await bench.until_connector(on_phases(3, 16), within=15, what="16 A on 3 phases")

    assert await phases_cli("2", "--socket", socket) == (
        2, "", "evse-agent: phases must be 1, 3 or auto, got '2'\n")
    assert await phases_cli("1", "--source", "solar", "--socket", socket) == (
        0, "connector 1: 3 phases connected, switching; 1 asked by solar\n", "")
    await bench.until_connector(on_phases(1, 16), within=30, what="16 A on L1 only")
    await status(site, "Charging", within=15)
    (one,) = (await asyncio.to_thread(fetch_status, socket))["connectors"]
    assert (one["phases"], one["phase_switching"], one["phase_request"]) == (
        1, False, {"phases": 1, "source": "solar"})

    # auto: the charger decides again, here default_phases (3) once MIN_INTERVAL has passed
    # since the last switch began (it may already have: ", switching").
    code, out, err = await phases_cli("auto", "--connector", "1", "--socket", socket)
    assert (code, err) == (0, "")
    assert re.fullmatch(r"connector 1: 1 phase connected(, switching)?; "
                        r"left to the charger \(auto\)\n", out), out
    (one,) = (await asyncio.to_thread(fetch_status, socket))["connectors"]
    assert one["phase_request"] is None
    await bench.until_connector(on_phases(3, 16), within=MIN_INTERVAL + 30,
                                what="back on 3 phases")
    state = await bench.until_connector(lambda s: True)
    assert state["phase_switch"]["switched_under_load"] == 0
    assert site.csms.transactions[transaction_id].meter_stop is None
