"""MQTT against a real broker (mosquitto, started here on loopback) and the whole agent:
simulated devices, the strict CSMS. The retained state follows a session, commands answer
with the API's contract, the last will tells a killed agent, and a broker restart in the
middle of a session changes nothing for charging. With a phase relay, Home Assistant's select
switches the simulated relay."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from evsim.site import SimSite, SiteOptions
from tests.ha_discovery import problems
from tests.mosquitto import Mosquitto, Watcher, publish, running_broker
from tests.pki import TestCa

from .agent_process import AgentProcess
from .conftest import Bench, RunningAgent

PREFIX = "evse-agent/SIM-0001"
C1 = f"{PREFIX}/connector/1/"
CARD = "00A1B2C3"
READER_REPEAT_WINDOW = 1.0  # a card held on is one presentation, not two


@pytest.fixture
def broker_users() -> dict[str, str]:
    return {}  # anonymous; a test parametrizes this to require a login


@pytest.fixture
def agent_password() -> str | None:
    return None  # the password the agent is given, in a 0600 file


@pytest.fixture
def tls() -> str | None:
    return None  # "trusted": mqtts with the broker's CA given to the agent; "untrusted": another


@pytest.fixture
def phase_switch() -> str | None:
    return None  # a test parametrizes this to give connector 1 a phase relay


@pytest.fixture
async def broker(tmp_path: Path, broker_users: dict[str, str], tls: str | None
                 ) -> AsyncIterator[Mosquitto]:
    ca = TestCa("Test MQTT Root") if tls else None
    async with running_broker(tmp_path / "mosquitto", users=broker_users, ca=ca) as running:
        yield running


@pytest.fixture
def site_options(broker: Mosquitto, tmp_path: Path, agent_password: str | None,
                 tls: str | None, phase_switch: str | None) -> SiteOptions:
    login, scheme = "", "mqtt"
    if broker.ca is not None:
        trusted = broker.ca if tls == "trusted" else TestCa("Someone Else's Root")
        (tmp_path / "broker-ca.pem").write_text(trusted.root_pem)
        login, scheme = f'ca_file = "{tmp_path / "broker-ca.pem"}"\n', "mqtts"
    if agent_password is not None:
        secret = tmp_path / "mqtt.password"
        secret.write_text(agent_password + "\n")
        secret.chmod(0o600)
        login += f'username = "agent"\npassword_file = "{secret}"\n'
    return SiteOptions(sample_interval=1, extra_authorization="authorize_timeout = 2",
                       phase_switch=phase_switch, extra_toml=f'[mqtt]\nurl = "{scheme}://127.0.0.1:{broker.port}"\n'
                                  f"keepalive = 5\n{login}")


async def watch(broker: Mosquitto, topic_filter: str = f"{PREFIX}/#") -> Watcher:
    return await Watcher(broker.port, topic_filter).__aenter__()


async def until(condition: Any, what: str, within: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        assert loop.time() < deadline, what
        await asyncio.sleep(0.05)


async def charging_by_card(site: SimSite, bench: Bench, watcher: Watcher) -> str:
    """Plug, card, EV in C: charging; the session id the retained state shows."""
    await watcher.until_value(C1 + "status", "Available")
    await bench("plug", 1)
    await watcher.until_value(C1 + "vehicle_connected", "ON")
    await bench("present_card", CARD)
    await site.csms.wait_for_action("StartTransaction")
    await bench("ev_state", 1, "C")
    await watcher.until_value(C1 + "charging", "ON")
    await bench.until_relay(True)
    await watcher.until(lambda w: w.last.get(C1 + "session_id", "") != "", "no session id")
    return watcher.last[C1 + "session_id"]


async def charges_by_card(site: SimSite, bench: Bench) -> None:
    """Plug, card, EV in C, with no help from MQTT: the relay closes."""
    await site.csms.wait_for(lambda: site.csms.last_status(1) == "Available")
    await bench("plug", 1)
    await bench("present_card", CARD)
    await bench("ev_state", 1, "C")
    await bench.until_relay(True)


async def results(watcher: Watcher, request_id: str) -> dict[str, Any]:
    await watcher.until(lambda w: any(r["id"] == request_id
                                      for r in w.json_of(C1 + "result")),
                        f"no result for {request_id}", within=30)
    return next(r for r in watcher.json_of(C1 + "result") if r["id"] == request_id)


async def command(broker: Mosquitto, watcher: Watcher, name: str, payload: dict[str, Any]
                  ) -> dict[str, Any]:
    await publish(broker.port, f"{C1}{name}/set", json.dumps(payload))
    return await results(watcher, payload["id"])


async def test_the_retained_state_follows_a_card_session_and_discovery_is_published(
        site: SimSite, bench: Bench, broker: Mosquitto, agent: RunningAgent) -> None:
    watcher = await watch(broker)
    try:
        await watcher.until_value(f"{PREFIX}/availability", "online")
        await watcher.until_value(C1 + "pilot_state", "A")
        session_id = await charging_by_card(site, bench, watcher)
        assert watcher.last[C1 + "status"] == "Charging"
        assert watcher.last[C1 + "pilot_state"] == "C"
        assert watcher.last[C1 + "token"] == "***" + CARD[-4:]  # masked by default
        await watcher.until(lambda w: float(w.last.get(C1 + "power_w", "0")) > 0, "no power")
        await watcher.until(lambda w: float(w.last.get(C1 + "session_energy_kwh", "0")) > 0,
                            "no session energy")
        await asyncio.sleep(READER_REPEAT_WINDOW)
        await bench("present_card", CARD)
        await site.csms.wait_for_action("StopTransaction")
        await watcher.until_value(C1 + "charging", "OFF")
        await watcher.until_value(C1 + "session_id", "")
        (tx,) = site.csms.transactions.values()
        assert tx.meter_stop is not None
        assert float(watcher.last[C1 + "meter_total_kwh"]) * 1000 >= tx.meter_stop - 1
        await watcher.until(lambda w: "SESSION_COMPLETE" in [
            e["event"] for e in w.json_of(f"{PREFIX}/event/session")], "never complete")
        named = [e["event"] for e in watcher.json_of(f"{PREFIX}/event/session")
                 if e["session_id"] == session_id]
        assert named == ["SESSION_STARTED", "SESSION_STOPPED", "SESSION_COMPLETE"]
        decisions = watcher.json_of(f"{PREFIX}/event/authorization")
        assert decisions and decisions[0]["accepted"] is True
        assert decisions[0]["id_tag"] == "***" + CARD[-4:]
    finally:
        await watcher.__aexit__()
    late = await watch(broker)  # a client that comes later finds the state retained
    try:
        await late.until(lambda w: C1 + "meter_total_kwh" in w.last, "no retained state")
        retained = {topic for topic, _, kept in late.messages if kept}
        assert {C1 + "status", C1 + "vehicle_connected", f"{PREFIX}/availability",
                f"{PREFIX}/link"} <= retained
        assert not any("/event/" in topic for topic in retained)
    finally:
        await late.__aexit__()
    discovery = await watch(broker, "homeassistant/#")
    try:
        await discovery.until(lambda w: len(w.last) >= 15, "discovery payloads missing")
        found = {topic: json.loads(payload) for topic, payload in discovery.last.items()}
        assert [p for t, c in found.items() for p in problems(t, c, "homeassistant", PREFIX)
                ] == []
        assert all(kept for _, _, kept in discovery.messages)
        assert not [topic for topic in found if "/select/" in topic]  # no phase relay
    finally:
        await discovery.__aexit__()


async def test_start_and_stop_commands_answer_with_the_api_contract(
        site: SimSite, bench: Bench, broker: Mosquitto, agent: RunningAgent) -> None:
    watcher = await watch(broker)
    try:
        await watcher.until_value(C1 + "status", "Available")
        await site.csms.wait_for(lambda: site.csms.last_status(1) == "Available")
        site.csms.authorizations["BADCARD1"] = {"status": "Invalid"}
        refused = await command(broker, watcher, "start", {"id_tag": "BADCARD1", "id": "r1"})
        assert (refused["ok"], refused["status"], refused["error"]["type"]) == (
            False, 424, "charging_provider_error")
        assert refused["error"]["ocpp_status"] == "Invalid"
        assert refused["session_status"] == "FAILED"
        await bench("plug", 1)
        started = await command(broker, watcher, "start", {"id_tag": CARD, "id": "r2"})
        assert (started["ok"], started["status"]) == (True, 201), started
        await bench("ev_state", 1, "C")
        await bench.until_relay(True)
        await watcher.until_value(C1 + "session_id", started["session_id"])
        again = await command(broker, watcher, "start", {"id_tag": CARD, "id": "r3"})
        assert (again["status"], again["error"]["type"]) == (409, "already_charging")
        # Home Assistant's switch pauses (local limit 0 A: SuspendedEVSE, same transaction)
        # and resumes; its number sets the limit the pilot offers.
        paused = await command(broker, watcher, "charging_enabled", {"state": "OFF",
                                                                      "id": "r4"})
        assert (paused["command"], paused["ok"]) == ("pause", True), paused
        await watcher.until_value(C1 + "charging_enabled", "OFF")
        await site.csms.wait_for(lambda: site.csms.last_status(1) == "SuspendedEVSE",
                                 within=20)
        await bench.until_relay(False, within=20)
        resumed = await command(broker, watcher, "charging_enabled", {"state": "ON",
                                                                       "id": "r4b"})
        assert (resumed["command"], resumed["ok"]) == ("resume", True), resumed
        await site.csms.wait_for(lambda: site.csms.last_status(1) == "Charging", within=20)
        await bench.until_relay(True, within=20)
        limited = await command(broker, watcher, "current_limit", {"amps": 10, "id": "r4c"})
        assert limited["ok"] is True, limited
        await watcher.until_value(C1 + "limit_source", "local:mqtt", within=20)
        await watcher.until_value(C1 + "offered_current_a", "10", within=20)
        await publish(broker.port, C1 + "current_limit/set", "3")
        await watcher.until(lambda w: any(r["status"] == 400 for r in w.json_of(C1 + "result")),
                            "no answer to a bad limit")
        assert await bench.relay_closed()  # a refused limit changes nothing
        no_relay = await command(broker, watcher, "phases", {"phases": 1, "id": "r4d"})
        assert (no_relay["ok"], no_relay["status"], no_relay["error"]["type"]) == (
            False, 400, "bad_request")
        assert "no phase switch" in no_relay["error"]["details"]
        assert C1 + "phase_request" not in watcher.last
        assert len(site.csms.transactions) == 1  # one transaction through pause and resume
        stopped = await command(broker, watcher, "stop", {"id_tag": CARD, "id": "r5"})
        assert stopped["ok"] is True and stopped["session_id"] == started["session_id"]
        await bench.until_relay(False)
        await site.csms.wait_for_action("StopTransaction")
        (tx,) = site.csms.transactions.values()
        assert tx.reason == "Remote"
        nothing = await command(broker, watcher, "stop", {"id": "r6"})
        assert (nothing["status"], nothing["error"]["type"]) == (404, "session_not_found")
    finally:
        await watcher.__aexit__()


def on_phases(count: int) -> Any:
    """The simulated relay connects ``count`` phases and the EV draws on those only."""
    return lambda s: (s["phases_connected"] == count
                      and [a > 1 for a in s["meter"]["current_a"]] == [True] * count
                      + [False] * (3 - count))


@pytest.mark.parametrize("phase_switch", ["settle = 2\nmin_interval = 10"])
async def test_the_phase_select_switches_the_relay(
        site: SimSite, bench: Bench, broker: Mosquitto, agent: RunningAgent) -> None:
    discovery = await watch(broker, "homeassistant/#")
    try:
        await discovery.until(lambda w: any("/select/" in t for t in w.last), "no select")
        (topic,) = [t for t in discovery.last if "/select/" in t]
        select = json.loads(discovery.last[topic])
        assert problems(topic, select, "homeassistant", PREFIX) == []
        assert (select["options"], select["state_topic"], select["command_topic"]) == (
            ["1", "3", "auto"], C1 + "phase_request", C1 + "phases/set")
    finally:
        await discovery.__aexit__()
    watcher = await watch(broker)
    try:
        await watcher.until_value(C1 + "phase_request", "auto")
        await charging_by_card(site, bench, watcher)
        await bench.until_connector(on_phases(3), within=15, what="charging on 3 phases")
        await publish(broker.port, C1 + "phases/set", "2")
        await watcher.until(lambda w: any(r["status"] == 400 for r in w.json_of(C1 + "result")),
                            "no answer to 2 phases")
        one = await command(broker, watcher, "phases", {"phases": 1, "id": "p1"})
        assert (one["command"], one["ok"], one["status"]) == ("phases", True, 200), one
        await watcher.until_value(C1 + "phase_request", "1")
        await bench.until_connector(on_phases(1), within=30, what="L1 only")
        await watcher.until_value(C1 + "phases", "1", within=10)
        await watcher.until_value(C1 + "status", "Charging", within=15)
        await publish(broker.port, C1 + "phases/set", "auto")  # what the select sends
        await watcher.until_value(C1 + "phase_request", "auto")
    finally:
        await watcher.__aexit__()
    state = await bench.until_connector(lambda s: True)
    assert state["phase_switch"]["switched_under_load"] == 0
    (tx,) = site.csms.transactions.values()  # one transaction through the switch
    assert tx.meter_stop is None


async def test_a_broker_restart_mid_session_changes_nothing_for_charging(
        site: SimSite, bench: Bench, broker: Mosquitto, agent: RunningAgent) -> None:
    assert agent.mqtt is not None
    watcher = await watch(broker)
    try:
        session_id = await charging_by_card(site, bench, watcher)
    finally:
        await watcher.__aexit__()
    samples = len(site.csms.calls("MeterValues"))
    await broker.stop()
    await until(lambda: not agent.mqtt.connected, "the agent never saw the broker go")
    # Charging goes on while the broker is away: the relay stays closed, samples go out.
    await site.csms.wait_for_action("MeterValues", count=samples + 2)
    assert await bench.relay_closed()
    assert site.csms.last_status(1) == "Charging"
    await broker.start()  # no persistence: every retained message is gone
    await until(lambda: agent.mqtt.connections >= 2, "the agent never reconnected", 60)
    watcher = await watch(broker)
    try:
        await watcher.until_value(C1 + "status", "Charging")
        await watcher.until_value(C1 + "session_id", session_id)
        await watcher.until_value(f"{PREFIX}/availability", "online")
        await asyncio.sleep(READER_REPEAT_WINDOW)
        await bench("present_card", CARD)
        await watcher.until_value(C1 + "charging", "OFF")
    finally:
        await watcher.__aexit__()
    await site.csms.wait_for_action("StopTransaction")
    (tx,) = site.csms.transactions.values()  # one transaction, started and stopped once
    assert (tx.id_tag, tx.reason) == (CARD, "Local")
    assert tx.meter_stop is not None and tx.meter_stop > tx.meter_start


@pytest.mark.slow
async def test_the_last_will_says_offline_after_kill_9_and_a_clean_stop_says_it_too(
        site: SimSite, broker: Mosquitto) -> None:
    agent = AgentProcess(site)
    watcher = await watch(broker, f"{PREFIX}/availability")
    try:
        await agent.start()
        await watcher.until_value(f"{PREFIX}/availability", "online", within=60)
        await agent.kill()  # kill -9: no last words from the agent, the broker speaks
        await watcher.until_value(f"{PREFIX}/availability", "offline", within=30)
        await agent.start()
        await watcher.until_value(f"{PREFIX}/availability", "online", within=60)
        assert await agent.terminate(within=30) == 0  # systemctl stop
        await watcher.until_value(f"{PREFIX}/availability", "offline", within=10)
        # The agent said it and disconnected cleanly; the will was for the kill only.
        assert broker.log().count("Client evse-agent-SIM-0001 disconnected") == 1
    finally:
        await watcher.__aexit__()
        await agent.stop()


async def test_charging_needs_no_broker_and_the_state_arrives_when_it_does(
        site: SimSite, bench: Bench, broker: Mosquitto, start_agent: Any) -> None:
    await broker.stop()
    agent = await start_agent()
    await charges_by_card(site, bench)
    await site.csms.wait_for(lambda: site.csms.last_status(1) == "Charging")
    assert agent.mqtt is not None and agent.mqtt.connections == 0
    assert agent.mqtt.dropped >= 2  # the card's authorization and SESSION_STARTED
    await broker.start()
    # Subscribed before the agent's next attempt: by now its back-off waits seconds.
    watcher = await watch(broker)
    try:
        await watcher.until_value(C1 + "status", "Charging", within=90)
        await watcher.until_value(f"{PREFIX}/availability", "online")
        await watcher.until_value(C1 + "charging", "ON")
        # The state is all there; the events of the outage were dropped, not queued.
        assert not [m for m in watcher.messages if "/event/" in m[0]]
    finally:
        await watcher.__aexit__()


@pytest.mark.parametrize(("broker_users", "agent_password"), [
    ({"agent": "right-password-1"}, "right-password-1")])
async def test_the_agent_logs_in_with_its_password_file(
        site: SimSite, broker: Mosquitto, agent: RunningAgent) -> None:
    watcher = Watcher(broker.port, f"{PREFIX}/#", username="agent",
                      password="right-password-1")
    async with watcher:
        await watcher.until_value(f"{PREFIX}/availability", "online")


@pytest.mark.parametrize(("broker_users", "agent_password"), [
    ({"agent": "right-password-1"}, "wrong-password-2")])
async def test_a_broker_that_refuses_the_login_never_touches_charging(
        site: SimSite, bench: Bench, broker: Mosquitto, agent: RunningAgent,
        caplog: pytest.LogCaptureFixture) -> None:
    assert agent.mqtt is not None
    await until(lambda: "mqtt: broker" in caplog.text, "the refusal was not logged")
    await charges_by_card(site, bench)
    assert agent.mqtt.connections == 0
    assert "wrong-password-2" not in caplog.text


@pytest.mark.parametrize("tls", ["trusted"])
async def test_mqtts_with_the_brokers_ca(site: SimSite, broker: Mosquitto,
                                         agent: RunningAgent) -> None:
    assert broker.ca is not None
    context = ssl.create_default_context(cadata=broker.ca.root_pem)
    async with Watcher(broker.port, f"{PREFIX}/#", tls_context=context) as watcher:
        await watcher.until_value(f"{PREFIX}/availability", "online")
        await watcher.until_value(C1 + "status", "Available")


@pytest.mark.parametrize("tls", ["untrusted"])
async def test_a_broker_certificate_from_another_ca_is_refused(
        site: SimSite, bench: Bench, broker: Mosquitto, agent: RunningAgent,
        caplog: pytest.LogCaptureFixture) -> None:
    assert agent.mqtt is not None
    await until(lambda: "CERTIFICATE_VERIFY_FAILED" in caplog.text or
                "certificate verify failed" in caplog.text, "no certificate failure logged")
    await charges_by_card(site, bench)
    assert agent.mqtt.connections == 0
