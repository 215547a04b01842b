"""Webhooks of the sessions API against a real HTTP receiver on loopback: in order, at least
once, through a receiver that is down and through power cuts (the agent halted as kill -9
leaves it), never in the way of charging."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from agent.config import parse_config
from evsim.site import SimSite, SiteOptions, free_port

from .agent_process import AgentProcess
from .conftest import Bench
from .test_sessions_api import READ, TAG, Client, EvseAgent, api_toml, online


class Receiver:
    """An integrator's endpoint: keeps every body; answers 503 while ``down``."""

    def __init__(self) -> None:
        self.port = free_port()
        self.bodies: list[dict[str, Any]] = []
        self.down = False
        self.refused = 0

    async def handle(self, request: web.Request) -> web.Response:
        if self.down:
            self.refused += 1
            return web.Response(status=503)
        body = await request.json()
        self.bodies.append(body)
        return web.json_response({"amount": "0"} if body["type"] == "start" else {})

    def named(self, session_id: str) -> list[tuple[Any, ...]]:
        out: list[tuple[Any, ...]] = []
        for b in self.bodies:
            if b["type"] == "start" and b["session_id"] == session_id:
                out.append(("start", b["accepted"]))
            elif b["type"] == "session" and b["session"]["sessionId"] == session_id:
                out.append((b["event"], b["sequence"]))
        return out

    async def until(self, wanted: Any, within: float = 15.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not wanted():
            assert loop.time() < deadline, self.bodies
            await asyncio.sleep(0.05)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hook = Receiver()
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", hook.port).start()
    yield hook
    await runner.cleanup()


@pytest.fixture
def site_options(receiver: Receiver) -> SiteOptions:
    toml = api_toml(free_port()).replace(
        "max_body = 1024\n", f'max_body = 1024\nwebhook_url = "http://127.0.0.1:{receiver.port}/hook"\n')
    return SiteOptions(sample_interval=1, extra_toml=toml)


async def test_events_and_the_start_notification_arrive_in_order(
        site: SimSite, bench: Bench, receiver: Receiver) -> None:
    agent = EvseAgent(site)
    await agent.start()
    try:
        client = Client(agent)
        await online(site)
        await bench("plug", 1)
        receiver.down = True  # an hour or a minute: charging goes on
        _, body = await client.start()
        session_id = body["sessionId"]
        await bench("ev_state", 1, "C")
        await bench.until_relay(True)
        await client.until(session_id, "STARTED")
        await receiver.until(lambda: receiver.refused >= 1)
        receiver.down = False
        await client.call("POST", f"/api/v1/sessions/{session_id}/stop")
        await receiver.until(lambda: ("SESSION_COMPLETE", 3) in receiver.named(session_id))
        assert receiver.named(session_id) == [
            ("SESSION_STARTED", 1), ("start", True), ("SESSION_STOPPED", 2),
            ("SESSION_COMPLETE", 3)]
        (start,) = [b for b in receiver.bodies if b["type"] == "start"]
        (tx,) = site.csms.transactions.values()
        assert {k: start[k] for k in ("type", "chargebox", "id", "connector", "transaction_id",
                                      "mode")} == {
            "type": "start", "chargebox": "SIM-0001", "id": TAG, "connector": 1,
            "transaction_id": tx.transaction_id, "mode": "api"}
        assert (await client.session(session_id))["amount"] == "0"
    finally:
        await agent.stop()


async def test_a_card_the_charge_box_refuses_gets_a_start_notification_not_accepted(
        site: SimSite, bench: Bench, receiver: Receiver) -> None:
    agent = EvseAgent(site)
    await agent.start()
    try:
        await online(site)
        card = "00DEAD01"
        site.csms.authorizations[card] = {"status": "Invalid"}
        await bench("present_card", card)
        await receiver.until(lambda: any(b["type"] == "start" for b in receiver.bodies))
        (start,) = [b for b in receiver.bodies if b["type"] == "start"]
        assert {k: start[k] for k in ("type", "accepted", "chargebox", "id", "connector",
                                      "transaction_id", "mode")} == {
            "type": "start", "accepted": False, "chargebox": "SIM-0001", "id": card,
            "connector": 1, "transaction_id": 0, "mode": "local"}
        session = await Client(agent).session(start["session_id"])
        assert (session["sessionStatus"], session["failure"]) == ("FAILED", "unknown_card")
        assert site.csms.transactions == {}
    finally:
        await agent.stop()


@pytest.mark.parametrize("cut_at", ["WAITING_TO_START", "STARTED"])
async def test_a_power_cut_loses_no_event_and_gives_none_a_wrong_status(
        site: SimSite, bench: Bench, receiver: Receiver, cut_at: str) -> None:
    first = EvseAgent(site)
    await first.start()
    client = Client(first)
    await online(site)
    receiver.down = True  # nothing delivered before the cut: all of it is in the outbox
    if cut_at == "STARTED":
        await bench("plug", 1)
    _, body = await client.start()
    session_id = body["sessionId"]
    if cut_at == "STARTED":
        await bench("ev_state", 1, "C")
        await client.until(session_id, "STARTED")
        await site.csms.wait_for_action("StartTransaction")
    else:
        await client.until(session_id, "WAITING_TO_START")
    await first.halt()  # as kill -9 leaves it: nothing stopped, nothing sent
    receiver.down = False
    second = EvseAgent(site)
    await second.start()
    try:
        client = Client(second)
        if cut_at == "STARTED":
            await receiver.until(lambda: ("SESSION_COMPLETE", 3) in receiver.named(session_id))
            named = receiver.named(session_id)
            assert named[0] == ("SESSION_STARTED", 1)
            assert ("SESSION_STOPPED", 2) in named and named[-1] == ("SESSION_COMPLETE", 3)
            stopped = [b for b in receiver.bodies if b.get("event") == "SESSION_STOPPED"]
            assert stopped[0]["session"]["stopReason"] == "PowerLoss"
        else:
            await receiver.until(lambda: ("SESSION_FAILED", 1) in receiver.named(session_id))
            assert receiver.named(session_id) == [("SESSION_FAILED", 1), ("start", False)]
            assert (await client.session(session_id))["failure"] == "restarted"
            start = next(b for b in receiver.bodies if b["type"] == "start")
            assert (start["accepted"], start["transaction_id"]) == (False, 0)
    finally:
        await second.stop()



async def until_answers(client: Client, within: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        try:
            if (await client.call("GET", "/api/v1/sessions", READ))[0] == 200:
                return
        except aiohttp.ClientError:
            pass
        assert loop.time() < deadline, "the agent's API never answered"
        await asyncio.sleep(0.1)


@pytest.mark.slow
@pytest.mark.parametrize("cut_at", ["WAITING_TO_START", "STARTED"])
async def test_kill_9_of_the_agent_process_loses_no_webhook(
        site: SimSite, bench: Bench, receiver: Receiver, cut_at: str) -> None:
    config = parse_config(site.agent_config())
    assert config.api is not None
    client = Client(port=config.api.port)
    agent = AgentProcess(site)
    await agent.start()
    try:
        await until_answers(client)
        await online(site)
        receiver.down = True  # everything is still in the outbox when the process dies
        if cut_at == "STARTED":
            await bench("plug", 1)
        _, body = await client.start(evse_id="SIM-0001*1")
        session_id = body["sessionId"]
        if cut_at == "STARTED":
            await bench("ev_state", 1, "C")
            await client.until(session_id, "STARTED")
            await site.csms.wait_for_action("StartTransaction")
        await agent.kill()  # kill -9
        receiver.down = False
        await agent.start()
        await until_answers(client)
        if cut_at == "STARTED":
            await receiver.until(lambda: ("SESSION_COMPLETE", 3) in receiver.named(session_id))
            named = receiver.named(session_id)
            assert [n for n in named if n[0] != "start"] == [
                ("SESSION_STARTED", 1), ("SESSION_STOPPED", 2), ("SESSION_COMPLETE", 3)]
            assert (await client.session(session_id))["stopReason"] == "PowerLoss"
        else:
            await receiver.until(lambda: ("start", False) in receiver.named(session_id))
            assert receiver.named(session_id) == [("SESSION_FAILED", 1), ("start", False)]
    finally:
        await agent.stop()
        print(agent.tail())
