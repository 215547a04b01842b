"""Every discovery payload is what Home Assistant accepts for its entity type (the schema in
tests/ha_discovery.py is written from Home Assistant's MQTT and entity documentation)."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest

from agent.mqtt.discovery import Station, connector_entities, node_id, payloads
from tests.ha_discovery import problems

STATION = Station(charger_id="SIM:0001.a", vendor="evse-agent", model="Pi-AC",
                  version="0.1.0", serial_number="SN-1", prefix="evse-agent/SIM-1",
                  discovery_prefix="homeassistant", max_current={1: 16.0, 2: 32.0})
RELAY_ON_2 = dataclasses.replace(STATION, phase_switch=frozenset({2}))


def all_problems(found: dict[str, dict[str, Any]]) -> list[str]:
    return [p for topic, payload in found.items()
            for p in problems(topic, payload, STATION.discovery_prefix, STATION.prefix)]


def test_every_payload_validates() -> None:
    found = payloads(STATION)
    assert all_problems(found) == []
    per_connector = len(connector_entities(16))
    assert len(found) == 1 + 2 * per_connector  # the link, then each connector's entities
    unique = [payload["unique_id"] for payload in found.values()]
    assert len(set(unique)) == len(unique)


def test_a_phase_relay_adds_a_select_of_the_phase_request() -> None:
    found = payloads(RELAY_ON_2)
    assert all_problems(found) == []
    selects = {topic: p for topic, p in found.items() if "/select/" in topic}
    assert list(selects) == ["homeassistant/select/SIM_0001_a/connector_2_phase_request/config"]
    (select,) = selects.values()
    assert (select["options"], select["state_topic"], select["command_topic"]) == (
        ["1", "3", "auto"], "evse-agent/SIM-1/connector/2/phase_request",
        "evse-agent/SIM-1/connector/2/phases/set")
    assert not [topic for topic in payloads(STATION) if "/select/" in topic]


def test_the_entities_a_user_sees() -> None:
    found = payloads(STATION)
    by_id = {p["unique_id"].removeprefix("evse-agent_SIM_0001_a_"): p for p in found.values()}
    power = by_id["connector_1_power_w"]
    assert (power["device_class"], power["unit_of_measurement"], power["state_class"]) == (
        "power", "W", "measurement")
    total = by_id["connector_1_meter_total_kwh"]
    assert (total["device_class"], total["unit_of_measurement"], total["state_class"]) == (
        "energy", "kWh", "total_increasing")
    assert by_id["connector_1_status"]["options"][0] == "Available"
    assert by_id["connector_1_vehicle_connected"]["device_class"] == "plug"
    assert by_id["connector_1_charging"]["device_class"] == "battery_charging"
    limit = by_id["connector_2_current_limit_a"]
    assert (limit["min"], limit["max"], limit["command_topic"]) == (
        0, 32.0, "evse-agent/SIM-1/connector/2/current_limit/set")
    assert by_id["connector_1_charging_enabled"]["command_topic"].endswith(
        "/connector/1/charging_enabled/set")
    assert by_id["connector_1_stop"]["payload_press"] == "PRESS"
    assert {p["availability_topic"] for p in found.values()} == {
        "evse-agent/SIM-1/availability"}
    assert {p["device"]["identifiers"][0] for p in found.values()} == {
        "evse-agent_SIM_0001_a"}
    assert node_id("SIM:0001.a") == "SIM_0001_a"


@pytest.mark.parametrize(("key", "edit", "words"), [
    ("connector_1_meter_total_kwh", {"state_class": "measurement"}, "impossible for energy"),
    ("connector_1_power_w", {"unit_of_measurement": "kWh"}, "does not fit device class power"),
    ("connector_1_offered_current_a", {"unit_of_measurement": "W"}, "does not fit"),
    ("connector_1_vehicle_connected", {"device_class": "car"}, "no binary sensor device"),
    ("connector_1_stop", {"command_topic": None}, "command_topic is required"),
    ("connector_1_status", {"options": None}, "an enum sensor needs options"),
    ("connector_1_charging_enabled", {"colour": "red"}, "colour is not an option"),
    ("connector_1_current_limit_a", {"min": 40}, "min 40 < max"),
    ("connector_1_power_w", {"unique_id": None}, "unique_id missing"),
    ("connector_1_power_w", {"availability_topic": None}, "availability_topic must be"),
    ("connector_2_phase_request", {"options": None}, "options is required for a select"),
    ("connector_2_phase_request", {"options": [1, 3]}, "options must be strings"),
    ("connector_2_phase_request", {"unit_of_measurement": "A"}, "not an option of an MQTT select"),
])
def test_the_schema_catches_what_home_assistant_refuses(key: str, edit: dict[str, Any],
                                                        words: str) -> None:
    found = copy.deepcopy(payloads(RELAY_ON_2))
    topic = next(t for t, p in found.items() if p["unique_id"].endswith(key))
    for name, value in edit.items():
        if value is None:
            found[topic].pop(name, None)
        else:
            found[topic][name] = value
    assert any(words in problem for problem in all_problems(found)), all_problems(found)
