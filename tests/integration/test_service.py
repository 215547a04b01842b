"""The agent as the service runs it: ``evse-agent run --config FILE``, with ``evse-agent
status`` and ``evse-agent log`` beside it, then ``systemctl stop`` (SIGTERM) mid-transaction.

The shutdown order (DESIGN.md, Safety; README, Durability): the contactor opens first, then the
transaction ends (reason Reboot, meter read live) and its StopTransaction reaches the CSMS, the
process exits 0 within the unit's TimeoutStopSec and removes its status socket. The CSMS
password from the configuration never shows in the console output or the message log.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from evsim.csms import Frame
from evsim.site import CHARGER_ID, SimSite, SiteOptions

from .agent_process import EVSE_AGENT, AgentProcess
from .conftest import Bench

CARD = "00A1B2C3"
UNKNOWN_CARD = "00DEAD01"
PASSWORD = "s3cret-Passw0rd-4-csms"
STOP_TIMEOUT = 20.0  # TimeoutStopSec= of systemd/evse-agent.service
EXIT_UNAVAILABLE = 69
EXIT_NO_INPUT = 66


@pytest.fixture
def site_options() -> SiteOptions:
    return SiteOptions(sample_interval=1, extra_csms=f'password = "{PASSWORD}"')


@pytest.fixture
async def service(site: SimSite) -> AsyncIterator[AgentProcess]:
    agent = AgentProcess(site, command=(EVSE_AGENT,))
    try:
        yield agent
    finally:
        await agent.stop()
        print(agent.tail())  # shown when the test failed
    assert site.csms.violations == [], "the CSMS saw frames that break the OCPP 1.6 schemas"


async def status(agent: AgentProcess) -> dict[str, Any]:
    code, out, err = await agent.cli("status", "--config", str(agent.config), "--json")
    assert code == 0, err
    document: dict[str, Any] = json.loads(out)
    return document


async def log_records(agent: AgentProcess, *args: str,
                      missing_ok: bool = False) -> list[dict[str, Any]]:
    code, out, err = await agent.cli("log", "--config", str(agent.config), "--json", *args)
    if missing_ok and code == EXIT_NO_INPUT:  # not written yet
        return []
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines()]


async def until_logged(agent: AgentProcess, wanted: set[tuple[str, str]], *args: str,
                       within: float = 10.0) -> list[dict[str, Any]]:
    """The log's records for ``args`` once they hold every (action, kind) in ``wanted`` (the
    log is written about once a second)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        records = await log_records(agent, *args, missing_ok=True)
        if wanted <= {(r.get("action"), r["kind"]) for r in records}:
            return records
        if loop.time() > deadline:
            raise TimeoutError(f"{wanted} never logged for {args}: {records}")
        await asyncio.sleep(0.2)


async def test_status_log_and_an_ordered_stop_of_the_service(
    site: SimSite, bench: Bench, service: AgentProcess
) -> None:
    csms = site.csms
    csms.authorizations[UNKNOWN_CARD] = {"status": "Invalid"}
    relay_at_stop: list[bool] = []

    def watch(frame: Frame) -> None:  # on the loop, as the frame arrives, before the answer
        if frame.direction == "in" and frame.action == "StopTransaction":
            world = site.world_server.world
            relay_at_stop.append(world.connector_state(1)["contactor"]["relay_closed"])

    csms.on_frame = watch
    await service.start()
    await csms.wait_for(lambda: csms.last_status(1) == "Available", within=15)
    assert _basic_password(csms) == PASSWORD  # the agent did use it

    # An unknown card first: the CSMS answers Invalid, nothing starts.
    await bench("plug", 1)
    await csms.wait_for(lambda: csms.last_status(1) == "Preparing", within=15)
    await bench("present_card", UNKNOWN_CARD)
    await csms.wait_for(lambda: _answers(csms, "Authorize"), within=10)
    assert csms.transactions == {}

    # Then a good one: charging.
    await bench("present_card", CARD)
    await csms.wait_for_action("StartTransaction")
    await bench("ev_state", 1, "C")
    await csms.wait_for(lambda: csms.last_status(1) == "Charging", within=15)
    await bench.until_relay(True)
    (tx,) = csms.transactions.values()

    # evse-agent status: the connector charges this transaction, the link is up.
    document = await status(service)
    assert document["link"]["up"] is True
    assert document["link"]["registration"] == "Accepted"
    assert document["charger"]["id"] == CHARGER_ID
    (connector,) = document["connectors"]
    assert (connector["id"], connector["status"], connector["contactor"]) == (1, "Charging",
                                                                              "closed")
    assert connector["transaction"]["id"] == tx.transaction_id
    assert connector["transaction"]["tag"] == CARD
    assert connector["transaction"]["meter_start"] == tx.meter_start
    code, text, _ = await service.cli("status", "--config", str(service.config))
    assert code == 0
    assert f"evse-agent {CHARGER_ID}" in text and "link up" in text
    row = next(line for line in text.splitlines() if line.startswith("1 "))
    assert "Charging" in row and f"id {tx.transaction_id}" in row and f"tag {CARD}" in row

    # evse-agent log: the card's frames, and StartTransaction with its answer.
    records = await until_logged(service, {("Authorize", "CALL"), ("Authorize", "CALLRESULT"),
                                           ("StartTransaction", "CALL"),
                                           ("StartTransaction", "CALLRESULT")},
                                 "--id-tag", CARD)
    assert {r.get("idTag") for r in records if r["kind"] != "event"} == {CARD}  # events: all
    starts = await log_records(service, "--action", "StartTransaction")
    assert [(r["dir"], r["kind"]) for r in starts] == [("out", "CALL"), ("in", "CALLRESULT")]
    assert starts[0]["payload"]["idTag"] == CARD
    assert starts[1]["payload"]["transactionId"] == tx.transaction_id
    code, text, _ = await service.cli("log", "--config", str(service.config),
                                      "--action", "StartTransaction")
    assert code == 0 and "StartTransaction.conf" in text and "StartTransaction " in text
    refused = await until_logged(service, {("Authorize", "CALLRESULT")},
                                 "--id-tag", UNKNOWN_CARD)
    (answer,) = [r for r in refused if r["kind"] == "CALLRESULT"]
    assert answer["payload"]["idTagInfo"]["status"] == "Invalid"
    assert answer["dir"] == "in"

    # systemctl stop mid-transaction.
    await csms.wait_for_action("MeterValues")
    assert await service.terminate(STOP_TIMEOUT) == 0
    assert relay_at_stop == [False]  # the contactor was open before the stop went out
    assert not await bench.relay_closed()
    assert (tx.stop_count, tx.reason) == (1, "Reboot")
    register = (await bench.connector())["meter"]["energy_wh"]
    assert tx.meter_start < tx.meter_stop == int(register)  # read live, after the relay opened
    socket_path = site.workdir / "state" / "evse-agent.sock"
    assert not socket_path.exists()
    code, _, err = await service.cli("status", "--config", str(service.config))
    assert code == EXIT_UNAVAILABLE and "not running" in err
    stops = await log_records(service, "--action", "StopTransaction")  # flushed at exit
    assert [r["kind"] for r in stops] == ["CALL", "CALLRESULT"]
    assert stops[0]["payload"]["reason"] == "Reboot"

    # The password: never in the console output nor in the message log.
    token = base64.b64encode(f"{CHARGER_ID}:{PASSWORD}".encode()).decode()
    frame_logs = sorted((site.workdir / "state").glob("ocpp-frames.jsonl*"))
    assert frame_logs
    texts = {path.name: path.read_text(errors="replace") for path in frame_logs}
    texts["console"] = service.output()
    assert "StartTransaction" in texts["console"]  # ocpp_frames = true: frames went there too
    for name, text in texts.items():
        assert PASSWORD not in text and token not in text, name


def _answers(csms: Any, action: str) -> list[Frame]:
    """The CSMS's answers to ``action`` calls from the charger."""
    ids = {json.loads(f.raw)[1] for f in csms.calls(action)}
    return [f for f in csms.frames
            if f.direction == "out" and f.message_type == 3 and json.loads(f.raw)[1] in ids]


def _basic_password(csms: Any) -> str:
    """The password of the charger's HTTP Basic credentials on its current connection."""
    header = csms.session._connection._ws.request.headers["Authorization"]
    user, _, password = base64.b64decode(header.split()[1]).decode().partition(":")
    assert user == CHARGER_ID
    return password
