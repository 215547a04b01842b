"""Home Assistant MQTT discovery payloads: one retained config message per entity.

Topic: ``<discovery prefix>/<component>/<node id>/<object id>/config`` (Home Assistant,
"MQTT Discovery": the node and object ids are ``[a-zA-Z0-9_-]``). Each payload names its
state/command topics under our prefix, a ``unique_id``, the ``device`` (one per charger,
so every entity lands on one device card) and the ``availability`` topic whose last will
turns every entity unavailable when the agent dies. ``docs/home-assistant.md`` explains
each field; ``tests/unit/agent/mqtt/test_discovery.py`` checks them against a schema written
from Home Assistant's documentation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from agent.core.types import ConnectorStatus
from agent.mqtt.topics import AUTO

PILOT_STATES = ("A", "B", "C", "D", "E", "F")


@dataclass(frozen=True)
class Station:
    """What discovery needs to know about the charger."""

    charger_id: str
    vendor: str
    model: str
    version: str
    serial_number: str | None
    prefix: str  # our topics
    discovery_prefix: str
    max_current: dict[int, float]  # connector id -> amps
    phase_switch: frozenset[int] = frozenset()  # connectors with a 1<->3 phase relay


def node_id(charger_id: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_-]", "_", charger_id)


@dataclass(frozen=True)
class Entity:
    component: str  # sensor, binary_sensor, number, switch, button, select
    key: str  # object id within the connector, and the state/command topic's field
    name: str
    fields: dict[str, Any]
    state: bool = True  # has a state topic
    command: bool = False  # has a command topic
    diagnostic: bool = False


def _sensor(key: str, name: str, device_class: str | None, unit: str | None,
            state_class: str | None, **more: Any) -> Entity:
    fields = {"device_class": device_class, "unit_of_measurement": unit,
              "state_class": state_class, **more}
    diagnostic = bool(fields.pop("diagnostic", False))
    return Entity("sensor", key, name, {k: v for k, v in fields.items() if v is not None},
                  diagnostic=diagnostic)


PHASE_OPTIONS = ("1", "3", AUTO)  # the phases command's words and phase_request's states


def connector_entities(max_current: float, phase_switch: bool = False) -> list[Entity]:
    """The entities of one connector; the phase request's select only with a phase relay."""
    on_off = {"payload_on": "ON", "payload_off": "OFF"}
    phases = [Entity("select", "phase_request", "Phase request",
                     {"options": list(PHASE_OPTIONS)}, command=True)] if phase_switch else []
    return [
        _sensor("power_w", "Power", "power", "W", "measurement"),
        _sensor("session_energy_kwh", "Session energy", "energy", "kWh", "total_increasing"),
        _sensor("meter_total_kwh", "Meter total", "energy", "kWh", "total_increasing"),
        _sensor("offered_current_a", "Offered current", "current", "A", "measurement"),
        _sensor("status", "Status", "enum", None, None,
                options=[status.value for status in ConnectorStatus]),
        _sensor("pilot_state", "Pilot state", "enum", None, None, options=list(PILOT_STATES),
                diagnostic=True),
        _sensor("limit_source", "Limit source", None, None, None, diagnostic=True),
        _sensor("phases", "Phases", None, None, None, diagnostic=True),
        _sensor("errors", "Errors", None, None, None, diagnostic=True),
        _sensor("token", "Token", None, None, None, diagnostic=True),
        Entity("binary_sensor", "vehicle_connected", "Vehicle connected",
               {"device_class": "plug", **on_off}),
        Entity("binary_sensor", "charging", "Charging",
               {"device_class": "battery_charging", **on_off}),
        Entity("number", "current_limit_a", "Current limit",
               {"device_class": "current", "unit_of_measurement": "A", "min": 0,
                "max": max_current, "step": 1, "mode": "box", "payload_reset": "None"},
               command=True),
        Entity("switch", "charging_enabled", "Charging enabled",
               {"device_class": "switch", **on_off, "state_on": "ON", "state_off": "OFF"},
               command=True),
        Entity("button", "stop", "Stop session", {"payload_press": "PRESS"}, state=False,
               command=True),
        *phases,
    ]


_COMMANDS = {"current_limit_a": "current_limit", "phase_request": "phases"}
"""An entity whose command topic is not named after its state topic."""


def _command_key(entity: Entity) -> str:
    return _COMMANDS.get(entity.key, entity.key)


def payloads(station: Station) -> dict[str, dict[str, Any]]:
    """Every discovery message: topic -> payload (JSON object), for every connector and the
    charger's link to the CSMS."""
    node = node_id(station.charger_id)
    device: dict[str, Any] = {
        "identifiers": [f"evse-agent_{node}"],
        "name": f"Charger {station.charger_id}",
        "manufacturer": station.vendor,
        "model": station.model,
        "sw_version": station.version,
    }
    if station.serial_number:
        device["serial_number"] = station.serial_number
    common: dict[str, Any] = {
        "device": device,
        "origin": {"name": "evse-agent", "sw_version": station.version},
        "availability_topic": f"{station.prefix}/availability",
        "payload_available": "online",
        "payload_not_available": "offline",
    }
    found: dict[str, dict[str, Any]] = {}
    link = {**common, "name": "CSMS link", "unique_id": f"evse-agent_{node}_link",
            "state_topic": f"{station.prefix}/link", "device_class": "connectivity",
            "payload_on": "online", "payload_off": "offline", "entity_category": "diagnostic"}
    found[f"{station.discovery_prefix}/binary_sensor/{node}/link/config"] = link
    for cid, max_current in sorted(station.max_current.items()):
        base = f"{station.prefix}/connector/{cid}"
        for entity in connector_entities(max_current, cid in station.phase_switch):
            object_id = f"connector_{cid}_{entity.key}"
            payload = {**common, "name": f"Connector {cid} {entity.name.lower()}",
                       "unique_id": f"evse-agent_{node}_{object_id}", **entity.fields}
            if entity.state:
                payload["state_topic"] = f"{base}/{entity.key}"
            if entity.command:
                payload["command_topic"] = f"{base}/{_command_key(entity)}/set"
            if entity.diagnostic:
                payload["entity_category"] = "diagnostic"
            topic = f"{station.discovery_prefix}/{entity.component}/{node}/{object_id}/config"
            found[topic] = payload
    return found
