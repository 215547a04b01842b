"""The local sessions API against the whole agent: simulated devices, the strict CSMS.

Every row of the start-error contract that this branch produces is caused for real: the
CSMS answering Invalid/Blocked or not at all, a faulted meter, an unknown EVSE id, a store
that breaks under the agent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from ocpp.v16 import call

from agent import sessions as session_rules
from evsim.site import SimSite, SiteOptions, free_port

from .conftest import Bench, RunningAgent

CONTROL = "control-token-0123456789"
READ = "read-token-0123456789abc"
TAG = "0A1B2C3D"
OTHER_TAG = "0E0F1A2B"
EVSE = "DE*EVA*E0001*1"
ROOT = Path(__file__).resolve().parents[2]
REASON = {"Invalid": "unknown_card", "Blocked": "blocked"}


def api_toml(port: int) -> str:
    return f"""
[api]
listen = "127.0.0.1:{port}"
max_body = 1024
[[api.token]]
scope = "control"
secret = "{CONTROL}"
[[api.token]]
scope = "read"
secret = "{READ}"
"""


@pytest.fixture
def site_options() -> SiteOptions:
    port = free_port()
    return SiteOptions(sample_interval=1, extra_authorization="authorize_timeout = 1",
                       extra_toml=api_toml(port))


def evse_config(site: SimSite) -> str:
    return site.agent_config().replace("[[connector]]\nid = 1\n",
                                       f'[[connector]]\nid = 1\nevse_id = "{EVSE}"\n')


class Client:
    def __init__(self, agent: RunningAgent | None = None, port: int | None = None) -> None:
        if agent is not None:
            assert agent.config.api is not None
            port = agent.config.api.port
        self.base = f"http://127.0.0.1:{port}"

    async def call(self, method: str, path: str, token: str | None = CONTROL,
                   body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        async with aiohttp.ClientSession() as http, http.request(
                method, self.base + path, data=data, headers=headers) as response:
            return response.status, await response.json()

    async def start(self, id_tag: str = TAG, evse_id: str = EVSE, **more: Any
                    ) -> tuple[int, Any]:
        return await self.call("POST", "/api/v1/sessions/start",
                               body={"evse_id": evse_id, "id_tag": id_tag, **more})

    async def events(self, until: str) -> list[dict[str, Any]]:
        """The event stream's session events, up to the first named ``until``."""
        seen: list[dict[str, Any]] = []
        headers = {"Authorization": f"Bearer {READ}"}
        async with aiohttp.ClientSession() as http, http.get(
                self.base + "/api/v1/events", headers=headers) as response:
            assert response.status == 200
            async for line in response.content:
                if line.startswith(b"data: "):
                    seen.append(json.loads(line[6:]))
                    if seen[-1]["event"] == until:
                        return seen
        return seen

    async def session(self, session_id: str) -> dict[str, Any]:
        status, body = await self.call("GET", f"/api/v1/sessions/{session_id}", READ)
        assert status == 200
        return dict(body)

    async def until(self, session_id: str, status: str, within: float = 10.0
                    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while (session := await self.session(session_id))["sessionStatus"] != status:
            assert loop.time() < deadline, f"never {status}: {session}"
            await asyncio.sleep(0.05)
        return session


class EvseAgent(RunningAgent):
    def __init__(self, site: SimSite) -> None:
        from agent.app import Agent
        from agent.config import parse_config
        Agent.__init__(self, parse_config(evse_config(site), "site"), drain_seconds=5.0)


@pytest.fixture
async def agent(site: SimSite) -> Any:
    running = EvseAgent(site)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


async def online(site: SimSite) -> None:
    await site.csms.wait_for(lambda: site.csms.last_status(1) == "Available")


def assert_error(answer: tuple[int, Any], status: int, kind: str, detail: str) -> dict[str, Any]:
    code, body = answer
    assert (code, body["detail"], body["error"]["type"]) == (status, detail, kind), body
    assert body["error"]["details"]
    return dict(body["error"])


async def test_tokens_scopes_and_the_openapi_document(site: SimSite, agent: RunningAgent
                                                      ) -> None:
    client = Client(agent)
    assert (await client.call("GET", "/api/v1/sessions", token=None))[0] == 401
    assert (await client.call("GET", "/api/v1/sessions", token="x" * 24))[0] == 401
    assert (await client.call("POST", "/api/v1/sessions/start", READ,
                              {"evse_id": EVSE, "id_tag": TAG}))[0] == 403
    status, served = await client.call("GET", "/api/v1/openapi.json", READ)
    assert status == 200
    assert served == json.loads((ROOT / "docs" / "openapi.json").read_text())


async def test_an_api_start_charges_and_stops_idempotently(
        site: SimSite, bench: Bench, agent: RunningAgent) -> None:
    client = Client(agent)
    await online(site)
    events = asyncio.create_task(client.events(until="SESSION_COMPLETE"))
    await bench("plug", 1)
    status, body = await client.start()
    assert status == 201, body
    session_id = body["sessionId"]
    assert body["mode"] == "api" and body["evseId"] == EVSE
    await bench("ev_state", 1, "C")
    await bench.until_relay(True)
    await client.until(session_id, "STARTED")
    assert (await client.start())[0] == 409  # already charging
    status, stopping = await client.call("POST", f"/api/v1/sessions/{session_id}/stop")
    assert status == 200 and stopping["sessionStatus"] in ("WAITING_TO_STOP", "STOPPED",
                                                           "COMPLETE")
    await bench.until_relay(False)
    done = await client.until(session_id, "COMPLETE")
    assert done["stopReason"] == "Remote" and done["energy"]["unit"] == "WH"
    assert (await client.call("POST", f"/api/v1/sessions/{session_id}/stop"))[0] == 200
    (tx,) = site.csms.transactions.values()
    assert done["transactionId"] == tx.transaction_id
    assert done["energy"]["value"] == (tx.meter_stop or 0) - tx.meter_start
    status, page = await client.call("GET", f"/api/v1/sessions?id_tag={TAG}&status=COMPLETE",
                                     READ)
    assert status == 200 and [s["sessionId"] for s in page["sessions"]] == [session_id]
    streamed = await asyncio.wait_for(events, 10)
    named = [(e["event"], e["sequence"]) for e in streamed
             if e["event"] and e["sessionId"] == session_id]
    assert ("SESSION_FAILED", 1) in [(e["event"], e["sequence"]) for e in streamed
                                     if e["sessionId"] != session_id]  # the refused 2nd start
    assert named == [("SESSION_STARTED", 1), ("SESSION_STOPPED", 2), ("SESSION_COMPLETE", 3)]


@pytest.mark.parametrize("answer", ["Invalid", "Blocked"])
async def test_a_token_the_csms_refuses_is_charging_provider_error(
        site: SimSite, agent: RunningAgent, answer: str) -> None:
    client = Client(agent)
    await online(site)
    site.csms.authorizations[TAG] = {"status": answer}
    refused = await client.start()
    error = assert_error(refused, 424, "charging_provider_error", "Charging Error")
    assert error["ocpp_status"] == answer
    session = await client.session(error["session_id"])
    assert session["sessionStatus"] == "FAILED"
    status, log_rows = await client.call("GET", f"/api/v1/authorizations?id_tag={TAG}", READ)
    assert status == 200
    assert [(r["source"], r["status"], r["accepted"]) for r in log_rows["authorizations"]] == [
        ("csms", answer, False)]
    assert agent.frames is not None  # what `evse-agent log --id-tag` shows
    assert [r.text for r in agent.frames.query(id_tag=TAG) if r.direction == "event"
            and r.id_tag] == [f"authorization {TAG} (api, connector 1): refused, source csms, "
                              f"status {answer}, reason {REASON[answer]}"]


async def test_a_csms_that_does_not_answer_is_charging_provider_error(
        site: SimSite, agent: RunningAgent) -> None:
    client = Client(agent)
    await online(site)
    site.csms.silent.add("Authorize")
    error = assert_error(await client.start(), 424, "charging_provider_error",
                         "Charging Error")
    assert (await client.session(error["session_id"]))["failure"] == "csms_timeout"


async def test_unknown_evse_id_is_404(site: SimSite, agent: RunningAgent) -> None:
    status, body = await Client(agent).start(evse_id="DE*EVA*E9999*1")
    assert (status, body) == (404, {"detail": "Station with this evse id was not found"})


@pytest.mark.parametrize(("fault", "code"), [
    ("meter_offline", 424),  # the state cannot be confirmed: retry later
    ("contactor_welded", 409),  # out of order
])
async def test_a_faulted_connector_is_station_availability_issue(
        site: SimSite, bench: Bench, agent: RunningAgent, fault: str, code: int) -> None:
    await online(site)
    await bench("fault", 1, fault, True)
    await site.csms.wait_for(lambda: site.csms.last_status(1) == "Faulted", within=20)
    assert_error(await Client(agent).start(), code, "station_availability_issue",
                 "Charging Error")


async def test_a_broken_store_is_500_with_a_support_code_in_the_log(
        site: SimSite, agent: RunningAgent, caplog: pytest.LogCaptureFixture) -> None:
    await online(site)
    assert agent.store is not None
    # The store is locked to the agent: break its table from the agent's own connection.
    agent.store._db.execute("DROP TABLE sessions")
    with caplog.at_level(logging.ERROR):
        error = assert_error(await Client(agent).start(), 500, "unexpected_error",
                             "Charging Error")
    code = error["details"].rsplit(" ", 1)[-1]
    assert any(code in record.getMessage() for record in caplog.records)
    # Every other route keeps the contract too: the history cannot be read either.
    with caplog.at_level(logging.ERROR):
        status, body = await Client(agent).call("GET", "/api/v1/sessions")
    assert status == 500
    assert body["error"]["type"] == "unexpected_error"
    code = body["error"]["details"].rsplit(" ", 1)[-1]
    assert any(code in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize(("raw", "words"), [
    (b"{not json", "malformed JSON"),
    (b'{"evse_id": "x", "id_tag": "y", "colour": 1}', "unknown field"),
    (b'{"evse_id": 5, "id_tag": "y"}', "evse_id must be a string"),
    (b'{"evse_id": "x", "id_tag": "y", "connector_id": "1"}', "connector_id must be"),
    (b'{"evse_id": "x"}', "id_tag is required"),
    (b"[1, 2]", "JSON object"),
])
async def test_bad_input_gets_a_clear_400(site: SimSite, agent: RunningAgent, raw: bytes,
                                          words: str) -> None:
    status, body = await Client(agent).call("POST", "/api/v1/sessions/start", raw=raw)
    assert status == 400 and words in body["error"]["details"], body


async def test_an_oversized_body_is_413(site: SimSite, agent: RunningAgent) -> None:
    status, body = await Client(agent).call("POST", "/api/v1/sessions/start",
                                            raw=b'{"pad": "' + b"x" * 4096 + b'"}')
    assert status == 413 and body["error"]["type"] == "invalid_request"


async def test_unknown_session_is_404(site: SimSite, agent: RunningAgent) -> None:
    client = Client(agent)
    assert (await client.call("GET", "/api/v1/sessions/nope", READ))[0] == 404
    assert (await client.call("POST", "/api/v1/sessions/nope/stop"))[0] == 404


async def test_a_started_session_survives_a_power_cut(
        site: SimSite, bench: Bench) -> None:
    first = EvseAgent(site)
    await first.start()
    client = Client(first)
    await online(site)
    await bench("plug", 1)
    _, body = await client.start()
    session_id = body["sessionId"]
    await bench("ev_state", 1, "C")
    await client.until(session_id, "STARTED")
    await site.csms.wait_for_action("StartTransaction")
    await first.halt()  # as kill -9: nothing stopped, nothing sent
    second = EvseAgent(site)
    await second.start()
    try:
        client = Client(second)
        session = await client.until(session_id, "COMPLETE", within=20)
        assert session["stopReason"] == "PowerLoss" and session["mode"] == "api"
    finally:
        await second.stop()


async def test_a_connector_reserved_for_someone_else_is_station_availability_issue(
        site: SimSite, agent: RunningAgent) -> None:
    await online(site)
    until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    result = await site.csms.call(call.ReserveNow(connector_id=1, expiry_date=until,
                                                  id_tag="HOLDER01", reservation_id=7))
    assert result.status == "Accepted"
    await site.csms.wait_for(lambda: site.csms.last_status(1) == "Reserved")
    client = Client(agent)
    assert_error(await client.start(), 409, "station_availability_issue", "Charging Error")
    status, body = await client.start(id_tag="HOLDER01")  # the holder may start
    assert status == 201 and body["sessionStatus"] == "WAITING_TO_START", body


async def test_a_start_before_the_csms_accepted_the_charger_is_424(site: SimSite) -> None:
    site.csms.boot_answers = [("Pending", 60)]  # the CSMS never accepts the charger
    agent = EvseAgent(site)
    await agent.start()
    try:
        await site.csms.wait_for_action("BootNotification")
        assert_error(await Client(agent).start(), 424, "station_availability_issue",
                     "Charging Error")
    finally:
        await agent.stop()


async def test_a_start_before_the_plug_waits_and_charges_once_plugged(
        site: SimSite, bench: Bench, agent: RunningAgent) -> None:
    client = Client(agent)
    await online(site)
    status, body = await client.start()
    assert status == 201 and body["sessionStatus"] == "WAITING_TO_START", body
    await bench("plug", 1)
    await bench("ev_state", 1, "C")
    await bench.until_relay(True)
    assert (await client.until(body["sessionId"], "STARTED"))["mode"] == "api"


async def test_a_start_that_failed_waiting_and_then_charges_stays_one_session(
        site: SimSite, bench: Bench, agent: RunningAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 2 minutes of WAITING_TO_START (here 1 s) run out while the charger still holds the
    token (ConnectionTimeOut, 60 s by default): the plug-in then starts the same session,
    FAILED -> STARTED, as the reference allows (sessions-api.md §2)."""
    monkeypatch.setattr(session_rules, "WAIT_TO_START_SECONDS", 1.0)
    client = Client(agent)
    await online(site)
    events = asyncio.create_task(client.events(until="SESSION_STARTED"))
    status, body = await client.start()
    assert status == 201 and body["sessionStatus"] == "WAITING_TO_START", body
    session_id = body["sessionId"]
    assert (await client.until(session_id, "FAILED"))["failure"] == "start_timeout"
    await bench("plug", 1)
    await bench("ev_state", 1, "C")
    await bench.until_relay(True)
    started = await client.until(session_id, "STARTED")
    assert (started["mode"], started["failure"]) == ("api", None)
    status, page = await client.call("GET", f"/api/v1/sessions?id_tag={TAG}", READ)
    assert status == 200 and [s["sessionId"] for s in page["sessions"]] == [session_id]
    streamed = await asyncio.wait_for(events, 10)
    assert [(e["sessionId"], e["event"], e["sequence"]) for e in streamed if e["event"]] == [
        (session_id, "SESSION_FAILED", 1), (session_id, "SESSION_STARTED", 2)]
    (tx,) = site.csms.transactions.values()
    assert (await client.until(session_id, "STARTED"))["transactionId"] == tx.transaction_id


async def test_a_new_start_replaces_a_failed_start_the_charger_still_holds(
        site: SimSite, bench: Bench, agent: RunningAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ConnectionTimeOut (600 s) outlasts the 2 minutes of WAITING_TO_START (here 1 s): the
    charger still holds the failed start's token, yet a new start is allowed ("after 2
    minutes in WAITING_TO_START consider it failed and allow a new start", sessions-api.md
    §2, once the 60 s block, here 0.5 s, is over). The charger releases the old token; the
    plug-in charges the new one and the old session stays FAILED."""
    monkeypatch.setattr(session_rules, "WAIT_TO_START_SECONDS", 1.0)
    monkeypatch.setattr(session_rules, "START_BLOCK_SECONDS", 0.5)
    client = Client(agent)
    await online(site)
    changed = await site.csms.call(call.ChangeConfiguration(key="ConnectionTimeOut",
                                                            value="600"))
    assert changed.status == "Accepted"
    status, first = await client.start()
    assert status == 201 and first["sessionStatus"] == "WAITING_TO_START", first
    assert (await client.until(first["sessionId"], "FAILED"))["failure"] == "start_timeout"
    await site.csms.wait_for(lambda: site.csms.last_status(1) == "Preparing")  # still held
    status, second = await client.start(OTHER_TAG)
    assert status == 201 and second["sessionStatus"] == "WAITING_TO_START", second
    await bench("plug", 1)
    await bench("ev_state", 1, "C")
    await bench.until_relay(True)
    started = await client.until(second["sessionId"], "STARTED")
    (tx,) = site.csms.transactions.values()
    assert (tx.id_tag, started["transactionId"]) == (OTHER_TAG, tx.transaction_id)
    assert (await client.session(first["sessionId"]))["sessionStatus"] == "FAILED"


async def evse_agent_log(state_dir: Path, *args: str) -> tuple[int, list[dict[str, Any]], str]:
    """``evse-agent log --json ARGS`` as a separate process, as an operator runs it."""
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("evse-agent")), "log", "--state-dir",
        str(state_dir), "--json", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, [json.loads(line) for line in out.splitlines()], err.decode()


async def decisions_stored(client: Client, count: int, within: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while len((await client.call("GET", f"/api/v1/authorizations?id_tag={TAG}",
                                 READ))[1]["authorizations"]) < count:
        assert loop.time() < deadline, f"never {count} decisions stored"
        await asyncio.sleep(0.05)


def decision_lines(records: list[dict[str, Any]]) -> list[str]:
    return [r["text"] for r in records if r["kind"] == "event" and r.get("idTag")]


async def test_the_card_log_shows_the_stored_decisions_even_after_the_log_rotated_away(
        site: SimSite, bench: Bench) -> None:
    """`evse-agent log --id-tag` reads the decisions from the store (asking the running agent,
    which holds it; reading it when the agent is stopped): each one with its source and
    reason, between the card's frames, once, and still there without any message log."""
    agent = EvseAgent(site)
    await agent.start()
    state_dir = agent.config.charger.state_dir
    try:
        await online(site)
        site.csms.authorizations[TAG] = {"status": "Invalid"}
        assert_error(await Client(agent).start(), 424, "charging_provider_error",
                     "Charging Error")
        await bench("present_card", TAG)  # at the charger now
        await site.csms.wait_for_action("Authorize", count=2)
        await decisions_stored(Client(agent), 2)
        assert agent.frames is not None
        agent.frames.flush()
        code, records, err = await evse_agent_log(state_dir, "--id-tag", TAG)
        assert (code, err) == (0, "")  # the running agent answered (its store is locked)
    finally:
        await agent.stop()
    wanted = [f"authorization {TAG} ({purpose}, connector 1): refused, source csms, "
              f"status Invalid, reason unknown_card" for purpose in ("api", "connector")]
    assert decision_lines(records) == wanted  # each once: the store's, not the log's copy
    shown = [(r.get("action"), r["kind"]) for r in records if r.get("idTag")]  # not link up
    assert shown == [("Authorize", "CALL"), ("Authorize", "CALLRESULT"), (None, "event")] * 2
    for path in state_dir.glob("ocpp-frames.jsonl*"):  # the message log rotated away
        path.unlink()
    code, records, err = await evse_agent_log(state_dir, "--id-tag", TAG)
    assert code == 0, err
    assert decision_lines(records) == wanted and len(records) == 2
