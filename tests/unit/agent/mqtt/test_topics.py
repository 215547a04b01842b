"""agent.mqtt.topics: the retained state from a status snapshot, events, commands."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from agent.mqtt import topics
from agent.mqtt.service import RECONNECT_MAX, RECONNECT_MIN, backoff
from agent.sessions import Mode, Session, Status

AT = datetime(2026, 12, 7, 5, 0, tzinfo=UTC)
PREFIX = "evse-agent/CP-1"
MAX = {1: 16.0, 2: 32.0}


def connector(**more: Any) -> dict[str, Any]:
    return {"id": 1, "status": "Charging", "pilot": "C", "contactor": "closed",
            "error": "NoError", "transaction": {"id": 7, "tag": "0A1B2C3D", "meter_start": 1000},
            "power_w": 7360.0, "energy_wh": 3500.0, **more}


def session() -> Session:
    return Session("s-1", Mode.LOCAL, 1, "CP-1*1", "0A1B2C3D", Status.STARTED, AT, AT)


@pytest.mark.parametrize(("tokens", "shown"), [("masked", "***2C3D"), ("full", "0A1B2C3D"),
                                               ("hidden", "")])
def test_tokens_are_shown_as_configured(tokens: str, shown: str) -> None:
    assert topics.mask("0A1B2C3D", tokens) == shown
    assert topics.mask("AB", "masked") == "***"
    assert topics.mask(None, "full") == ""


def test_a_charging_connector() -> None:
    state = topics.connector_state(connector(), session(), "masked")
    assert state == {
        "status": "Charging", "pilot_state": "C", "vehicle_connected": "ON", "charging": "ON",
        "contactor": "closed", "errors": "", "session_id": "s-1", "token": "***2C3D",
        "power_w": "7360", "meter_total_kwh": "3.500", "session_energy_kwh": "2.500"}


def test_an_idle_connector_without_a_reading_and_with_smart_charging_fields() -> None:
    idle = connector(status="Faulted", pilot="A", transaction=None, power_w=None,
                     energy_wh=None, error="PowerMeterFailure", offered_current=0,
                     limit_amps=0, limit_source="mqtt")
    state = topics.connector_state(idle, None, "masked")
    assert "power_w" not in state and "meter_total_kwh" not in state  # not made up
    assert (state["vehicle_connected"], state["charging"], state["errors"]) == (
        "OFF", "OFF", "PowerMeterFailure")
    assert (state["offered_current_a"], state["current_limit_a"], state["charging_enabled"],
            state["limit_source"]) == ("0", "0", "OFF", "mqtt")
    cleared = topics.connector_state(connector(limit_amps=None, limit_source=None), None, "x")
    assert (cleared["current_limit_a"], cleared["charging_enabled"],
            cleared["limit_source"]) == ("None", "ON", "none")


def test_station_state_names_the_topics() -> None:
    snapshot = {"link": {"up": False}, "connectors": [connector()]}
    state = topics.station_state(snapshot, {1: None}, "full")
    assert state["link"] == "offline" and state["connector/1/token"] == "0A1B2C3D"


def test_events_mask_the_token() -> None:
    event = topics.session_event(session(), "SESSION_STARTED", "masked")
    assert (event["event"], event["id_tag"], event["session_id"]) == (
        "SESSION_STARTED", "***2C3D", "s-1")
    decision = topics.authorization_event("0A1B2C3D", 1, "connector", False, "csms",
                                          "Invalid", "unknown_card", AT, "hidden")
    assert (decision["id_tag"], decision["reason"]) == ("", "unknown_card")


def parse(suffix: str, payload: bytes) -> topics.Command:
    return topics.parse_command(PREFIX, f"{PREFIX}/{suffix}", payload, MAX)


def test_commands() -> None:
    assert parse("connector/1/start/set", b"0A1B2C3D") == topics.Command(1, "start",
                                                                         id_tag="0A1B2C3D")
    assert parse("connector/2/start/set", b'{"id_tag": "X1", "id": "r-7"}') == (
        topics.Command(2, "start", id_tag="X1", request_id="r-7"))
    assert parse("connector/1/stop/set", b"PRESS") == topics.Command(1, "stop")
    assert parse("connector/1/stop/set", b'{"session_id": "s-1"}').session_id == "s-1"
    assert parse("connector/1/current_limit/set", b"10").amps == 10.0
    assert parse("connector/1/current_limit/set", b"None").amps is None
    assert parse("connector/1/current_limit/set", b"0").amps == 0.0
    assert parse("connector/1/charging_enabled/set", b"OFF") == topics.Command(1, "pause",
                                                                               amps=0.0)
    assert parse("connector/1/charging_enabled/set", b"ON").name == "resume"
    assert parse("connector/1/phases/set", b"1") == topics.Command(1, "phases", phases=1)
    assert parse("connector/1/phases/set", b"auto") == topics.Command(1, "phases")
    assert parse("connector/2/phases/set", b'{"phases": 3, "id": "p-1"}') == (
        topics.Command(2, "phases", phases=3, request_id="p-1"))
    assert parse("connector/1/phases/set", b'{"phases": null}').phases is None
    assert parse("connector/1/phases/set", b" Clear ").phases is None


@pytest.mark.parametrize(("suffix", "payload", "words"), [
    ("connector/3/start/set", b"X", "connector 3 does not exist"),
    ("connector/1/fly/set", b"", "unknown command 'fly'"),
    ("connector/1/start/set", b"", "start needs a token"),
    ("connector/1/start/set", b"{not json", "malformed payload"),
    ("connector/1/start/set", b"[1]", "a JSON command must be an object"),
    ("connector/1/start/set", b'{"id_tag": 5}', "id_tag must be a string"),
    ("connector/1/current_limit/set", b"3", "current 3 A is out of range; allowed 0 (pause) "
                                            "or 6..16 A"),
    ("connector/2/current_limit/set", b"40", "allowed 0 (pause) or 6..32 A"),
    ("connector/1/current_limit/set", b"lots", "current must be a number"),
    ("connector/1/charging_enabled/set", b"MAYBE", "takes ON or OFF"),
    ("connector/1/phases/set", b"2", "phases takes 1, 3 or auto, got '2'"),
    ("connector/1/phases/set", b"", "phases takes 1, 3 or auto, got ''"),
    ("connector/1/phases/set", b'{"phases": true}', "got True"),
    ("connector/1/phases/set", b'{"phases": 1.5}', "got 1.5"),
    ("connector/1/phases/set", b'{"id": "p-2"}', "phases needs 1, 3 or auto"),
    ("connector/1/start/set", b"\xff", "malformed payload"),
])
def test_bad_commands_are_named(suffix: str, payload: bytes, words: str) -> None:
    with pytest.raises(topics.BadCommand) as caught:
        parse(suffix, payload)
    assert words in caught.value.details


def test_results_carry_the_api_error_contract() -> None:
    refused = topics.result("start", "r-1", ok=False, session=session(), status=424,
                            kind="charging_provider_error", details="no", extra={"a": 1})
    assert refused == {"command": "start", "id": "r-1", "ok": False, "status": 424,
                       "session_id": "s-1", "session_status": "STARTED",
                       "error": {"type": "charging_provider_error", "details": "no", "a": 1}}


def test_reconnect_backs_off_with_jitter_up_to_the_maximum() -> None:
    first = [backoff(1) for _ in range(50)]
    assert all(RECONNECT_MIN / 2 <= d <= RECONNECT_MIN for d in first)
    late = [backoff(30) for _ in range(50)]
    assert all(RECONNECT_MAX / 2 <= d <= RECONNECT_MAX for d in late)
    assert len(set(late)) > 1  # jittered


def test_junk_topics_and_payloads_are_bad_commands() -> None:
    """A digit int() cannot read (``²``) and a JSON payload nested past the recursion limit
    are BadCommand (answered or logged), not an exception escaping the command's task."""
    with pytest.raises(topics.BadCommand):
        topics.parse_command(PREFIX, f"{PREFIX}/connector/²/start/set", b"x", MAX)
    with pytest.raises(topics.BadCommand):
        topics.parse_command(PREFIX, f"{PREFIX}/connector/1/start/set", b"[" * 5000, MAX)


def test_the_phases_connected_are_a_state_topic() -> None:
    state = topics.connector_state(connector(phases=1), None, "x")
    assert state["phases"] == "1"
    assert "phases" not in topics.connector_state(connector(), None, "x")


def test_the_phase_request_is_a_state_topic_with_a_relay_only() -> None:
    relay = connector(phases=3, phase_switch=True, phase_request=None)
    assert topics.connector_state(relay, None, "x")["phase_request"] == "auto"
    asked = connector(phases=3, phase_switch=True, phase_request={"phases": 1, "source": "hems"})
    assert topics.connector_state(asked, None, "x")["phase_request"] == "1"
    wired = connector(phases=3, phase_switch=False, phase_request=None)
    assert "phase_request" not in topics.connector_state(wired, None, "x")
