"""``[mqtt]``: off unless given; every mistake named with its key and what is allowed; the
broker password file is checked like every secret file; the password is scrubbed from logs."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest

from agent.app import _secrets
from agent.config import ConfigError, load_config, parse_config
from agent.mqtt.wiring import MqttConfigError, password
from tests.unit.agent.test_config import BASE, Doc, render


def mqtt_doc(**mqtt: object) -> str:
    doc: Doc = copy.deepcopy(BASE)
    doc["mqtt"] = {"url": "mqtt://127.0.0.1:18283", **mqtt}
    return render(doc)


def problems(**mqtt: object) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as caught:
        parse_config(mqtt_doc(**mqtt))
    return caught.value.problems


def test_mqtt_is_off_unless_configured() -> None:
    assert parse_config(render(BASE)).mqtt is None


def test_defaults() -> None:
    config = parse_config(mqtt_doc())
    assert config.mqtt is not None
    assert (config.mqtt.host, config.mqtt.port, config.mqtt.tls) == ("127.0.0.1", 18283, False)
    assert config.mqtt_prefix == "evse-agent/CP-1"
    assert (config.mqtt.discovery, config.mqtt.discovery_prefix) == (True, "homeassistant")
    assert config.mqtt.tokens == "masked"
    tls = parse_config(mqtt_doc(url="mqtts://broker.lan")).mqtt
    assert tls is not None and (tls.port, tls.tls) == (8883, True)


@pytest.mark.parametrize(("mqtt", "words"), [
    ({"url": "http://broker"}, "mqtt.url: 'http://broker' must start with mqtt:// or mqtts://"),
    ({"url": "mqtt://u:p@broker"}, "mqtt.url: must not contain a user name or password"),
    ({"url": "mqtt://broker/x"}, "must be mqtt(s)://host[:port] only"),
    ({"topic_prefix": "a/#"}, "mqtt.topic_prefix: 'a/#' contains a wildcard"),
    ({"topic_prefix": "/a"}, "mqtt.topic_prefix: '/a' must not start or end with /"),
    ({"tokens": "some"}, "mqtt.tokens: 'some' is not allowed; choose one of: masked, full, "
                         "hidden"),
    ({"keepalive": 1}, "mqtt.keepalive: 1 is out of range; allowed 5..3600"),
    ({"password": "secret"}, "mqtt.username: missing; required when a password is given"),
    ({"username": "u", "password": "p", "password_file": "/x"},
     "mqtt.password_file: give mqtt.password or mqtt.password_file, not both"),
    ({"ca_file": "/ca.pem"}, "mqtt.ca_file: is only used with an mqtts:// URL"),
    ({"colour": 1}, "mqtt.colour: unknown key"),
])
def test_mistakes_are_named(mqtt: dict[str, object], words: str) -> None:
    found = problems(**mqtt)
    assert any(words in problem for problem in found), found


def test_the_password_is_never_shown_and_is_scrubbed_from_logs() -> None:
    config = parse_config(mqtt_doc(username="agent", password="broker-secret-1"))
    assert "broker-secret-1" not in repr(config)
    assert "broker-secret-1" in _secrets(config)


def test_the_password_file_must_be_private(tmp_path: Path) -> None:
    secret = tmp_path / "mqtt.pass"
    secret.write_text("from-a-file-77\n")
    secret.chmod(0o644)
    (tmp_path / "agent.toml").write_text(mqtt_doc(username="agent",
                                                  password_file="mqtt.pass"))
    config = load_config(tmp_path / "agent.toml")
    assert config.mqtt is not None and config.mqtt.password_file == secret  # beside the file
    with pytest.raises(MqttConfigError, match=r"mqtt.password_file: .* readable by others "
                                              r"\(mode 644\); allowed: 600 or 400"):
        password(config.mqtt)
    secret.chmod(0o600)
    assert password(config.mqtt) == "from-a-file-77"
    assert "from-a-file-77" in _secrets(config)
    secret.unlink()
    with pytest.raises(MqttConfigError, match=r"mqtt\.password_file: cannot read"):
        password(config.mqtt)


def test_an_agent_without_mqtt_never_loads_the_library() -> None:
    code = ("import sys, agent.app, agent.cli; "
            "print(sorted(m for m in ('aiomqtt', 'paho') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"
