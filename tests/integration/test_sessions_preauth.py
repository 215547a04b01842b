"""The pre-authorization hook against a real HTTP server on loopback: each answer it can
give, a hook that hangs and one that answers garbage."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from evsim.site import SimSite, SiteOptions, free_port

from .test_sessions_api import Client, EvseAgent, api_toml, assert_error, online


class Hook:
    def __init__(self) -> None:
        self.port = free_port()
        self.answer: Any = {"decision": "accept"}
        self.asked: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.asked.append(await request.json())
        if self.answer == "hang":
            await asyncio.sleep(30)
        if isinstance(self.answer, str):
            return web.Response(text=self.answer)
        return web.json_response(self.answer)


@pytest.fixture
async def hook() -> AsyncIterator[Hook]:
    server = Hook()
    app = web.Application()
    app.router.add_post("/preauth", server.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", server.port).start()
    yield server
    await runner.cleanup()


@pytest.fixture
def site_options(hook: Hook) -> SiteOptions:
    url = f"http://127.0.0.1:{hook.port}/preauth"
    toml = api_toml(free_port()).replace(
        "max_body = 1024\n", f'max_body = 1024\npre_authorization_url = "{url}"\n'
        "pre_authorization_timeout = 0.5\n")
    return SiteOptions(sample_interval=1, extra_toml=toml)


@pytest.fixture
async def agent(site: SimSite) -> AsyncIterator[EvseAgent]:
    running = EvseAgent(site)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


@pytest.mark.parametrize(("answer", "status", "detail", "kind", "words"), [
    ({"decision": "billing_data_required"}, 409, "Charging Error", "billing_data_required",
     "Billing data"),
    ({"decision": "payment_error", "details": "settle session 41 first"}, 402,
     "Payment error", "payment_error", "settle session 41 first"),
    ({"decision": "pre_authorization_failed"}, 402, "Payment error",
     "pre_authorization_failed", "could not be pre-authorized"),
    ("<html>oops</html>", 402, "Payment error", "pre_authorization_failed",
     "something else"),
    ({"decision": "maybe"}, 402, "Payment error", "pre_authorization_failed", "something else"),
    ("hang", 402, "Payment error", "pre_authorization_failed", "did not answer within 0.5 s"),
])
async def test_the_hook_refuses_a_start_with_the_contracts_answer(
        site: SimSite, agent: EvseAgent, hook: Hook, answer: Any, status: int, detail: str,
        kind: str, words: str) -> None:
    await online(site)
    hook.answer = answer
    client = Client(agent)
    error = assert_error(await client.start(), status, kind, detail)
    assert words in error["details"]
    assert "payment_intent_client_secret" not in error
    assert (await client.session(error["session_id"]))["sessionStatus"] == "FAILED"
    assert hook.asked[0]["evse_id"] == "DE*EVA*E0001*1" and hook.asked[0]["id_tag"]
    assert site.csms.calls("Authorize") == []  # refused before the charger asked the CSMS


async def test_the_client_secret_is_passed_through(site: SimSite, agent: EvseAgent,
                                                   hook: Hook) -> None:
    await online(site)
    hook.answer = {"decision": "pre_authorization_failed",
                   "payment_intent_client_secret": "pi_3Nx_secret_abc"}
    error = assert_error(await Client(agent).start(), 402, "pre_authorization_failed",
                         "Payment error")
    assert error["payment_intent_client_secret"] == "pi_3Nx_secret_abc"


async def test_an_accepting_hook_lets_the_start_go_on(site: SimSite, agent: EvseAgent,
                                                      hook: Hook) -> None:
    await online(site)
    status, body = await Client(agent).start()
    assert status == 201 and body["sessionStatus"] == "WAITING_TO_START", body
