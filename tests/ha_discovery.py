"""What Home Assistant accepts in an MQTT discovery message, written from its documentation.

Sources (read for this file; docs/home-assistant.md cites them field by field):

- "MQTT" integration, discovery: https://www.home-assistant.io/integrations/mqtt/ (topic
  ``<discovery_prefix>/<component>/[<node_id>/]<object_id>/config``, ids of
  ``[a-zA-Z0-9_-]``; ``device``, ``origin``, ``availability_topic``, ``unique_id``);
- the per-platform pages: sensor.mqtt, binary_sensor.mqtt, number.mqtt, switch.mqtt,
  button.mqtt, select.mqtt (``https://www.home-assistant.io/integrations/<platform>.mqtt/``):
  which keys each platform takes and which it requires (a select: ``command_topic`` and
  ``options``, the list of strings a user can pick and the state topic may carry);
- the entity docs for the device classes and their units:
  https://developers.home-assistant.io/docs/core/entity/sensor (units per device class,
  ``state_class``), .../binary-sensor (binary device classes), .../button, .../switch;
- state classes: https://developers.home-assistant.io/blog/2021/09/20/state_class_total
  (an energy sensor is ``total`` or ``total_increasing``, never ``measurement``).

:func:`problems` returns what is wrong with one (topic, payload); empty means valid.
"""

from __future__ import annotations

import re
from typing import Any

ID = r"[a-zA-Z0-9_-]+"
COMMON = {
    "name", "unique_id", "device", "origin", "availability_topic", "payload_available",
    "payload_not_available", "entity_category", "icon", "qos", "enabled_by_default",
    "object_id", "encoding", "json_attributes_topic",
}
PLATFORMS: dict[str, tuple[set[str], set[str]]] = {  # component -> (required, also allowed)
    "sensor": ({"state_topic"}, {"device_class", "unit_of_measurement", "state_class",
                                 "options", "suggested_display_precision", "value_template",
                                 "expire_after", "force_update"}),
    "binary_sensor": ({"state_topic"}, {"device_class", "payload_on", "payload_off",
                                        "value_template", "expire_after", "off_delay"}),
    "number": ({"command_topic"}, {"state_topic", "min", "max", "step", "mode",
                                   "unit_of_measurement", "device_class", "payload_reset",
                                   "command_template", "value_template", "optimistic",
                                   "retain"}),
    "switch": ({"command_topic"}, {"state_topic", "payload_on", "payload_off", "state_on",
                                   "state_off", "device_class", "optimistic", "retain",
                                   "value_template"}),
    "button": ({"command_topic"}, {"payload_press", "device_class", "command_template",
                                   "retain"}),
    "select": ({"command_topic", "options"}, {"state_topic", "command_template",
                                              "value_template", "optimistic", "retain"}),
}
UNITS: dict[str, set[str]] = {  # sensor and number device classes we may use -> units
    "power": {"mW", "W", "kW", "MW", "GW", "TW", "BTU/h"},
    "energy": {"J", "kJ", "MJ", "GJ", "mWh", "Wh", "kWh", "MWh", "GWh", "TWh", "cal", "kcal",
               "Mcal", "Gcal"},
    "current": {"mA", "A"},
    "voltage": {"µV", "mV", "V", "kV", "MV"},
    "enum": set(),  # no unit: the state is one of ``options``
}
STATE_CLASSES: dict[str, set[str | None]] = {  # device class -> allowed state_class
    "power": {"measurement", None},
    "current": {"measurement", None},
    "voltage": {"measurement", None},
    "energy": {"total", "total_increasing", None},
    "enum": {None},
}
BINARY_CLASSES = {
    "battery", "battery_charging", "carbon_monoxide", "cold", "connectivity", "door",
    "garage_door", "gas", "heat", "light", "lock", "moisture", "motion", "moving",
    "occupancy", "opening", "plug", "power", "presence", "problem", "running", "safety",
    "smoke", "sound", "tamper", "update", "vibration", "window",
}
OTHER_CLASSES = {"switch": {"outlet", "switch"}, "button": {"identify", "restart", "update"}}
DEVICE_KEYS = {"identifiers", "connections", "name", "manufacturer", "model", "model_id",
               "sw_version", "hw_version", "serial_number", "suggested_area", "via_device",
               "configuration_url"}
ORIGIN_KEYS = {"name", "sw_version", "support_url"}


def problems(topic: str, payload: dict[str, Any], discovery_prefix: str,
             state_prefix: str) -> list[str]:
    found: list[str] = []
    match = re.fullmatch(rf"{re.escape(discovery_prefix)}/(\w+)/{ID}/{ID}/config", topic)
    if match is None or match.group(1) not in PLATFORMS:
        return [f"{topic}: not <prefix>/<component>/<node_id>/<object_id>/config"]
    component = match.group(1)
    required, allowed = PLATFORMS[component]
    for key in sorted(required - payload.keys()):
        found.append(f"{topic}: {key} is required for a {component}")
    for key in sorted(payload.keys() - required - allowed - COMMON):
        found.append(f"{topic}: {key} is not an option of an MQTT {component}")
    found += _identity(topic, payload, state_prefix)
    if component in ("sensor", "number"):
        found += _measure(topic, component, payload)
    elif component == "binary_sensor" and payload.get("device_class") not in (
            BINARY_CLASSES | {None}):
        found.append(f"{topic}: {payload['device_class']} is no binary sensor device class")
    elif component == "select":
        found += _options(topic, payload.get("options"))
    elif component in OTHER_CLASSES and payload.get("device_class") not in (
            OTHER_CLASSES[component] | {None}):
        found.append(f"{topic}: {payload['device_class']} is no {component} device class")
    return found


def _identity(topic: str, payload: dict[str, Any], state_prefix: str) -> list[str]:
    found = []
    if not isinstance(payload.get("unique_id"), str) or not payload["unique_id"]:
        found.append(f"{topic}: unique_id missing (needed for a device and the UI)")
    device = payload.get("device")
    if not isinstance(device, dict) or not device.get("identifiers"):
        found.append(f"{topic}: device.identifiers missing (entities group on one device)")
    elif device.keys() - DEVICE_KEYS:
        found.append(f"{topic}: device has unknown keys {sorted(device.keys() - DEVICE_KEYS)}")
    origin = payload.get("origin", {})
    if not isinstance(origin, dict) or "name" not in origin or origin.keys() - ORIGIN_KEYS:
        found.append(f"{topic}: origin needs a name and only {sorted(ORIGIN_KEYS)}")
    if payload.get("entity_category") not in (None, "config", "diagnostic"):
        found.append(f"{topic}: entity_category must be config or diagnostic")
    for key, value in payload.items():
        if key.endswith("_topic") and not str(value).startswith(state_prefix + "/"):
            found.append(f"{topic}: {key} {value} is not under {state_prefix}")
    if payload.get("availability_topic") != f"{state_prefix}/availability":
        found.append(f"{topic}: availability_topic must be the agent's availability topic")
    return found


def _options(topic: str, options: object) -> list[str]:
    if not isinstance(options, list) or not options:
        return [f"{topic}: a select needs options, a list of strings"]
    if not all(isinstance(option, str) for option in options):
        return [f"{topic}: a select's options must be strings, got {options}"]
    if len(set(options)) != len(options):
        return [f"{topic}: a select's options must differ"]
    return []


def _measure(topic: str, component: str, payload: dict[str, Any]) -> list[str]:
    found = []
    device_class = payload.get("device_class")
    unit = payload.get("unit_of_measurement")
    if device_class is not None and device_class not in UNITS:
        return [f"{topic}: device class {device_class} is not checked here"]
    if device_class is not None and (unit is not None or UNITS[device_class]) and (
            unit not in UNITS[device_class]):
        found.append(f"{topic}: unit {unit!r} does not fit device class {device_class}")
    state_class = payload.get("state_class")
    if state_class not in (None, "measurement", "total", "total_increasing"):
        found.append(f"{topic}: state_class {state_class} is not a state class")
    elif device_class is not None and state_class not in STATE_CLASSES[device_class]:
        found.append(f"{topic}: state_class {state_class} is impossible for {device_class}")
    if device_class == "enum" and not payload.get("options"):
        found.append(f"{topic}: an enum sensor needs options")
    if "options" in payload and device_class != "enum":
        found.append(f"{topic}: options only go with device class enum")
    if component == "number":
        low, high, step = payload.get("min", 1), payload.get("max", 100), payload.get("step", 1)
        if not (low < high and step > 0):
            found.append(f"{topic}: min {low} < max {high} and step {step} > 0 needed")
        if payload.get("mode", "auto") not in ("auto", "box", "slider"):
            found.append(f"{topic}: mode must be auto, box or slider")
    return found
